"""The exceptions the F&O client raises, a tree of their own.

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
]


NOT_TAKEN_STATUSES = frozenset({401, 403, 404, 408, 429, 503})
"""Statuses with which F&O refuses a request before acting on it: the token was not accepted
(401), the app may not do it (403), the job or action is not there (404), the request did not
arrive whole (408), or F&O did not let it in (429, 503). Sending it again cannot make F&O act
twice, so a file refused so is sent again later (a person may fix the cause meanwhile)."""


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
