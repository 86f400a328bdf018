"""Whether a file may be resubmitted: its state, the risk of importing it twice, the request id."""

from __future__ import annotations

import re

from shared.errors import AppError
from shared.flows.source_blob import REQUEST_ID_LIMIT
from shared.tracking import FailureKind, TrackedFile, TrackingState

__all__ = [
    "ResubmitError",
    "check_request_id",
    "check_resubmittable",
    "outcome_unknown",
    "risk_of",
]

_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{REQUEST_ID_LIMIT}}}")


class ResubmitError(AppError):
    """A resubmit that cannot be done (now); ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def outcome_unknown(record: TrackedFile) -> bool:
    """True when F&O may hold the file though we never learnt its message id."""
    return (
        record.state is TrackingState.ENQUEUE_FAILED
        and record.failure is FailureKind.OUTCOME_UNKNOWN
    )


def risk_of(record: TrackedFile) -> str | None:
    """Why resubmitting ``record`` may import the file twice; None when it cannot."""
    if outcome_unknown(record):
        return (
            "the outcome of its enqueue is unknown: F&O may already have this file, and "
            "resubmitting it may import it twice. Look in F&O (Data management > the "
            "recurring job's message list) for its external identifier first"
        )
    if record.state is TrackingState.PROCESSED:
        return "F&O has already imported this file without errors; resubmitting imports it again"
    if record.state is TrackingState.TIMED_OUT and record.message_id:
        return (
            f"F&O has this file (message {record.message_id}) and may still process it; "
            "resubmitting may import it twice"
        )
    if record.state is TrackingState.TIMED_OUT and record.execution_id:
        # ImportFromPackage may have been called: F&O may have run (or still run) the import.
        return (
            f"F&O may have imported this package (execution {record.execution_id}) or may "
            "still be importing it; resubmitting may import it twice. Look in F&O (Data "
            "management > Job history) for that execution first"
        )
    return None


def check_request_id(request_id: str | None) -> str:
    """The request id, validated: it goes into blob metadata (ASCII header text)."""
    if not request_id:
        raise ResubmitError(
            400,
            "a request id is required: send an Idempotency-Key header (or request_id in the "
            "JSON body), the same for every retry of one resubmit, e.g. a new UUID",
        )
    if not _REQUEST_ID.fullmatch(request_id):
        raise ResubmitError(
            400,
            f"request id {request_id[:40]!r} is not accepted; expected 1-{REQUEST_ID_LIMIT} "
            "letters, digits, '.', '_', ':' or '-', e.g. a UUID",
        )
    return request_id


def check_resubmittable(record: TrackedFile, *, confirm: bool) -> None:
    """Refuse a file that is not final, is being archived, or carries a risk not confirmed.

    :raises ResubmitError: 409 naming why.
    """
    if not record.state.is_terminal:
        raise ResubmitError(
            409,
            f"the file is {record.state.value}, not final: it is still on its way through "
            "F&O; resubmit it once it has reached a final state",
        )
    if record.archive_pending:
        raise ResubmitError(409, "the file is being archived; try again in a minute")
    risk = risk_of(record)
    if risk and not confirm:
        raise ResubmitError(409, f"not resubmitted: {risk}. Resubmit with confirm=true to go on.")
