"""Final records past their retention, deleted each with its index rows, schedule entry, blobs.

A record is expired when it is final (a terminal state, its file archived or left for good),
its blob version was modified before the cut-off and it has not changed since: the cut-off
bounds the row keys, so a run reads only records old enough, never the newer ones. Its rows
(the record, its blob-path and message-id index rows, a schedule entry left behind, the purge
row of its blobs) are one item of :class:`._deletions.Deletions`: a transaction takes all or
none of them, so no index row ever points at a deleted record (readers tolerate one all the
same: :meth:`TrackingStore.get_by_message_id` answers None). Its blobs follow by the purge
row (:mod:`._purge`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

from ._deletions import Deletions, Doomed
from ._keys import (
    PARTITION,
    RECORDS_END,
    SCHEDULE_PREFIX,
    blob_index_key,
    message_key,
    record_time,
    schedule_key,
    until_bound,
)
from ._lease import RETENTION_LEASE, Lease
from ._model import TrackingState, utcnow
from ._properties import parse_time
from ._purge import Purge, blob_folder, purge_operation
from ._table import Operation, StatusTable, if_match

__all__ = ["RecordRetention"]

_SCHEDULE_END = SCHEDULE_PREFIX[:-1] + chr(ord(SCHEDULE_PREFIX[-1]) + 1)
_COLUMNS = [
    "RowKey",
    "record_id",
    "state",
    "archive_pending",
    "blob",
    "message_id",
    "updated_at",
    "errors_blob",
    "package_entities_blob",
    "error_files_blob",
    "error_file_count",
    # Whether it may hold its ordered line (_may_hold_its_line).
    "line",
    "line_mode",
    "line_stops",
    "released_at",
    "resubmitted_as",
]
_POINTERS = ("errors_blob", "package_entities_blob", "error_files_blob")


class RecordRetention:
    """Deletes the files' expired records with their rows; finds the oldest record kept.

    :param client: the status table's client.
    :keyword errors_container: where the records' overflow blobs are.
    :keyword rows_per_second: the pace of the deletions (see :class:`._deletions.Deletions`).
    :keyword busy_share: the share of the time they keep the store busy at most (same).
    :keyword clock: the time source (UTC) of the lease.

    :ivar lease: the retention lease: one run at a time; its watermark is the oldest record
        kept as of the last run.
    """

    def __init__(
        self,
        client: TableClient,
        *,
        errors_container: ContainerClient | None = None,
        rows_per_second: float | None = None,
        busy_share: float | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._table = StatusTable(client, partition=PARTITION)
        self._deletions = Deletions(
            self._table, rows_per_second=rows_per_second, busy_share=busy_share
        )
        self.purge = Purge(self._table, errors_container)
        self.lease = Lease(self._table, RETENTION_LEASE, clock=clock)

    def delete_older_than(self, cutoff: datetime, *, deadline: float) -> int:
        """Delete final records unchanged since ``cutoff`` with their rows, until ``deadline``
        (``time.monotonic()``); the rows deleted. Their blobs wait for :meth:`Purge.finish`."""
        return self._deletions.delete(self._expired(cutoff), deadline=deadline)

    def _expired(self, cutoff: datetime) -> Iterator[Doomed]:
        scheduled = {
            row["RowKey"]
            for row in self._table.query(
                ["RowKey ge @first", "RowKey lt @end"],
                {"first": SCHEDULE_PREFIX, "end": _SCHEDULE_END},
                select=["RowKey"],
            )
        }
        rows = self._table.query(
            ["RowKey ge @first", "RowKey lt @end"],
            {"first": until_bound(cutoff), "end": RECORDS_END},
            select=_COLUMNS,
        )
        for row in rows:
            if _is_expired(row, cutoff):
                yield Doomed(row["RowKey"], _operations(row, scheduled))

    def oldest_record(self) -> datetime | None:
        """When the oldest record kept was modified; None when there is none.

        Row keys sort newest first and a query reads them in that order only: a search over
        the keys (each probe one row) finds the last one in about 40 probes.
        """
        first = self._first_at_or_after("")
        if first is None:
            return None
        low, high = int(first[:13]), 10**13 - 1
        while low < high:
            middle = (low + high + 1) // 2
            found = self._first_at_or_after(f"{middle:013d}-")
            if found is None:
                high = middle - 1
            else:
                low = int(found[:13])
        return record_time(f"{low:013d}-")

    def _first_at_or_after(self, bound: str) -> str | None:
        rows = self._table.query(
            ["RowKey ge @first", "RowKey lt @end"],
            {"first": bound, "end": RECORDS_END},
            select=["RowKey"],
            per_page=1,
        )
        return next((str(row["RowKey"]) for row in rows), None)


def _is_expired(row: Any, cutoff: datetime) -> bool:
    try:
        state = TrackingState.parse(row.get("state") or "")
    except ValueError:
        return False  # a state this version does not know: never judged final
    if not state.is_terminal or row.get("archive_pending") or _may_hold_its_line(row, state):
        return False
    updated = parse_time(row.get("updated_at"))
    return updated is not None and updated <= cutoff


def _may_hold_its_line(row: Any, state: TrackingState) -> bool:
    """A failed file its ordered line stops for, neither released nor resubmitted: deleting it
    would let the files behind it go on with nobody's word (:func:`shared.flows.line.verdict_of`
    decides; this errs on keeping: an "upload" line's head F&O took is kept too when in doubt)."""
    if not (row.get("line") and row.get("line_stops")):
        return False
    if row.get("released_at") or row.get("resubmitted_as"):
        return False
    if state in (TrackingState.PROCESSED, TrackingState.REJECTED):
        return False
    return row.get("line_mode") != "upload" or not row.get("message_id")


def _operations(row: Any, scheduled: set[str]) -> tuple[Operation, ...]:
    key, record_id = row["RowKey"], row["record_id"]
    keys = {"PartitionKey": PARTITION}
    operations: list[Operation] = [
        ("delete", {**keys, "RowKey": key}, if_match(row.metadata["etag"])),
        ("delete", {**keys, "RowKey": blob_index_key(row["blob"], key)}, {}),
    ]
    if row.get("message_id"):
        operations.append(("delete", {**keys, "RowKey": message_key(row["message_id"])}, {}))
    if schedule_key(record_id) in scheduled:
        operations.append(("delete", {**keys, "RowKey": schedule_key(record_id)}, {}))
    folders = [blob_folder(row[name]) for name in _POINTERS if row.get(name)]
    if row.get("error_file_count"):
        folders.append(f"{record_id}/")  # F&O's error files, copied by the import follower
    purge = purge_operation(PARTITION, record_id, folders)
    return (*operations, purge) if purge else tuple(operations)
