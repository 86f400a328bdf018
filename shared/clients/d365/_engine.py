"""The request engine of the F&O client: every HTTP call goes through it, retries included."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, TypeVar

import requests
from azure.core.credentials import TokenCredential
from urllib3.exceptions import NewConnectionError

from ._body import DEFAULT_CHUNK_SIZE, BodyLengthError, ChunkedUpload, UploadBody
from ._errors import NOT_TAKEN_STATUSES, D365CredentialError
from ._failures import (
    connection_error,
    describe_exception,
    error_from_response,
    parser,
    request_id_of,
)
from ._operation import OperationContext
from ._parsing import odata_value
from ._retry import RetryBudget, RetryPolicy, retry_after_of
from ._text import redact_sas, shorten, url_without_query
from ._token import HeldToken
from ._tracing import d365_call, log_ids, record_retry
from ._transport import DEFAULT_CONNECT_TIMEOUT, Timeouts, new_session, validate_pool_maxsize
from ._urls import UrlPolicy, validate_base_url

__all__ = ["JSON", "USER_AGENT", "Calls", "Engine"]

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
JSON = "application/json; charset=utf-8"
USER_AGENT = f"d365-recurring-integrations/0.1 {requests.utils.default_user_agent()}"
# The not-taken statuses (NOT_TAKEN_STATUSES) that waiting Retry-After may cure within the
# call, so even an enqueue is re-sent at once; the others need a fix and wait for the caller.
_RETRIED_IN_CALL = NOT_TAKEN_STATUSES & {429, 503}
_TRANSIENT_EXCEPTIONS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class Engine:
    """The session, credential, timeouts and retry policy of one client, and the calls made
    with them (the arguments are :class:`D365Client`'s)."""

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
        user_agent: str = USER_AGENT,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        sleep: Callable[[float], object] = time.sleep,
        sas_hosts: Iterable[str] = (),
    ) -> None:
        self.base_url = validate_base_url(base_url)
        self.urls = UrlPolicy.of(self.base_url, sas_hosts)
        self.scope = f"{self.base_url.lower()}/.default"
        self.chunk_size = chunk_size
        self._credential = credential
        self._token = HeldToken(credential, self.scope)
        self._retry = retry or RetryPolicy()
        self._timeouts = Timeouts(connect=connect_timeout, read=read_timeout, write=write_timeout)
        validate_pool_maxsize(pool_maxsize)
        self._owns_session = session is None
        self._session = session or new_session(
            write_timeout=write_timeout, pool_maxsize=pool_maxsize
        )
        self._user_agent = user_agent
        self._sleep = sleep

    def close(self) -> None:
        """Close the HTTP session if the engine created it."""
        if self._owns_session:
            self._session.close()

    def stream_to(
        self,
        context: OperationContext,
        destination: BinaryIO,
        *,
        chunk_size: int | None = None,
        authorize: bool = True,
    ) -> int:
        """GET `context.url` into `destination`; a retry after a partial read rewinds it
        when it is seekable."""
        size = chunk_size or self.chunk_size
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

        total, _ = self.call(context, write, stream=True, rewind=rewind, authorize=authorize)
        return total

    def context(self, operation: str, method: str, url: str, **ids: Any) -> OperationContext:
        return OperationContext(
            operation=operation, method=method, url=url, scope=self.scope, **ids
        )

    def action(
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
        url = f"{self.base_url}{_ACTIONS_PATH}{action}"
        context = self.context(action, "POST", url, resend_safe=resend_safe, **ids)
        value, _ = self.call(
            context,
            parser(context, lambda text: convert(odata_value(text))),
            headers={"Accept": "application/json", "Content-Type": JSON},
            data=json.dumps(parameters).encode("utf-8"),
            retry=retry,
        )
        return value

    def call(
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
            token = self._authorization(context) if authorize else None
            if token is not None:
                request_headers["Authorization"] = f"Bearer {token}"
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
                            retry_after=retry_after_of(response),
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
                if response.status_code == 401 and token is not None:
                    # The next attempt, of this call or the caller's next, asks anew.
                    self._token.drop(token)
                if self._may_retry_response(context, response, attempt, budget):
                    continue
                raise error_from_response(
                    response,
                    context,
                    attempts=attempt,
                    retry_after=retry_after_of(response),
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
        if status not in _RETRIED_IN_CALL and not (status >= 500 and context.resend_safe):
            return False
        wait = retry_after_of(response)
        if wait is None:
            policy = budget.policy
            wait = (
                policy.default_retry_after
                if status in _RETRIED_IN_CALL
                else policy.backoff(attempt)
            )
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
            return self._token.get()
        except Exception as exc:
            # Any failure of the credential (azure-identity raises several types) is ours
            # to explain; its own text names the cause and never the secret.
            raise D365CredentialError(
                f"{context.operation}: the credential {type(self._credential).__name__} could "
                f"not get a token for scope {self.scope}: {shorten(str(exc), 300)} Check the "
                "tenant id, the client id, the client secret or certificate (and its expiry) "
                "and the authority host.",
                scope=self.scope,
                **context.error_ids(),
            ) from exc


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


class Calls:
    """A group of the client's calls (messages, exports, packages), sent through one engine."""

    _engine: Engine
