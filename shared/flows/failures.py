"""What a failed call means for the file: F&O took it, did not take it, or may have it."""

from __future__ import annotations

from azure.core.exceptions import AzureError

from shared.clients.d365 import (
    NOT_TAKEN_STATUSES,
    D365ConnectionError,
    D365CredentialError,
    D365HttpError,
    D365ResponseError,
    D365UntrustedUrlError,
)
from shared.flows.deadline import SendDeadlineError
from shared.flows.package.manifest import PackageError, TemplateError
from shared.zips import ZipRefusedError

__all__ = [
    "ImportVerdict",
    "ambiguous",
    "classify_import_failure",
    "not_taken",
    "upload_refused",
]

_GATEWAY_STATUSES = frozenset({502, 504})
# The SAS PUT of a package: only these (and 5xx) may pass; a 400 / 403 / 413 will not.
_UPLOAD_TRANSIENT_STATUSES = frozenset({408, 429})
_UPLOAD_OPERATION = "upload_package"
# F&O's refusal of a second ImportFromPackage while one runs (text UNCONFIRMED: the docs say
# only that it fails; the emulator's names it "in parallel").
_PARALLEL_TEXT = "in parallel"
_EXISTS_TEXT = "already exists"


class ImportVerdict:
    """What an ImportFromPackage failure means for the file (:mod:`shared.flows.package`, 6)."""

    RETRY = "retry"
    FOLLOW = "follow"
    FAILED = "failed"


def classify_import_failure(exc: Exception) -> str:
    """The :class:`ImportVerdict` of an ImportFromPackage failure.

    The statuses that prove F&O did not take the call are the enqueue's and GetAzureWriteUrl's
    (:data:`shared.clients.d365.NOT_TAKEN_STATUSES`): 401 (the token was refused), 403 (the app may
    not import), 404 (no such action or environment), 408 (the request did not arrive whole),
    429 and 503 (not let in). F&O answers them before it starts an import, so the file is
    sent again later (RETRY) as on the other two paths: an operator fixing the app's
    registration or rights meanwhile does not have to resubmit, and a retry cannot import
    twice (it first asks GetExecutionSummaryStatus whether F&O knows the execution). It is
    bounded like every retry of a file F&O did not take: ``MAX_PENDING_AGE`` ends it
    ``EnqueueFailed`` with the last error.
    """
    if isinstance(exc, D365CredentialError):
        return ImportVerdict.RETRY
    if isinstance(exc, D365ConnectionError):
        return ImportVerdict.FOLLOW if exc.sent_body else ImportVerdict.RETRY
    if isinstance(exc, D365HttpError):
        text = (exc.fno_message or "").lower()
        if exc.status_code in NOT_TAKEN_STATUSES or _PARALLEL_TEXT in text:
            return ImportVerdict.RETRY
        if _EXISTS_TEXT in text or exc.status_code >= 500:
            return ImportVerdict.FOLLOW
        return ImportVerdict.FAILED
    return ImportVerdict.FOLLOW


def ambiguous(exc: Exception) -> bool:
    """F&O may have the file: a 2xx we cannot read, a connection lost after the body was
    sent, or a gateway's 502/504 (the environment behind it may have taken the file)."""
    if isinstance(exc, D365ResponseError):
        return True
    if isinstance(exc, D365ConnectionError):
        return exc.sent_body
    return isinstance(exc, D365HttpError) and exc.status_code in _GATEWAY_STATUSES


def upload_refused(exc: Exception) -> bool:
    """A package upload-stage failure that waiting will not cure: the template, the package
    (an unreadable manifest, too large for a block blob), a zip the limits refuse, a BlobUrl
    the client refused to call, or a 4xx of the SAS PUT (400, 403, 413...) or of
    GetAzureWriteUrl (but for the enqueue's not-taken statuses: credentials and permissions
    get fixed)."""
    if isinstance(exc, TemplateError | PackageError | ZipRefusedError | D365UntrustedUrlError):
        return True
    if not isinstance(exc, D365HttpError) or exc.status_code >= 500:
        return False
    if exc.operation == _UPLOAD_OPERATION:
        return exc.status_code not in _UPLOAD_TRANSIENT_STATUSES
    return exc.status_code not in NOT_TAKEN_STATUSES


def not_taken(exc: Exception) -> bool:
    """The failure proves F&O did not take the file."""
    if isinstance(exc, SendDeadlineError | AzureError | D365CredentialError):
        return True
    if isinstance(exc, D365ConnectionError):
        return not exc.sent_body
    return isinstance(exc, D365HttpError) and exc.status_code in NOT_TAKEN_STATUSES
