"""The typed error of a failed call to F&O, with an actionable hint in its text."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import TypeVar

import requests
from urllib3.exceptions import NewConnectionError

from ._body import ChunkedUpload
from ._errors import (
    D365AuthenticationError,
    D365ConnectionError,
    D365HttpError,
    D365NotFoundError,
    D365PayloadTooLargeError,
    D365PermissionError,
    D365ResponseError,
    D365ServerError,
    D365ThrottledError,
)
from ._operation import OperationContext
from ._parsing import fno_error_text
from ._text import redact_sas, shorten, url_without_query
from ._transport import Timeouts, WriteTimeout

__all__ = [
    "connection_error",
    "describe_exception",
    "error_from_response",
    "is_transient",
    "not_admitted",
    "parser",
    "request_id_of",
    "sent_body",
]

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")
_REQUEST_ID_HEADERS = ("x-ms-request-id", "request-id", "x-ms-correlation-id", "x-request-id")
_MIB = 1024 * 1024

_TRANSIENT_EXCEPTIONS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)

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


def parser(
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


def is_transient(exc: requests.RequestException) -> bool:
    """A failure that another attempt may not meet: a broken or timed-out connection."""
    if isinstance(exc, requests.exceptions.SSLError):
        # A certificate problem is configuration; anything else is a broken connection.
        return "certificate" not in str(exc).lower()
    return isinstance(exc, _TRANSIENT_EXCEPTIONS)


def sent_body(exc: requests.RequestException, payload: ChunkedUpload | bytes | None) -> bool:
    """False only when the failure proves F&O did not get the whole request."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, NewConnectionError):
        return False
    return not (isinstance(payload, ChunkedUpload) and not payload.completed)


def not_admitted(
    context: OperationContext, retry_after: float, waited: float
) -> D365ThrottledError:
    """The 429 of a call its call budget did not let out: nothing was sent, so F&O did not
    take it, and the caller waits ``retry_after`` (at least a second) as for F&O's own."""
    wait = max(1.0, retry_after)
    cause = (
        f"F&O throttles the client's call budget for {retry_after:.0f} s more"
        if retry_after > 0
        else f"no permit of the client's call budget came within {waited:.1f} s"
    )
    return D365ThrottledError(
        f"{context.describe()} was not sent: {cause}. Try again after {wait:.0f} s.",
        status_code=429,
        url=url_without_query(context.url),
        fno_message=None,
        retry_after=wait,
        attempts=0,
        **context.error_ids(),
    )
