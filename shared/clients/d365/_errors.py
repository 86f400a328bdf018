"""Exceptions raised by the F&O client, and the one function that decodes a failed response.

::

    D365Error
     +-- D365CredentialError          the credential could not produce a token
     +-- D365ConnectionError          no response (connect/read/write timeout, refused, reset);
     |                                .sent_body
     +-- D365ResponseError            2xx whose body does not parse (shortened body in the text)
     +-- D365UntrustedUrlError        a URL F&O handed out that the client will not call: .url
     |                                (no query string) .rule; nothing was sent to it
     +-- D365HttpError                F&O answered non-2xx: .status_code .fno_message .operation
          |                           .activity_id .message_id .request_id .retry_after
          +-- D365AuthenticationError     401
          +-- D365PermissionError         403
          +-- D365NotFoundError           404 (unknown activity, unknown id)
          +-- D365PayloadTooLargeError    413
          +-- D365ThrottledError          429 after the retry budget
          +-- D365ServerError             5xx after the retry budget

Every message names the operation, the URL without its query string, the ids and a hint of
what to check. No message carries a token, a secret or a request header.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

import requests

from ._parsing import fno_error_text, redact_sas, shorten, url_without_query
from ._transport import Timeouts, WriteTimeout

__all__ = [
    "NOT_TAKEN_STATUSES",
    "D365AuthenticationError",
    "D365ConnectionError",
    "D365CredentialError",
    "D365Error",
    "D365HttpError",
    "D365NotFoundError",
    "D365PayloadTooLargeError",
    "D365PermissionError",
    "D365ResponseError",
    "D365ServerError",
    "D365ThrottledError",
    "D365UntrustedUrlError",
    "OperationContext",
    "connection_error",
    "describe_exception",
    "error_from_response",
    "request_id_of",
]


NOT_TAKEN_STATUSES = frozenset({401, 403, 404, 408, 429, 503})
"""Statuses with which F&O refuses a request before acting on it: the token was not accepted
(401), the app may not do it (403), the job or action is not there (404), the request did not
arrive whole (408), or F&O did not let it in (429, 503). Sending it again cannot make F&O act
twice, so a file refused so is sent again later (a person may fix the cause meanwhile)."""

_REQUEST_ID_HEADERS = ("x-ms-request-id", "request-id", "x-ms-correlation-id", "x-request-id")
_MIB = 1024 * 1024


@dataclass(frozen=True)
class OperationContext:
    """What a failed call was doing, for the error's attributes and text."""

    operation: str
    method: str
    url: str
    scope: str
    activity_id: str | None = None
    message_id: str | None = None
    execution_id: str | None = None
    external_id: str | None = None
    """The external identifier as sent in its header, which is what F&O shows."""
    body_length: int | None = None
    resend_safe: bool = True
    """False for enqueue: a failure after the body left may have created a message."""

    def error_ids(self) -> dict[str, str | None]:
        """The keyword arguments every `D365Error` takes: the operation and its ids."""
        return {
            "operation": self.operation,
            "activity_id": self.activity_id,
            "message_id": self.message_id,
            "execution_id": self.execution_id,
        }

    def describe(self) -> str:
        """`operation` with method, URL (no query string) and ids, for the start of a message."""
        ids = [
            f"{label} {value}"
            for label, value in (
                ("activity", self.activity_id),
                ("message", self.message_id),
                ("execution", self.execution_id),
                ("external id", self.external_id),
            )
            if value
        ]
        where = f"{self.method} {url_without_query(self.url)}"
        return f"{self.operation} ({where}{'; ' if ids else ''}{', '.join(ids)})"


class D365Error(Exception):
    """Base of every error the F&O client raises; its text names no secret, token or SAS
    signature."""

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        activity_id: str | None = None,
        message_id: str | None = None,
        execution_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.activity_id = activity_id
        self.message_id = message_id
        self.execution_id = execution_id


class D365CredentialError(D365Error):
    """The credential could not produce an access token for the F&O scope."""

    def __init__(self, message: str, *, scope: str, **kwargs: str | None) -> None:
        super().__init__(message, **kwargs)
        self.scope = scope


class D365ConnectionError(D365Error):
    """No response from F&O. `sent_body` is True when the whole request had been sent, so
    F&O may have acted on it (for enqueue: a message may exist)."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        sent_body: bool,
        attempts: int = 1,
        **kwargs: str | None,
    ) -> None:
        super().__init__(message, **kwargs)
        self.url = url
        self.sent_body = sent_body
        self.attempts = attempts


class D365ResponseError(D365Error):
    """F&O answered 2xx with a body the client cannot read."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status_code: int,
        body: str,
        request_id: str | None = None,
        **kwargs: str | None,
    ) -> None:
        super().__init__(message, **kwargs)
        self.url = url
        self.status_code = status_code
        self.body = body
        self.request_id = request_id


