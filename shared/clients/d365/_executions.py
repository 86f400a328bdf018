"""The one way the client starts a DMF execution (ExportToPackage, ImportFromPackage)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._engine import Engine
from ._retry import RetryPolicy
from ._tracing import log_ids

__all__ = ["start_execution"]

_LOGGER = logging.getLogger(__name__)


def start_execution(
    engine: Engine,
    action: str,
    parameters: dict[str, Any],
    *,
    convert: Callable[[Any], str | None],
    retry: RetryPolicy | None,
    event: str,
    project: str,
    execution: str,
    legal_entity_id: str | None,
) -> str:
    """POST ``action``, which starts the execution ``execution`` of data project ``project``;
    returns the execution id F&O answered, else ``execution``, and logs ``<event> started``.

    Never re-sent blindly (``resend_safe=False``): F&O may have started the execution when no
    answer came, so only what proves it did not take the call is retried.
    """
    answered: str | None = engine.action(
        action,
        parameters,
        convert=convert,
        resend_safe=False,
        retry=retry,
        execution_id=execution,
    )
    _LOGGER.info(
        "%s started project=%s execution_id=%s company=%s",
        event,
        project,
        answered or execution,
        legal_entity_id,
        extra=log_ids(execution_id=answered or execution),
    )
    return answered or execution
