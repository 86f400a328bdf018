"""The client's calls about enqueued messages: enqueue, their status, their execution."""

from __future__ import annotations

import logging
import time
from urllib.parse import quote, urlencode

from ._body import Body, UploadBody
from ._engine import Calls
from ._errors import D365HttpError
from ._execution_errors import parse_execution_errors
from ._external_id import external_id_header
from ._failures import parser
from ._models import (
    EnqueueResult,
    ExecutionErrors,
    ExecutionSummaryStatusResult,
    MessageStatusResult,
)
from ._parsing import (
    normalize_guid,
    parse_enqueue_response,
    parse_execution_id,
    parse_execution_summary_status,
    parse_message_status,
)
from ._retry import RetryPolicy
from ._text import require_text
from ._tracing import log_ids

__all__ = ["MessageCalls"]

_LOGGER = logging.getLogger(__name__)
# GetExecutionSummaryStatus soon after ImportFromPackage: the execution is not created yet.
_NOT_YET_CREATED = "were not found"


class MessageCalls(Calls):
    """Enqueue, with the status calls that follow an enqueued message."""

    def enqueue(
        self,
        activity_id: str,
        body: Body,
        *,
        length: int | None = None,
        entity: str | None = None,
        company: str | None = None,
        external_id: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> EnqueueResult:
        """Send a file to a recurring data job; returns the message F&O created.

        The body is streamed with a Content-Length in fixed chunks, never read whole. It is
        re-sent only when the failure proves F&O did not take it (429, 503, or no connection /
        an incomplete upload); after anything else the error surfaces, so no silent duplicate.

        :param activity_id: the recurring data job's id (GUID, braces and any case accepted).
        :param body: bytes, a seekable binary stream (re-read from its current position on
            each attempt) or a callable returning a fresh binary stream per attempt.
        :keyword length: the body's size in bytes; required when it cannot be found out.
        :keyword entity: the entity name, for file jobs (omit for data-package jobs).
        :keyword company: the legal entity, honoured with "Use company from message".
        :keyword external_id: F&O's external identifier for the message, usually the file name;
            sent as `external_id_header(external_id)`, which is what F&O shows.
        :keyword retry: this call's retry policy instead of the client's; a caller that records
            each attempt itself passes ``RetryPolicy(max_attempts=1)``.
        :raises ValueError: for an activity id that is not a GUID, an unusable body or an
            external id that is not valid Unicode text.
        :raises D365HttpError: (a subclass of it) when F&O refuses the file.
        :raises D365ConnectionError: when no response came; see its `sent_body`.
        :raises D365ResponseError: when the answer holds no message id.
        :raises D365CredentialError: when no token could be obtained.
        """
        activity = normalize_guid(activity_id, "activity_id")
        upload = UploadBody(body, length, self._engine.chunk_size)
        query = {name: value for name, value in (("entity", entity), ("company", company)) if value}
        url = f"{self._engine.base_url}/api/connector/enqueue/{activity}"
        if query:
            url += "?" + urlencode(query, quote_via=quote)
        headers = {}
        header_id = external_id_header(external_id) if external_id else None
        if header_id:
            headers["x-ms-dyn-externalidentifier"] = header_id
        context = self._engine.context(
            "enqueue",
            "POST",
            url,
            activity_id=activity,
            external_id=header_id,
            body_length=upload.length,
            resend_safe=False,
        )
        started = time.monotonic()
        result, attempts = self._engine.call(
            context,
            parser(context, parse_enqueue_response),
            headers=headers,
            upload=upload,
            retry=retry,
        )
        _LOGGER.info(
            "enqueued activity=%s external_id=%s message_id=%s bytes=%s seconds=%.3f attempts=%d",
            activity,
            external_id,
            result.message_id,
            upload.length,
            time.monotonic() - started,
            attempts,
            extra=log_ids(activity_id=activity, message_id=result.message_id),
        )
        return result

    def get_message_status(
        self, message_id: str, *, retry: RetryPolicy | None = None
    ) -> MessageStatusResult:
        """GetMessageStatus: the status of an enqueued (or exported) message.

        F&O answers the status name as a string; a name we do not know is kept in `raw` with
        `status` None. A JSON null reads as an empty string (no status to report yet). Any
        other JSON type (object, array, number, boolean) is not a status: it raises
        `D365ResponseError` showing that JSON, rather than being stored as if it were one.

        :keyword retry: this call's retry policy instead of the client's (the health check
            makes a single attempt).
        :raises ValueError: for an empty message id.
        :raises D365ResponseError: when the answer's `value` is not a string or null.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        message = require_text(message_id, "message_id")
        result: MessageStatusResult = self._engine.action(
            "GetMessageStatus",
            {"messageId": message},
            convert=parse_message_status,
            retry=retry,
            message_id=message,
        )
        return result

    def get_execution_id(self, message_id: str) -> str | None:
        """GetExecutionIdByMessageId: the DMF execution id, or None while not assigned yet
        (an empty string, the all-zero GUID or a JSON null).

        An execution id is text such as ``CustomersV3-2024-05-01T10:00:00-3F2A...``; any other
        JSON type (object, array, number, boolean) raises `D365ResponseError` showing that
        JSON, so it is never used as an id in later calls.

        :raises ValueError: for an empty message id.
        :raises D365ResponseError: when the answer's `value` is not a string or null.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        message = require_text(message_id, "message_id")
        return self._engine.action(
            "GetExecutionIdByMessageId",
            {"_messageId": message},
            convert=parse_execution_id,
            message_id=message,
        )

    def get_execution_errors(self, execution_id: str) -> ExecutionErrors:
        """GetExecutionErrors: the row-level errors of an execution, raw text always kept.

        F&O answers a string holding a JSON array of ``{RecordId, Field, ErrorMessage}``.
        The errors are details of an outcome already known, so any answer is accepted and
        nothing is lost: an array or object sent as JSON itself (not inside a string) is read
        the same way, with `raw` its JSON text (keys sorted, non-ASCII kept); an element
        without those keys becomes an error whose message is its JSON text; a number or
        boolean becomes one error with its JSON text as message (`strict` False); a JSON
        null means no errors (`raw` "").

        :raises ValueError: for an empty execution id.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        execution = require_text(execution_id, "execution_id")
        return self._engine.action(
            "GetExecutionErrors",
            {"executionId": execution},
            convert=parse_execution_errors,
            execution_id=execution,
        )

    def get_execution_summary_status(self, execution_id: str) -> ExecutionSummaryStatusResult:
        """GetExecutionSummaryStatus: the DMF execution's overall status (unknown text kept).

        As for `get_message_status`: a JSON null reads as an empty string (status None), and
        any other non-string JSON raises `D365ResponseError` showing that JSON.

        A 400 whose text says the execution "were not found" (F&O has not created it yet,
        soon after ImportFromPackage) answers status None with `not_found` True.

        :raises ValueError: for an empty execution id.
        :raises D365ResponseError: when the answer's `value` is not a string or null.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        execution = require_text(execution_id, "execution_id")
        try:
            result: ExecutionSummaryStatusResult = self._engine.action(
                "GetExecutionSummaryStatus",
                {"executionId": execution},
                convert=parse_execution_summary_status,
                execution_id=execution,
            )
        except D365HttpError as exc:
            # Soon after ImportFromPackage F&O may answer 400 "... were not found": the
            # execution is not created yet, which is "no status yet", not a failure.
            if exc.status_code == 400 and _NOT_YET_CREATED in (exc.fno_message or "").lower():
                return ExecutionSummaryStatusResult(status=None, raw="", not_found=True)
            raise
        return result
