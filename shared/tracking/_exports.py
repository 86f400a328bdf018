"""Export records: one row per message dequeued from a recurring export job, and the export
leases, in the partition ``exports`` of the status table (apart from the files' partition,
which keeps its own transactions and listings).

=================================  ===========================================================
row key                            row
=================================  ===========================================================
``<message id>``                   an export record; F&O's message id (the dequeue answer's
                                   CorrelationId), so a re-delivered message finds its record
``~lease-<route name>``            the lease of one export route: one tick at a time per route
=================================  ===========================================================

Every write after the first is conditional on the ETag read: a second writer (a tick that
overran its lease) gets :class:`ConcurrencyError` and leaves the message to the other. A write
whose answer was lost is recognised as ours by its ``write_id`` (:mod:`._writes`), never taken
for another writer's.

The rows are built with the codec's pieces (:func:`._codec.finish`, the history and list
encoders), so they fit Azure Tables whatever a record holds: the newest history entries with a
count of the dropped ones, and the blobs of a large unzip in a blob of the errors container.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from azure.data.tables import EdmType, EntityProperty, TableClient
from azure.storage.blob import ContainerClient

from ._codec import (
    EXPORT_BLOBS,
    decode_history,
    decode_list,
    encode_history,
    encode_list,
    finish,
    parse_time,
)
from ._lease import Lease, LeaseHeld
from ._model import ConcurrencyError, utcnow
from ._overflow import Overflow
from ._table import StatusTable
from ._writes import insert_own, replace_own

__all__ = [
    "EXPORTS_PARTITION",
    "ExportPage",
    "ExportRecord",
    "ExportState",
    "ExportStore",
]

EXPORTS_PARTITION = "exports"
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ExportState(StrEnum):
    """Where an exported message is: taken from F&O, in blob storage, acknowledged, or failed."""

    DEQUEUED = "Dequeued"
    DOWNLOADED = "Downloaded"
    ACKED = "Acked"
    EXPORT_FAILED = "ExportFailed"

    @classmethod
    def parse(cls, text: str) -> ExportState:
        """Case-insensitive lookup; raises ValueError naming the accepted values."""
        for state in cls:
            if state.value.lower() == text.strip().lower():
                return state
        accepted = ", ".join(s.value for s in cls)
        raise ValueError(f"unknown export state {text[:40]!r}; accepted: {accepted}")


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
    def is_written(self) -> bool:
        """True once the message's blobs are committed."""
        return self.downloaded_at is not None

    def __repr__(self) -> str:
        return (
            f"ExportRecord(message_id={self.message_id!r}, route={self.route!r}, "
            f"state={self.state.value!r})"
        )


@dataclass(frozen=True)
class ExportPage:
    """One page of export records; ``continuation`` is opaque, None on the last page."""

    records: tuple[ExportRecord, ...]
    continuation: str | None


