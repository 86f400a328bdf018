"""What ``POST /api/messages/{id}/resubmit`` answers: a final file sent again, once per request.

The request id comes from the ``Idempotency-Key`` header or ``request_id`` in the JSON body;
``confirm`` (JSON true) is required for a risky file. The work is
:class:`shared.flows.resubmit.Resubmitter`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from azure.core.exceptions import AzureError

from shared.context import AppContext
from shared.errors import safe_text
from shared.flows.resubmit import ResubmitError, Resubmitter, check_request_id
from shared.tracking import Actor
from shared.views.body import BodyError, json_object, request_id_of
from shared.views.files import find_record
from shared.views.guard import with_context
from shared.views.records import RecordView, record_json
from shared.views.response import ApiResponse, problem

__all__ = ["resubmit"]

_LOGGER = logging.getLogger(__name__)
_EXAMPLE = '{"request_id": "<a new UUID>", "confirm": true}'


def resubmit(
    context_factory: Callable[[], AppContext],
    key: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    actor: Actor,
) -> ApiResponse:
    """``POST /api/messages/{id}/resubmit``: the request id from the ``Idempotency-Key``
    header or ``request_id`` in the JSON body; ``confirm`` (JSON true) for a risky file.

    :keyword actor: who asks (recorded on both records and in the audit trail).
    """

    def answer(context: AppContext) -> ApiResponse:
        try:
            sent_request_id, confirm = _options(headers, body)
        except BodyError as exc:
            return problem(exc.status, str(exc))
        found = find_record(context, key)
        if isinstance(found, ApiResponse):
            return found
        try:
            # Checked before it is logged: one event, one log line.
            request_id = check_request_id(sent_request_id)
        except ResubmitError as exc:
            return problem(exc.status, str(exc))
        _LOGGER.info(
            "resubmit requested record=%s request=%s actor_kind=%s actor_object_id=%s",
            found.record_id,
            request_id,
            actor.kind.value,
            actor.object_id,
        )
        resubmitter = Resubmitter(
            context.store, context.enqueuer, context.inbound, context.blob_service, context.audit
        )
        try:
            result = resubmitter.resubmit(
                found.row_key,
                request_id=request_id,
                actor=actor,
                confirm=confirm,
            )
        except ResubmitError as exc:
            return problem(exc.status, str(exc))
        except AzureError as exc:
            _LOGGER.exception("resubmit failed record=%s request=%s", found.record_id, request_id)
            return problem(
                503,
                f"storage failed during the resubmit ({safe_text(exc)}); send it again with the "
                "same request id: it finishes what was started and sends the file at most once",
            )
        view = RecordView.of(context, full_errors=False)
        new = result.resubmitted
        return ApiResponse(
            200,
            {
                "resubmitted_as": result.original.resubmitted_as,
                "request_id": result.original.resubmitted_request,
                "original": record_json(result.original, view),
                "resubmitted": record_json(new, view) if new else None,
            },
        )

    return with_context(context_factory, answer)


def _options(headers: Mapping[str, str], body: bytes) -> tuple[str | None, bool]:
    """The request id as sent (header or body) and ``confirm`` from a resubmit body.

    :raises BodyError: a body that is too large, not a JSON object, or has a field of the
        wrong type (a ``confirm`` of "true" must not be taken for false in silence).
    """
    options = json_object(body, example=_EXAMPLE)
    request_id = request_id_of(headers, options, example=_EXAMPLE)
    confirm = options.get("confirm", False)
    if not isinstance(confirm, bool):
        raise BodyError(400, f"confirm in the body is not true or false; expected e.g. {_EXAMPLE}")
    return request_id, confirm
