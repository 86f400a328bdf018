"""Runs a view with the app's context, turning a failed start or a failed storage call into a 503.

The 503 names the problem; neither a broken start nor a storage fault ever answers 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from azure.core.exceptions import AzureError

from shared.config import SettingsError
from shared.context import AppContext
from shared.errors import safe_text
from shared.tracking import ConcurrencyError, TrackingStoreError
from shared.views.response import ApiResponse, problem

__all__ = ["with_context"]

_LOGGER = logging.getLogger(__name__)


def with_context(
    context_factory: Callable[[], AppContext], answer: Callable[[AppContext], ApiResponse]
) -> ApiResponse:
    """``answer`` with the app's context; a 503 that names the problem when the app cannot
    start or its table cannot be used, never a 500."""
    try:
        context = context_factory()
    except SettingsError as exc:
        return ApiResponse(503, {"error": str(exc), "problems": list(exc.problems)})
    except Exception as exc:
        _LOGGER.exception("context could not be built")
        return problem(503, f"the app could not start ({safe_text(exc)}); see /api/health")
    try:
        return answer(context)
    except TrackingStoreError as exc:
        return problem(503, str(exc))
    except (AzureError, ConcurrencyError) as exc:
        _LOGGER.exception("storage failed while answering")
        return problem(
            503, f"storage failed or changed while answering ({safe_text(exc)}); try again"
        )
