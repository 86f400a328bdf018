"""The export records' value types: one row per message dequeued from a recurring export job."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ._states import parse_state

__all__ = ["ExportRecord", "ExportState"]


class ExportState(StrEnum):
    """Where an exported message is: taken from F&O, in blob storage, acknowledged, or failed."""

    DEQUEUED = "Dequeued"
    DOWNLOADED = "Downloaded"
    ACKED = "Acked"
    EXPORT_FAILED = "ExportFailed"

    @classmethod
    def parse(cls, text: str) -> ExportState:
        """Case-insensitive lookup; raises ValueError naming the accepted values."""
        return parse_state(cls, text, noun="export state")


@dataclass(frozen=True)
class ExportRecord:
    """One exported message and what happened to it; ``history`` holds (state, at, reason)."""

    message_id: str
    route: str
    activity_id: str
    container: str
    state: ExportState
    dequeued_at: datetime
    updated_at: datetime
    blobs: tuple[str, ...] = ()
    """The blobs written: one, or the files of the package when the route unzips; the first
    ones when they did not fit the row (all: :meth:`ExportStore.list_blobs`)."""
    blob_count: int = 0
    blobs_blob: str | None = None
    """``<container>/<blob>`` of the whole list of blobs when it did not fit the row."""
    target: str = ""
    """The planned blob name (or folder, when unzipping), fixed at the first dequeue."""
    size: int | None = None
    dequeue_count: int = 1
    downloaded_at: datetime | None = None
    acked_at: datetime | None = None
    error: str | None = None
    history: tuple[tuple[str, str, str | None], ...] = ()
    history_dropped: int = 0
    """Entries older than ``history`` that the row no longer keeps."""
    gave_up_at: datetime | None = None
    """When the app gave the message up (``EXPORT_MAX_ATTEMPTS``, or a refused package): it
    stays ``ExportFailed``, is acknowledged, and is never written again."""
    failed_attempts: int = 0
    """Attempts that failed for a cause of the message's own (F&O's download, the package,
    the target name): what ``EXPORT_MAX_ATTEMPTS`` counts. A failure of our own storage is
    not counted: an outage must not give up every message it meets."""
    etag: str = field(default="", compare=False, repr=False)

    @property
    def kind(self) -> str:
        """``recurring``: a message of a recurring export job (a package export's is
        ``package``)."""
        return "recurring"

    @property
    def is_written(self) -> bool:
        """True once the message's blobs are committed."""
        return self.downloaded_at is not None

    def __repr__(self) -> str:
        return (
            f"ExportRecord(message_id={self.message_id!r}, route={self.route!r}, "
            f"state={self.state.value!r})"
        )