class ExportStore:
    """Export records and export leases of one status table.

    :param client: the status table's client (the table is the files' too).
    :keyword errors_container: where a list of blobs too long for a row is written.
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self,
        client: TableClient,
        *,
        errors_container: ContainerClient | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._table = StatusTable(client, partition=EXPORTS_PARTITION)
        self._overflow = Overflow(errors_container)
        self._clock = clock

    def ensure_ready(self) -> None:
        """Create the status table (and errors container) when missing."""
        self._table.create()
        self._overflow.ensure_ready()

    # -- records ----------------------------------------------------------------------------

    def get(self, message_id: str) -> ExportRecord | None:
        """The record of a message, or None."""
        row = self._table.get(message_id.lower())
        return None if row is None else _from_entity(row)

    def list_blobs(self, record: ExportRecord) -> tuple[str, ...]:
        """All blobs of a record (from the errors container when they did not fit the row)."""
        return self._overflow.read_list(record.blobs, record.blobs_blob)

    def dequeued(
        self, *, message_id: str, route: str, activity_id: str, container: str, target: str
    ) -> ExportRecord:
        """Record a dequeue: a new record, or the next dequeue of a re-delivered message.

        :raises ConcurrencyError: another writer changed the record meanwhile.
        """
        now = self._clock()
        existing = self.get(message_id)
        if existing is None:
            record = ExportRecord(
                message_id=message_id.lower(),
                route=route,
                activity_id=activity_id,
                container=container,
                state=ExportState.DEQUEUED,
                dequeued_at=now,
                updated_at=now,
                target=target,
                history=((ExportState.DEQUEUED.value, now.isoformat(), None),),
            )
            entity = _to_entity(record)
            written = insert_own(self._table, entity)
            if written.ours:
                return replace(_from_entity(entity), etag=written.etag)
            existing = _from_entity(written.row)
        return self._change(
            existing,
            # Given up: only its acknowledgement is left to do, and it stays failed.
            ExportState.EXPORT_FAILED if existing.gave_up_at else ExportState.DEQUEUED,
            reason=f"delivered again (dequeue {existing.dequeue_count + 1})",
            dequeue_count=existing.dequeue_count + 1,
        )

    def downloaded(
        self,
        record: ExportRecord,
        blobs: Sequence[str] | None,
        size: int,
        *,
        reason: str | None = None,
    ) -> ExportRecord:
        """Record that the message's blobs are committed.

        :param blobs: the blobs written; None: those the record names already (a message
            written before). A list too long for the row is written to a blob first.
        :raises AzureError: storage failed (the list's blob, or the row).
        """
        listed = {} if blobs is None else self._blobs_fields(record, blobs)
        return self._change(
            record,
            ExportState.DOWNLOADED,
            reason=reason,
            size=size,
            downloaded_at=record.downloaded_at or self._clock(),
            error=None,
            **listed,
        )

    def acked(self, record: ExportRecord) -> ExportRecord:
        """Record F&O's 200 to the ack: the message will not come back. A message given up
        stays ``ExportFailed`` with its reason."""
        if record.gave_up_at is not None:
            return self._change(
                record,
                ExportState.EXPORT_FAILED,
                reason="acknowledged: F&O will not offer it again",
                acked_at=self._clock(),
            )
        return self._change(record, ExportState.ACKED, acked_at=self._clock(), error=None)

    def failed(self, record: ExportRecord, reason: str, *, counted: bool = False) -> ExportRecord:
        """Record why a download or an ack failed; F&O offers the message again later.

        :keyword counted: the failure counts toward ``EXPORT_MAX_ATTEMPTS``
            (``failed_attempts``).

        A message given up keeps the reason it was given up as its ``error``: a later failure
        (of its ack) is in ``history`` only.
        """
        return self._change(
            record,
            ExportState.EXPORT_FAILED,
            reason=reason,
            error=record.error if record.gave_up_at is not None else reason,
            failed_attempts=record.failed_attempts + counted,
        )

    def gave_up(
        self, record: ExportRecord, reason: str, *, blobs: Sequence[str] = (), size: int | None
    ) -> ExportRecord:
        """Record that the message is given up for good (``blobs``: what was kept of it); it
        is acknowledged next, and never written again."""
        listed = self._blobs_fields(record, blobs)
        return self._change(
            record,
            ExportState.EXPORT_FAILED,
            reason=reason,
            error=reason,
            size=size,
            gave_up_at=self._clock(),
            **listed,
        )

    def _blobs_fields(self, record: ExportRecord, blobs: Sequence[str]) -> dict[str, Any]:
        """The row's fields of ``blobs``: a list too long for the row goes to a blob first."""
        return self._overflow.list_fields(
            EXPORT_BLOBS, blobs, folder=f"exports/{record.message_id}"
        )

    def list_records(
        self, *, route: str | None = None, limit: int = 50, continuation: str | None = None
    ) -> ExportPage:
        """Records in message-id order, ``limit`` per page."""
        clauses, parameters = ["RowKey lt @leases"], {"leases": "~"}
        if continuation:
            clauses.append("RowKey gt @after")
            parameters["after"] = _decode_continuation(continuation)
        if route:
            clauses.append("route eq @route")
            parameters["route"] = route
        records: list[ExportRecord] = []
        for row in self._table.query(clauses, parameters, per_page=min(limit + 1, 1000)):
            if len(records) == limit:
                token = base64.urlsafe_b64encode(records[-1].message_id.encode()).decode()
                return ExportPage(tuple(records), token.rstrip("="))
            records.append(_from_entity(row))
        return ExportPage(tuple(records), None)

    def _change(
        self,
        record: ExportRecord,
        state: ExportState,
        *,
        reason: str | None = None,
        **changes: Any,
    ) -> ExportRecord:
        now = self._clock()
        history = (*record.history, (state.value, now.isoformat(), reason))
        changed = replace(record, state=state, updated_at=now, history=history, **changes)
        entity = _to_entity(changed)
        written = replace_own(self._table, entity, etag=record.etag)
        if not written.ours:
            raise ConcurrencyError(
                f"export record {record.message_id} was changed by another writer"
            )
        return replace(_from_entity(entity), etag=written.etag)

    # -- leases -----------------------------------------------------------------------------

    def lease(self, route: str) -> Lease:
        """The lease of export route ``route``: one tick at a time per route."""
        return Lease(self._table, route.lower(), clock=self._clock)

    def acquire_lease(self, route: str, holder: str, *, until: datetime) -> LeaseHeld | None:
        """Become the one runner of ``route`` until ``until``; None while another lease runs."""
        return self.lease(route).acquire(holder, until=until)

    def release_lease(self, lease: LeaseHeld) -> None:
        """End the lease now; one another holder took meanwhile is left alone."""
        self.lease(lease.name).release(lease)


def _to_entity(record: ExportRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": EXPORTS_PARTITION,
        "RowKey": record.message_id,
        "direction": "export",
        "route": record.route,
        "activity_id": record.activity_id,
        "container": record.container,
        "target": record.target,
        "state": record.state.value,
        **encode_list(EXPORT_BLOBS, record.blobs, record.blob_count, record.blobs_blob),
        "dequeue_count": record.dequeue_count,
        "dequeued_at": record.dequeued_at.astimezone(UTC),
        "updated_at": record.updated_at.astimezone(UTC),
        **encode_history(record.history, record.history_dropped),
        # Int64: an export may pass 2 GiB (an Int32 property would refuse it).
        "size": None if record.size is None else EntityProperty(record.size, EdmType.INT64),
        "downloaded_at": record.downloaded_at and record.downloaded_at.astimezone(UTC),
        "acked_at": record.acked_at and record.acked_at.astimezone(UTC),
        "gave_up_at": record.gave_up_at and record.gave_up_at.astimezone(UTC),
        "failed_attempts": record.failed_attempts,
        "error": record.error,
    }
    return finish(entity)


def _from_entity(row: Mapping[str, Any]) -> ExportRecord:
    return ExportRecord(
        message_id=row["RowKey"],
        route=row.get("route", ""),
        activity_id=row.get("activity_id", ""),
        container=row.get("container", ""),
        state=ExportState.parse(row.get("state", "Dequeued")),
        dequeued_at=parse_time(row.get("dequeued_at")) or utcnow(),
        updated_at=parse_time(row.get("updated_at")) or utcnow(),
        **decode_list(EXPORT_BLOBS, row),
        target=row.get("target", ""),
        size=getattr(row.get("size"), "value", row.get("size")),  # Int64: an EntityProperty
        dequeue_count=int(row.get("dequeue_count") or 1),
        downloaded_at=parse_time(row.get("downloaded_at")),
        acked_at=parse_time(row.get("acked_at")),
        error=row.get("error"),
        **decode_history(row),
        gave_up_at=parse_time(row.get("gave_up_at")),
        failed_attempts=int(row.get("failed_attempts") or 0),
        etag=getattr(row, "metadata", {}).get("etag", ""),
    )


def _decode_continuation(token: str) -> str:
    try:
        key = base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    if not _GUID.match(key):
        raise ValueError("continuation is not a token this API issued")
    return key
