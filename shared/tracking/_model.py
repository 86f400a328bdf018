"""The value types of the status model: records, their states, schedule entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from shared.clients.d365 import ExecutionError
from shared.errors import AppError

from ._actor import Actor
from ._states import parse_state

__all__ = [
    "IMPORT_CALL_STATUS",
    "ClaimResult",
    "ConcurrencyError",
    "FailureKind",
    "PendingEntry",
    "TrackedFile",
    "TrackingState",
    "TrackingStoreError",
    "error_to_dict",
    "utcnow",
]


class TrackingState(StrEnum):
    """The state of a tracked file: F&O's message states plus our own."""

    RECEIVED = "Received"
    ENQUEUED = "Enqueued"
    PREPROCESSING = "Preprocessing"
    PROCESSING = "Processing"
    PROCESSED = "Processed"
    PROCESSED_WITH_ERRORS = "ProcessedWithErrors"
    PRE_PROCESSING_ERROR = "PreProcessingError"
    POST_PROCESSING_FAILED = "PostProcessingFailed"
    REJECTED = "Rejected"
    ENQUEUE_FAILED = "EnqueueFailed"
    TIMED_OUT = "TimedOut"
    IMPORTING = "Importing"
    """Package API: ImportFromPackage was called (or is about to be) with ``execution_id``."""
    IMPORT_FAILED = "ImportFailed"
    """Package API: F&O refused the import, or its execution ended Failed."""
    IMPORT_CANCELED = "ImportCanceled"
    """Package API: the execution was canceled in F&O."""
    WAITING = "Waiting"
    """Ordered route: claimed, waiting for its turn in its line (``behind`` names the file
    ahead of it); nothing was sent."""

    @property
    def is_terminal(self) -> bool:
        """True when nothing more will happen to the file."""
        return self not in _NON_TERMINAL

    @classmethod
    def parse(cls, text: str) -> TrackingState:
        """Case-insensitive lookup; raises ValueError naming the accepted values."""
        return parse_state(cls, text, noun="state")


_NON_TERMINAL = frozenset(
    {
        TrackingState.RECEIVED,
        TrackingState.ENQUEUED,
        TrackingState.PREPROCESSING,
        TrackingState.PROCESSING,
        TrackingState.IMPORTING,
        TrackingState.WAITING,
    }
)


class FailureKind(StrEnum):
    """What kind of failure ``last_error`` tells of, when the app acts on the kind."""

    OUTCOME_UNKNOWN = "OutcomeUnknown"
    """F&O may or may not have the file (its answer was lost): never re-sent by the app, and
    resubmitted only with a confirmation."""


IMPORT_CALL_STATUS = "ImportFromPackage"
"""The ``d365_status`` of a package import written just before ImportFromPackage is called:
F&O has said nothing of the execution yet (the first poll writes what it says)."""

OUTCOME_UNKNOWN_TEXT = "outcome unknown"
"""How the ``last_error`` of an outcome unknown starts: a row written before ``failure`` was
stored is read by it."""


class TrackingStoreError(AppError, RuntimeError):
    """The status table cannot be used; the message says which table and what to do."""


