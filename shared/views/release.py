"""What ``POST /api/messages/{id}/release`` answers: an ordered line released past its blocker.

The request id comes from the ``Idempotency-Key`` header or ``request_id`` in the JSON body.
The work is :class:`shared.flows.release.Releaser`'s; the caller is ``actor``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from azure.core.exceptions import AzureError

from shared.context import AppContext
from shared.errors import safe_text
from shared.flows.release import ReleaseError, Releaser
from shared.flows.resubmit import ResubmitError, check_request_id
from shared.tracking import Actor
from shared.views.body import BodyError, json_object, request_id_of
from shared.views.files import find_record
from shared.views.guard import with_context
from shared.views.records import RecordView, record_json
from shared.views.response import ApiResponse, problem

__all__ = ["release"]

_LOGGER = logging.getLogger(__name__)
_EXAMPLE = '{"request_id": "<a new UUID>"}'


def release(
    context_factory: Callable[[], AppContext],
    key: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    actor: Actor,
) -> ApiResponse:
    """``POST /api/messages/{id}/release``: the request id from the ``Idempotency-Key``
    header or ``request_id`` in the JSON body."""

    def answer(context: AppContext) -> ApiResponse:
        try:
            request_id = _request_id(headers, body)
        except (BodyError, ResubmitError) as exc:
            return problem(exc.status, str(exc))
        found = find_record(context, key)
        if isinstance(found, ApiResponse):
            return found
        releaser = Releaser(context.store, context.enqueuer, context.audit)
        try:
            record = releaser.release(found.row_key, request_id=request_id, actor=actor)
        except ReleaseError as exc:
            return problem(exc.status, str(exc))
        except AzureError as exc:
            _LOGGER.exception("release failed record=%s request=%s", found.record_id, request_id)
            return problem(
                503,
                f"storage failed during the release ({safe_text(exc)}); send it again with the "
                "same request id",
            )
        return ApiResponse(200, record_json(record, RecordView.of(context, full_errors=False)))

    return with_context(context_factory, answer)


def _request_id(headers: Mapping[str, str], body: bytes) -> str:
    """The request id: the ``Idempotency-Key`` header, else ``request_id`` of the body.

    :raises BodyError: a body that is too large or not a JSON object, a non-text request_id.
    :raises ResubmitError: no request id, or one that is not accepted (400).
    """
    options = json_object(body, example=_EXAMPLE)
    return check_request_id(request_id_of(headers, options, example=_EXAMPLE))
