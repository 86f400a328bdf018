"""`D365Client`: the F&O recurring-integrations API and the DMF actions around it."""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from types import TracebackType
from typing import Any, BinaryIO, Self, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import requests
from azure.core.credentials import TokenCredential
from urllib3.exceptions import NewConnectionError

from ._blocks import (
    BLOCK_SIZE,
    MAX_BLOCKS,
    block_id,
    block_list_xml,
    block_query,
    read_block,
    with_query,
)
from ._body import (
    DEFAULT_CHUNK_SIZE,
    Body,
    BodyLengthError,
    ChunkedUpload,
    Readable,
    UploadBody,
)
from ._errors import (
    NOT_TAKEN_STATUSES,
    D365CredentialError,
    D365HttpError,
    D365ResponseError,
    OperationContext,
    connection_error,
    describe_exception,
    error_from_response,
    request_id_of,
)
from ._external_id import external_id_header
from ._models import (
    AzureWriteUrl,
    DequeuedMessage,
    EnqueueResult,
    ExecutionErrors,
    ExecutionSummaryStatusResult,
    MessageStatusResult,
)
from ._parsing import (
    https_download_url,
    normalize_guid,
    odata_value,
    parse_azure_write_url,
    parse_boolean,
    parse_dequeue,
    parse_enqueue_response,
    parse_execution_errors,
    parse_execution_id,
    parse_execution_summary_status,
    parse_file_url,
    parse_import_execution_id,
    parse_message_status,
    redact_sas,
    shorten,
    url_without_query,
)
from ._retry import RetryBudget, RetryPolicy, parse_retry_after
from ._tracing import d365_call, log_ids, record_retry
from ._transport import DEFAULT_CONNECT_TIMEOUT, Timeouts, new_session, validate_pool_maxsize
from ._urls import UrlPolicy

__all__ = ["D365Client"]


_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")