class D365UntrustedUrlError(D365Error):
    """F&O handed out a URL that breaks the rules of :mod:`shared.clients.d365._urls`; nothing was
    sent to it. `url` is without its query string; `rule` says which rule it broke."""

    def __init__(self, message: str, *, url: str, rule: str, **kwargs: str | None) -> None:
        super().__init__(message, **kwargs)
        self.url = url
        self.rule = rule


class D365HttpError(D365Error):
    """F&O answered with a non-2xx status (after any retries the policy allowed)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        url: str,
        fno_message: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
        **kwargs: str | None,
    ) -> None:
        super().__init__(message, **kwargs)
        self.status_code = status_code
        self.url = url
        self.fno_message = fno_message
        self.request_id = request_id
        self.retry_after = retry_after
        self.attempts = attempts


class D365AuthenticationError(D365HttpError):
    """401: F&O did not accept the token or the app is not authorised on the job."""


class D365PermissionError(D365HttpError):
    """403: the app is known but not allowed."""


class D365NotFoundError(D365HttpError):
    """404: unknown activity id, message id or action."""


class D365PayloadTooLargeError(D365HttpError):
    """413: the file is larger than the enqueue endpoint accepts."""


class D365ThrottledError(D365HttpError):
    """429 still answered when the retry budget ran out; `retry_after` says what F&O asked."""


class D365ServerError(D365HttpError):
    """5xx still answered when the retry budget ran out (or at once for an enqueue)."""


_ERROR_TYPES: dict[int, type[D365HttpError]] = {
    401: D365AuthenticationError,
    403: D365PermissionError,
    404: D365NotFoundError,
    413: D365PayloadTooLargeError,
    429: D365ThrottledError,
}


def request_id_of(response: requests.Response) -> str | None:
    """The request id F&O or its front door put on the response, if any."""
    for name in _REQUEST_ID_HEADERS:
        value = response.headers.get(name)
        if value:
            return shorten(value, 100)
    return None


def error_from_response(
    response: requests.Response,
    context: OperationContext,
    *,
    attempts: int,
    retry_after: float | None,
    budget: str,
) -> D365HttpError:
    """The typed error for a non-2xx `response`, with F&O's message and an actionable hint.

    :param budget: the retry policy in words, for the 429/5xx hints.
    """
    status = response.status_code
    # F&O may quote a package URL it could not read: its SAS signature never goes further.
    body = redact_sas(response.text)
    fno_message = fno_error_text(body) or (shorten(body) if body.strip() else None)
    request_id = request_id_of(response)
    error_type = _ERROR_TYPES.get(status, D365ServerError if status >= 500 else D365HttpError)
    parts = [
        f"{context.describe()} failed: HTTP {status} {_reason(response)}"
        + (f" after {attempts} attempts" if attempts > 1 else "")
        + "."
    ]
    if fno_message:
        parts.append(f"F&O says: {shorten(fno_message, 500)}")
    if request_id:
        parts.append(f"Request id: {request_id}.")
    parts.append(_hint(response, context, retry_after=retry_after, budget=budget))
    return error_type(
        " ".join(parts),
        status_code=status,
        url=url_without_query(context.url),
        fno_message=fno_message,
        request_id=request_id,
        retry_after=retry_after,
        attempts=attempts,
        **context.error_ids(),
    )


def _reason(response: requests.Response) -> str:
    if response.reason:
        return str(response.reason)
    try:
        return HTTPStatus(response.status_code).phrase
    except ValueError:
        return ""


def _hint(
    response: requests.Response,
    context: OperationContext,
    *,
    retry_after: float | None,
    budget: str,
) -> str:
    status = response.status_code
    if 300 <= status < 400:
        return _redirect_hint(response)
    if status >= 500:
        return _server_hint(context, budget, status)
    if status == 429:
        return _throttled_hint(retry_after, budget)
    if status in _CLIENT_ERROR_HINTS:
        return _CLIENT_ERROR_HINTS[status](context)
    return "F&O refused the request; its message above says why."


def _authentication_hint(context: OperationContext) -> str:
    return (
        "Check: the app's client id is registered in F&O under System administration > "
        "Setup > Microsoft Entra applications and mapped to an enabled user; for enqueue, "
        "dequeue and ack it is also listed and enabled on the recurring data job's "
        "authorization policy; the token audience is the base URL in lower case without a "
        f"trailing slash (scope requested: {context.scope}); the token comes from the "
        "environment's tenant."
    )


def _permission_hint(context: OperationContext) -> str:
    return (
        "The app is known but not allowed: check that its user in System administration > "
        "Setup > Microsoft Entra applications is enabled and has data management rights, "
        "and that the app is enabled on the recurring data job's authorization policy."
    )


def _throttled_hint(retry_after: float | None, budget: str) -> str:
    wait = f"asked to retry after {retry_after:g} s" if retry_after is not None else "throttled"
    return (
        f"F&O {wait}, which the retry budget ({budget}) does not allow. Lower the "
        "concurrency or raise the budget; see System administration > Setup > Throttling "
        "priority mapping."
    )


def _redirect_hint(response: requests.Response) -> str:
    location = response.headers.get("Location")
    target = f" to {url_without_query(location)}" if location else ""
    return (
        f"F&O redirected{target}: the recurring-integrations API does not exist on on-premises "
        "environments (use the data management package API there), or the base URL is not the "
        "environment root such as https://<env>.operations.dynamics.com."
    )


def _not_found_hint(context: OperationContext) -> str:
    if context.operation == "download_sas_file":
        return (
            "F&O's storage has no file at this URL any more: its SAS URL may have expired, or "
            "the file was removed; get the file in F&O."
        )
    if context.activity_id:
        return (
            f"No enabled recurring data job answers to activity id {context.activity_id}: copy "
            "the ID from Data management > Recurring data jobs (Manage scheduled data jobs), "
            "check the job is enabled and the base URL is the right environment."
        )
    return (
        "F&O does not know the id or the action: check the base URL is the right environment "
        "and the id came from it."
    )


def _too_large_hint(context: OperationContext) -> str:
    size = ""
    if context.body_length is not None:
        size = f" ({context.body_length} bytes, {context.body_length / _MIB:.1f} MiB)"
    if context.operation == "upload_package":
        return (
            f"F&O's storage refused a part of the package{size} as too large, although every "
            "storage version takes blocks of 4 MiB: check that the BlobUrl F&O handed out is "
            "an Azure blob endpoint."
        )
    return (
        f"The file{size} is larger than F&O accepts through enqueue. Split it, or import it "
        "through the data management package API (GetAzureWriteUrl, then ImportFromPackage), "
        "which takes large packages."
    )


def _server_hint(context: OperationContext, budget: str, status: int) -> str:
    # 503 means the service did not take the request in: even an enqueue may be sent again.
    if not context.resend_safe and status != 503:
        return (
            "F&O may have taken the file before failing, so it was not re-sent. "
            f"{_look_for(context)} An unknown or disabled recurring job also answers 5xx on "
            "some environments: check the activity id."
        )
    return f"F&O kept failing within the retry budget ({budget}); try again later."


_CLIENT_ERROR_HINTS: dict[int, Callable[[OperationContext], str]] = {
    401: _authentication_hint,
    403: _permission_hint,
    404: _not_found_hint,
    413: _too_large_hint,
}


def _look_for(context: OperationContext) -> str:
    which = f" (external identifier {context.external_id})" if context.external_id else ""
    return f"Look for the message{which} in the job's message list before sending it again."


def connection_error(
    context: OperationContext,
    exc: requests.RequestException,
    *,
    sent_body: bool,
    attempts: int,
    timeouts: Timeouts | None = None,
) -> D365ConnectionError:
    """The `D365ConnectionError` for a call that got no response.

    :param timeouts: the client's timeouts, named with their values when one ran out.
    """
    if sent_body and not context.resend_safe:
        hint = (
            "The whole file was sent before the connection failed, so F&O may have taken it; it "
            f"was not re-sent. {_look_for(context)}"
        )
    elif isinstance(exc, requests.exceptions.SSLError):
        hint = (
            "Check the TLS certificate chain of the base URL (REQUESTS_CA_BUNDLE when a private "
            "CA is used)."
        )
    else:
        hint = "F&O did not get the whole request; sending it again is safe."
    kind = _timeout_kind(exc)
    if kind is not None:
        hint += " " + _TIMEOUT_HINTS[kind]
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return D365ConnectionError(
        f"{context.describe()} got no response{tries}: {describe_exception(exc, timeouts)}. {hint}",
        url=url_without_query(context.url),
        sent_body=sent_body,
        attempts=attempts,
        **context.error_ids(),
    )


_TIMEOUT_HINTS = {
    "connect": "If F&O is only slow to accept connections, raise the client's connect_timeout.",
    "read": "If F&O is only slow to answer, raise the client's read_timeout.",
    "write": (
        "F&O stopped taking the request body; if it is only slow to take large files, raise "
        "the client's write_timeout."
    ),
}


def _timeout_kind(exc: BaseException) -> str | None:
    """Which of the client's timeouts ran out: "connect", "read", "write", or None."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect"
    if isinstance(exc, WriteTimeout):
        return "write"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "read"
    return None


def describe_exception(exc: BaseException, timeouts: Timeouts | None = None) -> str:
    """A short cause for a requests exception, without the request URL (it may hold a query).

    A timeout is named with its option (``write timed out (write_timeout=300 s)``), and its
    value when `timeouts` is given.
    """
    timeout = _timeout_kind(exc)
    if timeout is not None:
        limit = f"={timeouts.of(timeout):g} s" if timeouts is not None else ""
        kind = f"{timeout} timed out ({timeout}_timeout{limit})"
    elif isinstance(exc, requests.exceptions.SSLError):
        kind = "TLS error"
    else:
        kind = "connection failed"
    inner: BaseException = exc
    if exc.args and isinstance(exc.args[0], BaseException):
        inner = exc.args[0]
    reason = getattr(inner, "reason", None)
    if isinstance(reason, BaseException):
        inner = reason
    return f"{kind} ({shorten(str(inner), 160)})"
