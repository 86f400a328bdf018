"""The tracking store: the one facade over the status model's rows.

Every change of a record goes through :meth:`TrackingStore.update` as one write, conditional
on the record's ETag, together with the rows that must agree with it (its poll-schedule entry,
its message-id index) in one entity group transaction. Each write carries a fresh
``write_id``: when a write's answer is lost (the SDK then retries and meets 409 or 412, or
raises a connection error), reading the row back tells whether the write landed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from azure.data.tables import TableClient, TableTransactionError, UpdateMode
from azure.storage.blob import ContainerClient

from shared.clients.d365 import ExecutionError

from ._backoff import Backoff
from ._codec import (
    entry_for,
    from_entity,
    index_entity,
    pending_entity,
    schedule_row,
    to_entity,
    with_history,
)
from ._keys import (
    blob_index_key,
    blob_index_prefix,
    clean_etag,
    is_record_key,
    message_key,
    record_id_for,
    record_row_key,
)
from ._lease import IMPORT_LEASE, Lease
from ._line import Lines
from ._listing import listing_clauses, period_clauses
from ._model import ClaimResult, ConcurrencyError, TrackedFile, TrackingState, utcnow
from ._overflow import Overflow
from ._page import Page, decode_continuation, encode_continuation
from ._schedule import Schedule
from ._table import Operation, StatusTable, if_match
from ._writes import new_write_id, status_of, write_own

__all__ = ["UNSCHEDULE", "TrackingStore"]


@dataclass(frozen=True)
class _Unschedule:
    """Marker: the write takes the record off the poll schedule."""


UNSCHEDULE = _Unschedule()


class TrackingStore:
    """Reads and writes tracked files in one table.

    :param table: the status table's client.
    :keyword errors_container: where execution errors and lists too large for a row are
        written.
    :keyword backoff: the poll back-off, to project a record's next poll time (without it,
        readers see the anchor as the next poll).
    :keyword clock: the time source (UTC) of ``updated_at`` and schedule anchors.

    :ivar schedule: the poll schedule (with the poll lease).
    :ivar import_lease: the package-import lease: one ImportFromPackage in flight.
    :ivar lines: the ordered lines' heads and waiting files.
    """

    def __init__(
        self,
        table: TableClient,
        *,
        errors_container: ContainerClient | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._table = StatusTable(table)
        self._overflow = Overflow(errors_container)
        self._clock = clock
        self.backoff = backoff
        self.schedule = Schedule(self._table, clock=clock)
        self.import_lease = Lease(self._table, IMPORT_LEASE, clock=clock)
        self.lines = Lines(self._table, clock=clock)

    @property
    def table_name(self) -> str:
        """Name of the status table."""
        return self._table.name

    def ensure_ready(self) -> None:
        """Create the table (and errors container) when missing; a clear error when we cannot."""
        self._table.create()
        self._overflow.ensure_ready()

    # -- claims -------------------------------------------------------------------------------

    def claim(
        self,
        blob: str,
        etag: str,
        *,
        modified_at: datetime,
        received_at: datetime | None = None,
        state: TrackingState = TrackingState.RECEIVED,
        schedule_at: datetime | None = None,
        join_line: bool = False,
        **fields: Any,
    ) -> ClaimResult:
        """Claim one blob version: exactly one caller creates the record, the others get it.

        The record, its blob-path index and (with ``schedule_at``) its poll-schedule entry are
        created in one transaction, so a claimed file is always on the schedule.

        :param blob: blob path inside the inbound container.
        :param etag: the blob version's ETag.
        :keyword modified_at: the version's Last-Modified: with the ETag it makes the row key.
        :keyword state: the initial state (``Rejected`` records are claimed too, so a duplicate
            delivery of a rejected blob is recognised).
        :keyword schedule_at: when the poller should look at the record (when its lease ends).
        :keyword join_line: also put the record in its line's waiting files (``line`` and
            ``line_created`` are among ``fields``).
        :keyword fields: initial :class:`TrackedFile` fields (route, activity_id, size...).
        :raises TrackingStoreError: the table is missing.
        """
        now = received_at or self._clock()
        record_id = record_id_for(blob, etag)
        record = TrackedFile(
            record_id=record_id,
            row_key=record_row_key(modified_at, record_id),
            blob=blob,
            blob_etag=clean_etag(etag),
            state=state,
            received_at=now,
            updated_at=now,
            history=((state.value, now.isoformat()),),
            next_poll_at=schedule_at,
            write_id=new_write_id(),
            **self._overflow.record_lists(record_id, fields),
        )
        entity = to_entity(record)
        operations: list[Operation] = [
            ("create", entity, {}),
            ("upsert", index_entity(blob_index_key(blob, record.row_key), record.row_key), {}),
        ]
        if schedule_at is not None:
            operations.append(("upsert", pending_entity(entry_for(record, schedule_at)), {}))
        if join_line:
            operations.append(self.lines.join(record))
        written = write_own(
            self._table,
            record.row_key,
            record.write_id,
            lambda: self._table.transact(operations)[0],
            if_match=None,
        )
        if written.row is None:
            return ClaimResult(replace(from_entity(entity), etag=written.etag), created=True)
        # Ours when the answer of our own create was lost; else another delivery's.
        return ClaimResult(from_entity(written.row), created=written.ours)

    # -- reads --------------------------------------------------------------------------------

    def get(self, row_key: str) -> TrackedFile | None:
        """A record by its row key, or None."""
        row = self._table.get(row_key)
        return None if row is None else from_entity(row)

    def get_by_message_id(self, message_id: str) -> TrackedFile | None:
        """The record of a normalised F&O message id (two point reads), or None."""
        pointer = self._table.get(message_key(message_id))
        return None if pointer is None else self.get(pointer["record_row_key"])

    def latest_for_blob(self, blob: str) -> TrackedFile | None:
        """The most recently modified version of a blob path, or None."""
        prefix = blob_index_prefix(blob)
        rows = self._table.query(
            ["RowKey gt @first", "RowKey lt @end"],
            {"first": prefix, "end": prefix + "~"},
            select=["record_row_key"],
            per_page=2,
        )
        # Record keys sort newest first, and the index keys end with them. Last-Modified
        # counts whole seconds: versions of the same second are told apart by arrival.
        newest: list[TrackedFile] = []
        for row in rows:
            key = row["record_row_key"]
            if newest and not key.startswith(newest[0].row_key.split("-", 1)[0]):
                break
            record = self.get(key)
            if record is not None:
                newest.append(record)
        return max(newest, key=lambda r: r.received_at, default=None)

    def next_poll(self, record: TrackedFile, now: datetime) -> tuple[int, datetime | None]:
        """Polls made and the next poll time of a record, projected from its anchor."""
        if record.state.is_terminal:
            return record.poll_count, None
        if self.backoff is None:
            return record.poll_count, record.next_poll_at
        return self.backoff.projected(record.next_poll_at, record.poll_count, now)

    def list_records(
        self,
        *,
        state: TrackingState | None = None,
        route: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        company: str | None = None,
        blob_prefix: str | None = None,
        limit: int = 50,
        continuation: str | None = None,
    ) -> Page[TrackedFile]:
        """Records newest first, filtered, one page at a time.

        The time range bounds the row keys (inverted times), so the service reads only the
        records of that period; the other filters are conditions on those rows.

        :keyword since: only versions modified at or after this time.
        :keyword until: only versions modified at or before this time.
        :keyword company: only records of this legal entity (exact).
        :keyword blob_prefix: only blob paths starting with this text.
        :keyword continuation: a token from the previous page.
        :raises ValueError: a continuation token this store did not issue.
        """
        clauses, params = listing_clauses(
            since=since,
            until=until,
            continuation=continuation and decode_continuation(continuation, accepts=is_record_key),
            equal={"state": state and state.value, "route": route, "company": company},
            blob_prefix=blob_prefix,
        )
        rows = self._table.query(clauses, params, per_page=min(limit + 1, 1000))
        found: list[TrackedFile] = []
        more = False
        for entity in rows:
            if len(found) == limit:
                more = True
                break
            found.append(from_entity(entity))
        token = encode_continuation(found[-1].row_key) if more and found else None
        return Page(tuple(found), token)

    def record_fields(
        self, fields: list[str], *, since: datetime | None, until: datetime | None = None
    ) -> Iterator[dict[str, Any]]:
        """Only ``fields`` of the records of a period, newest first (for counts).

        Bounded by the row keys of the period: rows outside it are never read.
        """
        clauses, params = period_clauses(since, until)
        for row in self._table.query(clauses, params, select=fields):
            yield {name: row.get(name) for name in fields}

    def newer_versions(self, record: TrackedFile) -> list[TrackedFile]:
        """The records of later versions of ``record``'s blob path (and of versions modified
        in the same second, which Last-Modified cannot order), newest first.

        Reads the path's index rows up to ``record``'s own second, not the table.
        """
        prefix = blob_index_prefix(record.blob)
        same_second = record.row_key.split("-", 1)[0]
        rows = self._table.query(
            ["RowKey gt @first", "RowKey lt @last"],
            {"first": prefix, "last": f"{prefix}{same_second}-~"},
            select=["record_row_key"],
        )
        keys = [row["record_row_key"] for row in rows if row["record_row_key"] != record.row_key]
        found = (self.get(key) for key in keys)
        return [version for version in found if version is not None]

    # -- writes -------------------------------------------------------------------------------

    def update(
        self,
        record: TrackedFile,
        *,
        schedule_at: datetime | _Unschedule | None = None,
        index_message: bool = False,
        rows: Sequence[Operation] = (),
        guard: Operation | None = None,
        **changes: Any,
    ) -> TrackedFile:
        """Write changes to a record if nobody changed it since it was read.

        A change of ``state`` appends to the history; ``updated_at`` is set to now. A new
        ``last_error`` without a ``failure`` clears the kind the old one had.

        :keyword schedule_at: a time: the record's schedule entry is written with this anchor
            (``poll_count`` and state as the record now has them); :data:`UNSCHEDULE`: the
            entry is deleted. Either in the same transaction as the record.
        :keyword index_message: also write the message-id index row (same transaction).
        :keyword rows: further writes of the same transaction (a delete of a row already
            gone is dropped).
        :keyword guard: a conditional write of another row in the same transaction (an
            ordered line's head): when it fails, nothing is written.
        :raises ConcurrencyError: the row (or the guard's) changed since it was read.
        """
        now = self._clock()
        state = changes.get("state", record.state)
        if state != record.state:
            changes["history"] = with_history(record, state, now)
            if state.is_terminal and "completed_at" not in changes:
                changes["completed_at"] = now
        if "last_error" in changes:
            changes.setdefault("failure", None)
        changes = self._overflow.record_lists(record.record_id, changes)
        if isinstance(schedule_at, datetime):
            changes["next_poll_at"] = schedule_at
        elif schedule_at is UNSCHEDULE:
            changes["next_poll_at"] = None
        updated = replace(record, updated_at=now, write_id=new_write_id(), **changes)
        companions: list[Operation] = []
        if index_message:
            if not updated.message_id:
                raise ValueError("record has no message_id to index")
            companions.append(
                ("upsert", index_entity(message_key(updated.message_id), updated.row_key), {})
            )
        if isinstance(schedule_at, datetime):
            companions.append(("upsert", pending_entity(entry_for(updated, schedule_at)), {}))
        elif schedule_at is UNSCHEDULE:
            companions.append(("delete", schedule_row(updated), {}))
        companions.extend(rows)
        return self._commit(record, updated, companions, guard)

    def _commit(
        self,
        before: TrackedFile,
        after: TrackedFile,
        companions: list[Operation],
        guard: Operation | None = None,
    ) -> TrackedFile:
        entity = to_entity(after)
        stored = from_entity(entity)  # as the row holds it: texts cut, the newest history
        guards = [guard] if guard else []

        def send() -> str:
            nonlocal companions
            while companions or guards:
                operations: list[Operation] = [
                    ("update", entity, {"mode": UpdateMode.REPLACE, **if_match(before.etag)}),
                    *companions,
                    *guards,
                ]
                try:
                    return self._table.transact(operations)[0]
                except TableTransactionError as exc:
                    if guards and exc.index == len(operations) - 1:
                        return self._guarded(after.row_key, stored.write_id)
                    if exc.index == 0 or status_of(exc) != 404:
                        raise
                    # A companion delete of a row already gone: the rest still has to land.
                    companions = [op for i, op in enumerate(companions) if i != exc.index - 1]
            return self._table.replace(entity, etag=before.etag)

        written = write_own(self._table, after.row_key, stored.write_id, send, if_match=before.etag)
        if not written.ours:
            raise ConcurrencyError(f"record {after.record_id} changed meanwhile")
        if written.row is not None:
            return from_entity(written.row)
        return replace(stored, etag=written.etag)

    def _guarded(self, row_key: str, write_id: str) -> str:
        """The guard's row changed: our write did not land, unless the SDK's retry of a
        transaction that had landed met our own change (the record then carries our id)."""
        row = self._table.get(row_key)
        if row is not None and row.get("write_id") == write_id:
            return row.metadata["etag"]
        raise ConcurrencyError(f"the guarded row of record {row_key} changed meanwhile")

    # -- what did not fit a row -------------------------------------------------------------

    def list_package_entities(self, record: TrackedFile) -> tuple[str, ...]:
        """All entity names of a package's manifest (from the blob when they did not fit)."""
        return self._overflow.read_list(record.package_entities, record.package_entities_blob)

    def list_error_files(self, record: TrackedFile) -> tuple[str, ...]:
        """All error files of a record (from the blob when they did not fit the row)."""
        return self._overflow.read_list(record.error_files, record.error_files_blob)

    def store_errors(
        self, record: TrackedFile, errors: Sequence[ExecutionError], raw: str
    ) -> dict[str, Any]:
        """Fields for a record holding these errors: inline when they fit, else in a blob
        (F&O's raw text is always kept, inline or beside the parsed list in the blob)."""
        return self._overflow.errors_fields(record, errors, raw)

    def load_errors(self, record: TrackedFile) -> tuple[ExecutionError, ...]:
        """All errors of a record, reading the errors blob when they did not fit the row."""
        return self._overflow.read_errors(record)
