"""The request engine of the F&O client: every HTTP call goes through it, retries included."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, Generic, TypeVar

import requests
from azure.core.credentials import TokenCredential

from ._body import BodyLengthError, ChunkedUpload, UploadBody
from ._budget import UNLIMITED, CallBudget, Reservations, permit
from ._errors import NOT_TAKEN_STATUSES, D365CredentialError
from ._failures import (
    connection_error,
    describe_exception,
    error_from_response,
    is_transient,
    parser,
    request_id_of,
    sent_body,
)
from ._operation import OperationContext
from ._parsing import odata_value
from ._retry import RetryBudget, RetryPolicy, retry_after_of
from ._text import shorten, url_without_query
from ._token import HeldToken
from ._tracing import d365_call, log_retry
from ._transport import Timeouts, new_session, validate_pool_maxsize
from ._urls import UrlPolicy, validate_base_url

__all__ = ["JSON", "USER_AGENT", "Calls", "Engine"]

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")


_ACTIONS_PATH = "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
JSON = "application/json; charset=utf-8"
USER_AGENT = f"d365-recurring-integrations/0.1 {requests.utils.default_user_agent()}"
# The not-taken statuses (NOT_TAKEN_STATUSES) that waiting Retry-After may cure within the
# call, so even an enqueue is re-sent at once; the others need a fix and wait for the caller.
_RETRIED_IN_CALL = NOT_TAKEN_STATUSES & {429, 503}


@dataclass(frozen=True)
class _Request:
    """What one call sends, the same at every attempt."""

    headers: dict[str, str] | None
    data: bytes | None
    upload: UploadBody | None
    stream: bool
    rewind: Callable[[], bool] | None
    authorize: bool


@dataclass(frozen=True)
class _Answer(Generic[_T]):
    """What ``read`` made of F&O's 2xx answer."""

    value: _T


class Engine:
    """The session, credential, timeouts and retry policy of one client, and the calls made
    with them (the arguments are :class:`D365Client`'s, which alone holds their defaults)."""

    def __init__(
        self,
        base_url: str,
        credential: TokenCredential,
        *,
        retry: RetryPolicy | None,
        connect_timeout: float,
        read_timeout: float,
        write_timeout: float,
        pool_maxsize: int,
        session: requests.Session | None,
        user_agent: str,
        chunk_size: int,
        sleep: Callable[[float], object],
        sas_hosts: Iterable[str],
        budget: CallBudget,
        budget_wait: float,
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
        self._budget = budget
        self._max_permit_wait = budget_wait
        self._reservations = Reservations()

    def reserved(self, operation: str) -> AbstractContextManager[None]:
        """A permit of the budget for this thread's ``operation`` calls (see
        :meth:`D365Client.reserved`)."""
        context = self.context(operation, "POST", self.base_url)
        return self._reservations.hold(self._budget, context, timeout=self._max_permit_wait)

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
            # A SAS call (no token) goes to Azure Storage, not to F&O: it needs no permit.
            wait = min(self._max_permit_wait, budget.policy.total_timeout - budget.elapsed)
            needs = authorize and not self._reservations.holds(context.operation)
            with permit(self._budget if needs else UNLIMITED, context, timeout=wait):
                outcome = self._attempt(
                    context,
                    read,
                    _Request(headers, data, upload, stream, rewind, authorize),
                    attempt,
                    budget,
                )
            if isinstance(outcome, _Answer):
                return outcome.value, attempt
            budget.sleep(outcome)

    def _attempt(
        self,
        context: OperationContext,
        read: Callable[[requests.Response], _T],
        request: _Request,
        attempt: int,
        budget: RetryBudget,
    ) -> _Answer[_T] | float:
        """Send once; F&O's answer read, or the seconds to wait before the next attempt."""
        request_headers = {"User-Agent": self._user_agent, **(request.headers or {})}
        token = self._authorization(context) if request.authorize else None
        if token is not None:
            request_headers["Authorization"] = f"Bearer {token}"
        with self._payload(request.upload, request.data) as payload:
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
                        stream=request.stream,
                    )
                    call.answered(
                        response.status_code,
                        retry_after=retry_after_of(response),
                        request_id=request_id_of(response),
                    )
            except requests.RequestException as exc:
                wait = self._exception_wait(context, exc, payload, attempt, budget)
                if wait is not None:
                    return wait
                raise connection_error(
                    context,
                    exc,
                    sent_body=sent_body(exc, payload),
                    attempts=attempt,
                    timeouts=self._timeouts,
                ) from exc
            except BodyLengthError as exc:
                raise ValueError(f"{context.operation}: {exc}") from None
        with response:
            if 200 <= response.status_code < 300:
                try:
                    return _Answer(read(response))
                except requests.RequestException as exc:
                    # The answer broke off while streaming (a download).
                    again = request.rewind is None or request.rewind()
                    wait = (
                        self._exception_wait(context, exc, None, attempt, budget) if again else None
                    )
                    if wait is not None:
                        return wait
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
            if response.status_code == 429 and token is not None:
                # Every caller of this budget waits, not only this call.
                asked = retry_after_of(response)  # 0 is an answer: "now", not "unsaid"
                self._budget.throttled(
                    budget.policy.default_retry_after if asked is None else asked
                )
            wait = self._response_wait(context, response, attempt, budget)
            if wait is not None:
                return wait
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

    def _exception_wait(
        self,
        context: OperationContext,
        exc: requests.RequestException,
        payload: ChunkedUpload | bytes | None,
        attempt: int,
        budget: RetryBudget,
    ) -> float | None:
        """Seconds to wait before the failed attempt is repeated; None: it may not be."""
        if not is_transient(exc):
            return None
        if not context.resend_safe and sent_body(exc, payload):
            return None
        wait = budget.policy.backoff(attempt)
        if not budget.allows(wait):
            return None
        log_retry(
            context,
            attempt,
            self._retry.max_attempts,
            cause=describe_exception(exc, self._timeouts),
            wait=wait,
        )
        return wait

    def _response_wait(
        self,
        context: OperationContext,
        response: requests.Response,
        attempt: int,
        budget: RetryBudget,
    ) -> float | None:
        """Seconds to wait before a repeat, when F&O's non-2xx answer says one may succeed."""
        status = response.status_code
        if status not in _RETRIED_IN_CALL and not (status >= 500 and context.resend_safe):
            return None
        wait = retry_after_of(response)
        if wait is None:
            policy = budget.policy
            wait = (
                policy.default_retry_after
                if status in _RETRIED_IN_CALL
                else policy.backoff(attempt)
            )
        if not budget.allows(wait):
            return None
        log_retry(
            context,
            attempt,
            self._retry.max_attempts,
            cause=f"HTTP {status}",
            wait=wait,
            request_id=request_id_of(response),
        )
        return wait

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


class Calls:
    """A group of the client's calls (messages, exports, packages), sent through one engine."""

    _engine: Engine