class _SasRedactingFilter(logging.Filter):
    """Removes SAS signatures from urllib3's DEBUG request lines (it logs whole URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                redact_sas(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_SasRedactingFilter())

_ACTIONS_PATH = "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
_JSON = "application/json; charset=utf-8"
_ZIP = "application/zip"
# Put Blocks of one package upload at once: loopback and a WAN link alike are kept busy while
# memory stays at a few blocks.
_BLOCKS_IN_FLIGHT = 4
_USER_AGENT = f"d365-recurring-integrations/0.1 {requests.utils.default_user_agent()}"
# The not-taken statuses (NOT_TAKEN_STATUSES) that waiting Retry-After may cure within the
# call, so even an enqueue is re-sent at once; the others need a fix and wait for the caller.
_RETRIED_IN_CALL = NOT_TAKEN_STATUSES & {429, 503}
# GetExecutionSummaryStatus soon after ImportFromPackage: the execution is not created yet.
_NOT_YET_CREATED = "were not found"
_TRANSIENT_EXCEPTIONS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class D365Client:
    """Client for one F&O environment's recurring-integrations API.

    :param base_url: the environment root, e.g. ``https://contoso.operations.dynamics.com``.
    :param credential: an azure-identity credential; tokens are requested for
        ``<base_url lower case>/.default`` on every call (the credential caches them).
    :keyword retry: the retry policy; `RetryPolicy()` when None.
    :keyword connect_timeout: seconds to establish a connection (TCP and TLS).
    :keyword read_timeout: seconds to wait for the response: for its first byte once the
        request is sent, and between reads of it.
    :keyword write_timeout: seconds allowed for each send of a request: the headers, then
        every chunk of the body (`chunk_size` bytes), so an F&O that takes a large file
        slowly is given time per chunk, not for the whole file. A send that stalls longer
        raises `D365ConnectionError` naming this option; the body was not sent whole, so
        the call is retried like a lost connection.
    :keyword pool_maxsize: connections kept open to F&O for reuse. Set it to the number of
        calls made at once (the poller's concurrency): more concurrent calls still run, but
        each extra one opens a connection that is closed afterwards.
    :keyword session: a `requests.Session` to use instead of the client's own; the client
        closes only one it created. A session passed in is used as it is (as azure-core
        treats a session it does not own): its adapters decide the pool size and how bodies
        are sent, so `pool_maxsize` and `write_timeout` do not apply to it, and urllib3 sends
        bodies under the connect timeout. Connect and read timeouts apply to every session.
    :keyword user_agent: the User-Agent header.
    :keyword chunk_size: bytes per read when streaming a body in or out.
    :keyword sleep: the function that waits between retries (tests pass a recorder).
    :keyword sas_hosts: hosts (any port) that SAS URLs handed out by F&O may point at besides
        the blob endpoints of F&O's cloud, e.g. a storage emulator's; see
        :mod:`shared.clients.d365._urls` for the rules every URL from F&O is checked against.
    :raises ValueError: when `base_url` is not an http(s) URL without query string, a
        timeout is not a positive number, `pool_maxsize` is not a positive int, or a host of
        `sas_hosts` is not a host name or IP address.
    """

    def __init__(
        self,
        base_url: str,
        credential: TokenCredential,
        *,
        retry: RetryPolicy | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = 300.0,
        write_timeout: float = 300.0,
        pool_maxsize: int = 16,
        session: requests.Session | None = None,
        user_agent: str = _USER_AGENT,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        sleep: Callable[[float], object] = time.sleep,
        sas_hosts: Iterable[str] = (),
    ) -> None:
        self._base_url = _validate_base_url(base_url)
        self._urls = UrlPolicy.of(self._base_url, sas_hosts)
        self._scope = f"{self._base_url.lower()}/.default"
        self._credential = credential
        self._retry = retry or RetryPolicy()
        self._timeouts = Timeouts(connect=connect_timeout, read=read_timeout, write=write_timeout)
        validate_pool_maxsize(pool_maxsize)
        self._owns_session = session is None
        self._session = session or new_session(
            self._base_url, write_timeout=write_timeout, pool_maxsize=pool_maxsize
        )
        self._user_agent = user_agent
        self._chunk_size = chunk_size
        self._sleep = sleep

    @property
    def base_url(self) -> str:
        """The environment root, without trailing slash."""
        return self._base_url

    @property
    def scope(self) -> str:
        """The token scope requested from the credential."""
        return self._scope

    def __repr__(self) -> str:
        return f"D365Client(base_url={self._base_url!r})"

    def close(self) -> None:
        """Close the HTTP session if the client created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

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
        upload = UploadBody(body, length, self._chunk_size)
        query = {name: value for name, value in (("entity", entity), ("company", company)) if value}
        url = f"{self._base_url}/api/connector/enqueue/{activity}"
        if query:
            url += "?" + urlencode(query, quote_via=quote)
        headers = {}
        header_id = external_id_header(external_id) if external_id else None
        if header_id:
            headers["x-ms-dyn-externalidentifier"] = header_id
        context = self._context(
            "enqueue",
            "POST",
            url,
            activity_id=activity,
            external_id=header_id,
            body_length=upload.length,
            resend_safe=False,
        )
        started = time.monotonic()
        result, attempts = self._call(
            context,
            _parser(context, parse_enqueue_response),
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
        message = _require_text(message_id, "message_id")
        result: MessageStatusResult = self._action(
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
        message = _require_text(message_id, "message_id")
        return self._action(
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
        execution = _require_text(execution_id, "execution_id")
        return self._action(
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
        execution = _require_text(execution_id, "execution_id")
        try:
            result: ExecutionSummaryStatusResult = self._action(
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

    def dequeue(self, activity_id: str) -> DequeuedMessage | None:
        """Take the next exported message of a recurring export job; None when there is none.

        :raises ValueError: for an activity id that is not a GUID.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        activity = normalize_guid(activity_id, "activity_id")
        url = f"{self._base_url}/api/connector/dequeue/{activity}"
        context = self._context("dequeue", "GET", url, activity_id=activity)
        parse = _parser(context, parse_dequeue)

        def read(response: requests.Response) -> DequeuedMessage | None:
            if response.status_code == 204 or not response.content.strip():
                return None
            return parse(response)

        message, _ = self._call(context, read)
        if message is not None:
            _LOGGER.info(
                "dequeued activity=%s correlation_id=%s",
                activity,
                message.correlation_id,
                extra=log_ids(activity_id=activity),
            )
        return message

    def download(
        self, location: str, destination: BinaryIO, *, chunk_size: int | None = None
    ) -> int:
        """Stream a dequeued message's file into `destination`; returns the bytes written.

        `http://` locations are fetched over https (F&O's load balancer reports plain http).
        A location on F&O's exact origin (scheme, host, port) is fetched with the access
        token; a SAS URL (see :mod:`shared.clients.d365._urls`) without it; anything else is
        refused.
        A retry after a partial download rewinds `destination` when it is seekable.

        :raises D365UntrustedUrlError: the location is neither, before anything is sent.
        :raises D365Error: (a subclass of it) when the download fails.
        """
        try:
            rewritten = https_download_url(location)
        except ValueError:
            rewritten = location  # the policy names what is wrong with it
        url, authorize = self._urls.check_download(
            rewritten, operation="download", what="DownloadLocation"
        )
        context = self._context("download", "GET", url)
        total = self._stream_to(context, destination, chunk_size=chunk_size, authorize=authorize)
        _LOGGER.info("downloaded url=%s bytes=%d", url_without_query(url), total)
        return total

    def _stream_to(
        self,
        context: OperationContext,
        destination: BinaryIO,
        *,
        chunk_size: int | None = None,
        authorize: bool = True,
    ) -> int:
        """GET `context.url` into `destination`; a retry after a partial read rewinds it
        when it is seekable."""
        size = chunk_size or self._chunk_size
        start = destination.tell() if destination.seekable() else None
        written = 0

        def write(response: requests.Response) -> int:
            nonlocal written
            for chunk in response.iter_content(chunk_size=size):
                destination.write(chunk)
                written += len(chunk)
            return written

        def rewind() -> bool:
            nonlocal written
            if written and start is None:
                return False
            if start is not None:
                destination.seek(start)
                destination.truncate()
            written = 0
            return True

        total, _ = self._call(context, write, stream=True, rewind=rewind, authorize=authorize)
        return total

    def ack(self, activity_id: str, message: DequeuedMessage) -> None:
        """Acknowledge a downloaded message: posts back the dequeue body, as the docs require.

        :raises ValueError: for an activity id that is not a GUID.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        activity = normalize_guid(activity_id, "activity_id")
        body = message.raw or json.dumps(
            {
                "CorrelationId": message.correlation_id,
                "PopReceipt": message.pop_receipt,
                "DownloadLocation": message.download_location,
            }
        )
        url = f"{self._base_url}/api/connector/ack/{activity}"
        context = self._context("ack", "POST", url, activity_id=activity)
        self._call(
            context,
            lambda response: None,
            headers={"Content-Type": _JSON},
            data=body.encode("utf-8"),
        )
        _LOGGER.info(
            "acked activity=%s correlation_id=%s",
            activity,
            message.correlation_id,
            extra=log_ids(activity_id=activity),
        )

    # -- DMF package API --------------------------------------------------------------------

    def get_azure_write_url(self, unique_file_name: str) -> AzureWriteUrl:
        """GetAzureWriteUrl: a time-limited SAS URL to upload a package to.

        F&O answers `value` as a JSON string holding ``BlobId`` (a braced GUID) and
        ``BlobUrl``; it is parsed again. The URL is a secret while it lives: it never
        appears in a log line or an error text.

        :raises ValueError: for an empty file name.
        :raises D365ResponseError: when the answer holds no usable URL.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        name = _require_text(unique_file_name, "unique_file_name")
        result: AzureWriteUrl = self._action(
            "GetAzureWriteUrl", {"uniqueFileName": name}, convert=parse_azure_write_url
        )
        _LOGGER.info("write url issued blob_id=%s file=%s", result.blob_id, name)
        return result

    def upload_package(
        self,
        url: str,
        stream_factory: Callable[[], Readable],
        *,
        length: int,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Upload a package to the SAS URL of `get_azure_write_url` as a block blob: Put Block
        of 4 MiB blocks, which every storage version takes (see
        :mod:`shared.clients.d365._blocks`), a few in flight, then Put Block List, which makes the
        blob exist.

        Memory stays near ``BLOCK_SIZE * (blocks in flight + 1)`` whatever the package's size.
        No Authorization header is sent (the SAS authorises the calls, and the token must not
        leave for the storage host). A Put Block and the Put Block List are idempotent: each is
        retried like a read with its own bytes, and the stream is read once.

        :param url: the BlobUrl, SAS query string included.
        :param stream_factory: opens the package's binary stream (read once, then closed).
        :keyword length: the package's size in bytes.
        :keyword retry: each call's retry policy instead of the client's.
        :raises D365UntrustedUrlError: `url` is not a SAS URL the client may call (see
            :mod:`shared.clients.d365._urls`), before anything is sent.
        :raises ValueError: when the stream ends early, or the package would need more than
            50,000 blocks.
        :raises D365Error: (a subclass of it) when the upload fails.
        """
        url = self._urls.check_sas(url, operation="upload_package", what="BlobUrl")
        if length > MAX_BLOCKS * BLOCK_SIZE:
            raise ValueError(
                f"upload_package: {length:,} bytes is more than a block blob holds in "
                f"{MAX_BLOCKS:,} blocks of {BLOCK_SIZE:,} bytes"
            )
        started = time.monotonic()
        stream = stream_factory()
        try:
            ids = self._put_blocks(url, stream, length, retry)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        commit = with_query(url, "comp=blocklist")
        self._call(
            self._context("upload_package", "PUT", commit, body_length=length),
            lambda response: None,
            headers={"Content-Type": "application/xml", "x-ms-blob-content-type": _ZIP},
            data=block_list_xml(ids),
            retry=retry,
            authorize=False,
        )
        _LOGGER.info(
            "package uploaded url=%s bytes=%d blocks=%d seconds=%.3f",
            url_without_query(url),
            length,
            len(ids),
            time.monotonic() - started,
        )

    def _put_blocks(
        self, url: str, stream: Readable, length: int, retry: RetryPolicy | None
    ) -> list[str]:
        """Stage `length` bytes of `stream` as blocks, `_BLOCKS_IN_FLIGHT` at most at once;
        returns their ids in order.

        A failure (a block refused, the stream's deadline) stops the reading and is raised at
        once: blocks still in flight end on their own, and staged blocks no list commits are
        invisible and discarded by the storage service.
        """
        ids: list[str] = []
        in_flight: deque[Future[None]] = deque()
        pool = ThreadPoolExecutor(_BLOCKS_IN_FLIGHT, thread_name_prefix="put-block")
        try:
            remaining = length
            while remaining > 0:
                if len(in_flight) == _BLOCKS_IN_FLIGHT:
                    in_flight.popleft().result()
                data = read_block(stream, min(BLOCK_SIZE, remaining))
                if not data:
                    raise ValueError(
                        f"upload_package: the package stream ended after "
                        f"{length - remaining} of the {length} bytes given as length"
                    )
                ids.append(block_id(len(ids)))
                in_flight.append(pool.submit(self._put_block, url, ids[-1], data, retry))
                remaining -= len(data)
            while in_flight:
                in_flight.popleft().result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return ids

    def _put_block(self, url: str, identifier: str, data: bytes, retry: RetryPolicy | None) -> None:
        block_url = with_query(url, block_query(identifier))
        self._call(
            self._context("upload_package", "PUT", block_url, body_length=len(data)),
            lambda response: None,
            data=data,
            retry=retry,
            authorize=False,
        )

    def import_from_package(
        self,
        package_url: str,
        definition_group_id: str,
        execution_id: str,
        *,
        execute: bool = True,
        overwrite: bool = True,
        legal_entity_id: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> str:
        """ImportFromPackage: import an uploaded package into a data project; returns the
        execution id F&O answered (`execution_id` when it answers none). F&O may answer
        another id than the one sent: the caller follows F&O's.

        Like an enqueue it is never re-sent blindly: within the call only 429, 503 and no
        connection are retried; the other statuses of `NOT_TAKEN_STATUSES` (401, 403, 404,
        408) also prove F&O did not take it, and are the caller's to send again later, as
        for an enqueue. The synchronous call may outlive the read timeout while F&O goes on;
        the caller then follows `execution_id` with `get_execution_summary_status` instead of
        calling again.

        :param package_url: the BlobUrl the package was uploaded to.
        :param definition_group_id: the data project's name.
        :param execution_id: the execution id to create (F&O takes free text).
        :keyword execute: run the staging-to-target step too.
        :keyword overwrite: replace existing records (must be False for composite entities).
        :keyword legal_entity_id: the company (DataAreaId) to import into.
        :keyword retry: this call's retry policy instead of the client's.
        :raises ValueError: for an empty project or execution id.
        :raises D365HttpError: (a subclass of it) when F&O refuses the import.
        :raises D365ConnectionError: when no answer came; see its `sent_body`.
        :raises D365Error: (a subclass of it) for any other failure.
        """
        project = _require_text(definition_group_id, "definition_group_id")
        execution = _require_text(execution_id, "execution_id")
        parameters: dict[str, Any] = {
            "packageUrl": package_url,
            "definitionGroupId": project,
            "executionId": execution,
            "execute": execute,
            "overwrite": overwrite,
            "legalEntityId": legal_entity_id or "",
        }
        answered: str | None = self._action(
            "ImportFromPackage",
            parameters,
            convert=parse_import_execution_id,
            resend_safe=False,
            retry=retry,
            execution_id=execution,
        )
        _LOGGER.info(
            "import started project=%s execution_id=%s company=%s",
            project,
            answered or execution,
            legal_entity_id,
            extra=log_ids(execution_id=answered or execution),
        )
        return answered or execution

    def get_import_staging_error_file_url(self, execution_id: str, entity_name: str) -> str | None:
        """GetImportStagingErrorFileUrl: the SAS URL of the rows of `entity_name` that failed
        source to staging; None when there is none.

        :raises ValueError: for an empty id or entity name.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        return self._entity_action(
            "GetImportStagingErrorFileUrl", execution_id, entity_name, parse_file_url
        )

    def generate_import_target_error_keys_file(self, execution_id: str, entity_name: str) -> bool:
        """GenerateImportTargetErrorKeysFile: start writing the keys of the rows that failed
        staging to target; True when there are such rows (then poll
        `get_import_target_error_keys_file_url`).

        :raises ValueError: for an empty id or entity name.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        return self._entity_action(
            "GenerateImportTargetErrorKeysFile", execution_id, entity_name, parse_boolean
        )

    def get_import_target_error_keys_file_url(
        self, execution_id: str, entity_name: str
    ) -> str | None:
        """GetImportTargetErrorKeysFileUrl: the SAS URL of the keys file; None while it is
        still being generated (or when there are no errors).

        :raises ValueError: for an empty id or entity name.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        return self._entity_action(
            "GetImportTargetErrorKeysFileUrl", execution_id, entity_name, parse_file_url
        )

    def download_sas_file(self, url: str, destination: BinaryIO) -> int:
        """Stream a file F&O handed out as a SAS URL (an error file) into `destination`, with
        no Authorization header; returns the bytes written.

        :raises D365UntrustedUrlError: `url` is not a SAS URL the client may call (see
            :mod:`shared.clients.d365._urls`), before anything is sent.
        :raises D365Error: (a subclass of it) when the download fails.
        """
        url = self._urls.check_sas(url, operation="download_sas_file", what="error file URL")
        return self._stream_to(
            self._context("download_sas_file", "GET", url), destination, authorize=False
        )

    def _entity_action(
        self, action: str, execution_id: str, entity_name: str, convert: Callable[[Any], _T]
    ) -> _T:
        execution = _require_text(execution_id, "execution_id")
        entity = _require_text(entity_name, "entity_name")
        result: _T = self._action(
            action,
            {"executionId": execution, "entityName": entity},
            convert=convert,
            execution_id=execution,
        )
        return result

    def _context(self, operation: str, method: str, url: str, **ids: Any) -> OperationContext:
        return OperationContext(
            operation=operation, method=method, url=url, scope=self._scope, **ids
        )

    def _action(
        self,
        action: str,
        parameters: dict[str, Any],
        *,
        convert: Callable[[Any], Any] = lambda value: value,
        resend_safe: bool = True,
        retry: RetryPolicy | None = None,
        **ids: str,
    ) -> Any:
        """POST an OData action with a JSON body; returns `convert` of its answer's `value`.

        :keyword resend_safe: False for an action that must not run twice (ImportFromPackage).
        """
        url = f"{self._base_url}{_ACTIONS_PATH}{action}"
        context = self._context(action, "POST", url, resend_safe=resend_safe, **ids)
        value, _ = self._call(
            context,
            _parser(context, lambda text: convert(odata_value(text))),
            headers={"Accept": "application/json", "Content-Type": _JSON},
            data=json.dumps(parameters).encode("utf-8"),
            retry=retry,
        )
        return value

    def _call(
        self,
        context: OperationContext,
        read: Callable[[requests.Response], _T],
        *,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        upload: UploadBody | None = None,
        stream: bool = False,
        rewind: Callable[[], bool] | None = None,
        retry: RetryPolicy | None = None,
        authorize: bool = True,
    ) -> tuple[_T, int]:
        """Send until F&O answers 2xx or the retry policy says stop; returns what `read`
        made of the answer and the number of attempts. All retries happen here.

        :keyword authorize: False for a SAS URL: no token is asked for or sent.
        """
        budget = RetryBudget(retry or self._retry, self._sleep)
        while True:
            attempt = budget.begin_attempt()
            request_headers = {"User-Agent": self._user_agent, **(headers or {})}
            if authorize:
                request_headers["Authorization"] = self._authorization(context)
            with self._payload(upload, data) as payload:
                try:
                    with d365_call(
                        context.operation,
                        context.method,
                        url_without_query(context.url),
                        attempt=attempt,
                        activity_id=context.activity_id,
                        message_id=context.message_id,
                        execution_id=context.execution_id,
                    ) as call:
                        response = self._session.request(
                            context.method,
                            context.url,
                            headers=request_headers,
                            data=payload,
                            timeout=(self._timeouts.connect, self._timeouts.read),
                            allow_redirects=False,
                            stream=stream,
                        )
                        call.answered(
                            response.status_code,
                            retry_after=parse_retry_after(response.headers.get("Retry-After")),
                            request_id=request_id_of(response),
                        )
                except requests.RequestException as exc:
                    if self._may_retry_exception(context, exc, payload, attempt, budget):
                        continue
                    raise connection_error(
                        context,
                        exc,
                        sent_body=_sent_body(exc, payload),
                        attempts=attempt,
                        timeouts=self._timeouts,
                    ) from exc
                except BodyLengthError as exc:
                    raise ValueError(f"{context.operation}: {exc}") from None
            with response:
                if 200 <= response.status_code < 300:
                    try:
                        return read(response), attempt
                    except requests.RequestException as exc:
                        # The answer broke off while streaming (a download).
                        retry = rewind is None or rewind()
                        if retry and self._may_retry_exception(context, exc, None, attempt, budget):
                            continue
                        raise connection_error(
                            context,
                            exc,
                            sent_body=True,
                            attempts=attempt,
                            timeouts=self._timeouts,
                        ) from exc
                if self._may_retry_response(context, response, attempt, budget):
                    continue
                raise error_from_response(
                    response,
                    context,
                    attempts=attempt,
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                    budget=budget.policy.describe(),
                )

    @contextmanager
    def _payload(
        self, upload: UploadBody | None, data: bytes | None
    ) -> Iterator[ChunkedUpload | bytes | None]:
        if upload is None:
            yield data
            return
        with upload.attempt() as payload:
            yield payload

    def _may_retry_exception(
        self,
        context: OperationContext,
        exc: requests.RequestException,
        payload: ChunkedUpload | bytes | None,
        attempt: int,
        budget: RetryBudget,
    ) -> bool:
        """Wait and return True when the failed attempt may be repeated."""
        if not _is_transient(exc):
            return False
        if not context.resend_safe and _sent_body(exc, payload):
            return False
        wait = budget.policy.backoff(attempt)
        if not budget.allows(wait):
            return False
        self._log_retry(context, attempt, describe_exception(exc, self._timeouts), wait, None)
        budget.sleep(wait)
        return True

    def _may_retry_response(
        self,
        context: OperationContext,
        response: requests.Response,
        attempt: int,
        budget: RetryBudget,
    ) -> bool:
        """Wait and return True when F&O's non-2xx answer says a repeat may succeed."""
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        policy = budget.policy
        if status in _RETRIED_IN_CALL:
            wait = policy.default_retry_after if retry_after is None else retry_after
        elif status >= 500 and context.resend_safe:
            wait = policy.backoff(attempt) if retry_after is None else retry_after
        else:
            return False
        if not budget.allows(wait):
            return False
        self._log_retry(context, attempt, f"HTTP {status}", wait, request_id_of(response))
        budget.sleep(wait)
        return True

    def _log_retry(
        self,
        context: OperationContext,
        attempt: int,
        cause: str,
        wait: float,
        request_id: str | None,
    ) -> None:
        _LOGGER.warning(
            "retrying operation=%s attempt=%d/%d cause=%s wait=%.2fs activity=%s message=%s "
            "execution=%s request_id=%s",
            context.operation,
            attempt,
            self._retry.max_attempts,
            cause,
            wait,
            context.activity_id,
            context.message_id,
            context.execution_id,
            request_id,
            extra=log_ids(
                activity_id=context.activity_id,
                message_id=context.message_id,
                execution_id=context.execution_id,
                d365_operation=context.operation,
                d365_attempt=attempt,
                d365_status=cause,
            ),
        )
        record_retry(context.operation, cause=cause, wait=wait)

    def _authorization(self, context: OperationContext) -> str:
        try:
            token = self._credential.get_token(self._scope)
        except Exception as exc:
            # Any failure of the credential (azure-identity raises several types) is ours
            # to explain; its own text names the cause and never the secret.
            raise D365CredentialError(
                f"{context.operation}: the credential {type(self._credential).__name__} could "
                f"not get a token for scope {self._scope}: {shorten(str(exc), 300)} Check the "
                "tenant id, the client id, the client secret or certificate (and its expiry) "
                "and the authority host.",
                scope=self._scope,
                **context.error_ids(),
            ) from exc
        return f"Bearer {token.token}"


def _parser(
    context: OperationContext, parse: Callable[[str], _T]
) -> Callable[[requests.Response], _T]:
    """A reader of a 2xx response that applies `parse` to its text; a ValueError from
    `parse` becomes a `D365ResponseError` for `context`."""

    def read(response: requests.Response) -> _T:
        text = response.text
        # Package actions answer SAS URLs: their signatures never reach a log or an error.
        _LOGGER.debug("%s response body: %s", context.operation, redact_sas(shorten(text, 2000)))
        try:
            return parse(text)
        except ValueError as exc:
            raise D365ResponseError(
                f"{context.describe()} returned a response the client cannot read: {exc}",
                url=url_without_query(context.url),
                status_code=response.status_code,
                body=redact_sas(shorten(text)),
                request_id=request_id_of(response),
                **context.error_ids(),
            ) from None

    return read


def _validate_base_url(base_url: str) -> str:
    parts = urlsplit(base_url.strip() if isinstance(base_url, str) else "")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"base_url must be the environment root such as "
            f"https://contoso.operations.dynamics.com, got {base_url!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError("base_url must not have a query string or fragment")
    return base_url.strip().rstrip("/")


def _require_text(value: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return value.strip()


def _is_transient(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.exceptions.SSLError):
        # A certificate problem is configuration; anything else is a broken connection.
        return "certificate" not in str(exc).lower()
    return isinstance(exc, _TRANSIENT_EXCEPTIONS)


def _sent_body(exc: requests.RequestException, payload: ChunkedUpload | bytes | None) -> bool:
    """False only when the failure proves F&O did not get the whole request."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, NewConnectionError):
        return False
    return not (isinstance(payload, ChunkedUpload) and not payload.completed)