class ConcurrencyError(AppError, RuntimeError):
    """Another writer changed the row first (ETag mismatch); re-read and decide again."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def error_to_dict(error: ExecutionError) -> dict[str, str]:
    """JSON form of one execution error, as the HTTP API and the errors blob hold it."""
    return {"record_id": error.record_id, "field": error.field, "message": error.message}


@dataclass(frozen=True)
class TrackedFile:
    """One blob version and everything that happened to it.

    ``next_poll_at`` and ``poll_count`` are the poll schedule's anchor as last written with the
    record; a poll that changes nothing writes nothing, so readers project later poll times
    from them (see :mod:`shared.tracking._schedule`).
    """

    record_id: str
    row_key: str
    blob: str
    blob_etag: str
    state: TrackingState
    received_at: datetime
    updated_at: datetime
    route: str | None = None
    activity_id: str | None = None
    entity: str | None = None
    company: str | None = None
    size: int | None = None
    message_id: str | None = None
    raw_message_id: str | None = None
    d365_status: str | None = None
    execution_id: str | None = None
    sent_execution_id: str | None = None
    """Package API: the execution id ImportFromPackage was sent with, when F&O answered
    another one (then ``execution_id`` is F&O's, the one followed)."""
    errors: tuple[ExecutionError, ...] = ()
    error_count: int = 0
    errors_blob: str | None = None
    errors_raw: str | None = None
    enqueued_at: datetime | None = None
    completed_at: datetime | None = None
    send_started_at: datetime | None = None
    lease_until: datetime | None = None
    next_poll_at: datetime | None = None
    fingerprint: str | None = None
    poll_count: int = 0
    enqueue_attempts: int = 0
    archive_attempts: int = 0
    last_error: str | None = None
    failure: FailureKind | None = None
    """The kind of ``last_error`` when the app acts on it (see :class:`FailureKind`)."""
    reject_reason: str | None = None
    archived_to: str | None = None
    archive_pending: bool = False
    archive_error: str | None = None
    """Why the file was not archived (it stays in the inbound container)."""
    history: tuple[tuple[str, str], ...] = ()
    history_dropped: int = 0
    """Entries older than ``history`` that the row no longer keeps."""
    resubmit_of: str | None = None
    """Row key of the record this version was resubmitted from (see
    :mod:`shared.flows.resubmit`)."""
    resubmitted_as: str | None = None
    """Row key of the record of the version this file was resubmitted as."""
    resubmit_request: str | None = None
    """The request id of the resubmit that made this version (with ``resubmit_of``)."""
    resubmit_by: Actor | None = None
    """Who asked for the resubmit that made this version."""
    resubmit_at: datetime | None = None
    """When the resubmit that made this version was asked for."""
    resubmitted_request: str | None = None
    """The request id of the resubmit that made ``resubmitted_as``."""
    resubmitted_by: Actor | None = None
    """Who asked for the resubmit that made ``resubmitted_as``."""
    resubmitted_at: datetime | None = None
    """When the resubmit that made ``resubmitted_as`` was asked for."""
    write_id: str = field(default="", compare=False, repr=False)
    """Token of the write that produced this row: tells a lost acknowledgement from a race."""
    etag: str = field(default="", compare=False, repr=False)
    api: str | None = None
    """``"package"`` when the file goes through the DMF package API; None: enqueue."""
    definition_group: str | None = None
    """The data project a package import goes to."""
    api_note: str | None = None
    """Why the package API was used for a file of an enqueue route (on_too_large)."""
    package_entities: tuple[str, ...] = ()
    """The entity names of the imported package's manifest (for the error files); the first
    ones when they did not fit the row (all: :meth:`TrackingStore.list_package_entities`)."""
    package_entity_count: int = 0
    package_entities_blob: str | None = None
    """``<container>/<blob>`` of all the entity names when they did not fit the row."""
    error_files: tuple[str, ...] = ()
    """``<container>/<blob>`` of the error files F&O produced (in the errors container); the
    first ones when they did not fit the row (all: :meth:`TrackingStore.list_error_files`)."""
    error_file_count: int = 0
    error_files_blob: str | None = None
    """``<container>/<blob>`` of the whole list of error files when it did not fit the row."""
    line: str | None = None
    """Ordered route: the line the file belongs to, ``<route>/<company>`` (see
    :mod:`shared.flows.line`); None: the file goes in parallel."""
    line_mode: str | None = None
    """``"upload"`` or ``"final"``: when the next file of the line may go."""
    line_stops: bool = False
    """A failure of this file stops its line until an operator acts."""
    line_created: datetime | None = None
    """The blob's creation time: with the blob name, its place in the line."""
    behind: str | None = None
    """Row key of the file of the line this one waits behind (while ``Waiting``)."""
    turn_at: datetime | None = None
    """When the file got its turn in the line (it left ``Waiting``)."""
    late_after: str | None = None
    """Row key of a newer file of the line that had its turn before this one arrived."""
    released_at: datetime | None = None
    """When an operator released the line past this failed file."""
    released_by: Actor | None = None
    """Who released it (recorded on the record and in the audit trail)."""
    release_request: str | None = None
    """The request id of that release."""

    def __repr__(self) -> str:
        return (
            f"TrackedFile(blob={self.blob!r}, record_id={self.record_id!r}, "
            f"state={self.state.value!r}, message_id={self.message_id!r})"
        )


@dataclass(frozen=True)
class PendingEntry:
    """A record on the poll schedule: when it is due, the poll bookkeeping, and the few record
    fields a poll needs, so that a poll that changes nothing reads and writes no record."""

    record_id: str
    record_row_key: str
    due_at: datetime
    state: TrackingState
    since: datetime
    blob: str
    message_id: str | None = None
    poll_count: int = 0
    d365_status: str | None = None
    written_at: datetime | None = None
    etag: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class ClaimResult:
    """Outcome of :meth:`TrackingStore.claim`: the record, and whether this call created it."""

    record: TrackedFile
    created: bool
