"""The package export records' value types: one row per scheduled run of a data project."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ._states import parse_state

__all__ = ["PACKAGE_KIND", "PackageExportRecord", "PackageExportState", "RouteRun"]

PACKAGE_KIND = "package"
"""The ``kind`` of a package export record (a recurring export's is ``recurring``)."""


class PackageExportState(StrEnum):
    """Where one scheduled run is: claimed, sent to F&O, running there, landed, or failed."""

    SCHEDULED = "Scheduled"
    """The slot is claimed and the record written; ExportToPackage not sent yet (or F&O
    proved it did not take it: sent again at the next tick)."""
    REQUESTED = "Requested"
    """ExportToPackage is being sent, or was sent with no answer: followed by its execution
    id, never sent again."""
    EXECUTING = "Executing"
    """F&O took the export: its status is followed until final, then its package landed."""
    DELIVERED = "Delivered"
    """The package (or its files) is committed in the target container: final. (Not
    ``Downloaded``, which a recurring export is while its ack is still to come.)"""
    EXPORT_FAILED = "ExportFailed"
    """Final: F&O's status and the execution's errors, or why the app gave up, kept."""

    @property
    def is_final(self) -> bool:
        """True for the states a run never leaves."""
        return self in (PackageExportState.DELIVERED, PackageExportState.EXPORT_FAILED)

    @classmethod
    def parse(cls, text: str) -> PackageExportState:
        """Case-insensitive lookup; raises ValueError naming the accepted values."""
        return parse_state(cls, text, noun="package export state")


@dataclass(frozen=True)
class PackageExportRecord:
    """One scheduled run of a package export route; ``history`` holds (state, at, reason)."""

    execution_id: str
    """Our execution id, sent with ExportToPackage, and the record's key."""
    route: str
    definition_group: str
    legal_entity: str
    container: str
    target: str
    """The blob of the package, or the folder of its files when unzipping."""
    state: PackageExportState
    scheduled_for: datetime
    """The slot this run is for."""
    created_at: datetime
    updated_at: datetime
    fno_execution_id: str | None = None
    """The execution id F&O answered, when it is not ours: the one followed."""
    requested_at: datetime | None = None
    send_attempts: int = 0
    """ExportToPackage calls F&O proved it did not take (429, 503, 401...)."""
    d365_status: str | None = None
    """F&O's last GetExecutionSummaryStatus text, as it came."""
    fno_errors: str | None = None
    """The execution's errors (GetExecutionErrors' text) of a failed or partial run."""
    blobs: tuple[str, ...] = ()
    blob_count: int = 0
    blobs_blob: str | None = None
    size: int | None = None
    downloaded_at: datetime | None = None
    error: str | None = None
    history: tuple[tuple[str, str, str | None], ...] = ()
    history_dropped: int = 0
    etag: str = field(default="", compare=False, repr=False)

    @property
    def kind(self) -> str:
        """``package``: a scheduled run of a data project (a recurring export's is
        ``recurring``)."""
        return PACKAGE_KIND

    @property
    def followed_id(self) -> str:
        """The execution id F&O knows the run by."""
        return self.fno_execution_id or self.execution_id

    @property
    def message_id(self) -> str:
        """The key the export listings show (the execution id), as for a recurring export."""
        return self.execution_id

    def __repr__(self) -> str:
        return (
            f"PackageExportRecord(execution_id={self.execution_id!r}, route={self.route!r}, "
            f"state={self.state.value!r})"
        )


@dataclass(frozen=True)
class RouteRun:
    """A package export route's schedule row: the last slot claimed and the run in flight."""

    route: str
    last_slot: datetime | None
    current: str | None
    """The execution id of the run not yet final; None when there is none."""
    etag: str = field(default="", compare=False, repr=False)
