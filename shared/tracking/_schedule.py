"""The poll schedule's entries in the status table.

An entry is due from its anchor on, by the back-off (:mod:`._backoff`); the poll lease's row
(:mod:`._lease`) keeps the watermark of the last tick that polled everything due.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from ._codec import pending_entity, pending_from
from ._keys import SCHEDULE_PREFIX, schedule_key
from ._lease import POLL_LEASE, Lease
from ._model import PendingEntry, utcnow
from ._properties import parse_time
from ._table import StatusTable, if_match

__all__ = ["BATCH_SIZE", "Schedule"]

BATCH_SIZE = 100
"""Operations per entity group transaction (Azure's limit)."""
_SCHEDULE_END = SCHEDULE_PREFIX[:-1] + chr(ord(SCHEDULE_PREFIX[-1]) + 1)
_POLL_FIELDS = ("due", "state", "poll_count", "d365_status", "written_at")


_IN_RANGE = ["RowKey ge @first", "RowKey lt @end"]
_RANGE = {"first": SCHEDULE_PREFIX, "end": _SCHEDULE_END}


class Schedule:
    """The poll-schedule entries of one status table, with the poll lease that lets one tick
    at a time walk them.

    :ivar lease: the poll lease (one tick at a time: the Functions timer is a singleton too,
        but a lease in the table also holds across apps sharing a table and after lock loss);
        its row keeps the watermark of the last complete tick.
    """

    def __init__(self, table: StatusTable, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._table = table
        self._clock = clock
        self.lease = Lease(table, POLL_LEASE, clock=clock)

    def due(self, now: datetime) -> list[PendingEntry]:
        """Entries whose anchor has passed; the finished history is never read."""
        rows = self._table.query(
            [*_IN_RANGE, "due le @now"], {**_RANGE, "now": now.astimezone(UTC)}
        )
        return sorted((pending_from(row) for row in rows), key=lambda entry: entry.due_at)

    def backlog(self) -> tuple[int, datetime | None]:
        """How many records wait, and since when the longest-waiting one has (one scan)."""
        times = [
            parse_time(row["since"])
            for row in self._table.query(_IN_RANGE, _RANGE, select=["since"])
        ]
        return len(times), min((t for t in times if t), default=None)

    def remove(self, entry: PendingEntry) -> None:
        """Take an entry off the schedule if nobody rewrote it since it was read."""
        with contextlib.suppress(ResourceModifiedError):
            self._table.delete(schedule_key(entry.record_id), etag=entry.etag)

    def reschedule(self, entries: Sequence[PendingEntry]) -> list[PendingEntry]:
        """Write new anchors for entries this worker read, each only if unchanged (batched).

        Only the fields a poll changes are sent, as the cost of a batch is mostly the
        serialisation of its entities.
        """
        now = self._clock()
        written: list[PendingEntry] = []
        for start in range(0, len(entries), BATCH_SIZE):
            chunk = [replace(e, written_at=now) for e in entries[start : start + BATCH_SIZE]]
            operations = [
                ("update", _poll_fields(e), {"mode": UpdateMode.MERGE, **if_match(e.etag)})
                for e in chunk
            ]
            try:
                etags = self._table.transact(operations)
            except TableTransactionError:
                # Someone else changed a row of this batch: write the rest one by one.
                written.extend(self._write_each(chunk))
                continue
            written.extend(replace(e, etag=tag) for e, tag in zip(chunk, etags, strict=True))
        return written

    def _write_each(self, entries: Sequence[PendingEntry]) -> list[PendingEntry]:
        written = []
        for entry in entries:
            try:
                etag = self._table.merge(_poll_fields(entry), etag=entry.etag)
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
            written.append(replace(entry, etag=etag))
        return written

    # -- the poll lease's end ---------------------------------------------------------------

    def last_tick(self) -> datetime | None:
        """When the last tick ended (the poll lease's ``until`` once released)."""
        last = self.lease.last()
        return None if last is None else last.until


def _poll_fields(entry: PendingEntry) -> dict[str, Any]:
    entity = pending_entity(entry)
    keys = ("PartitionKey", "RowKey", *_POLL_FIELDS)
    return {key: entity[key] for key in keys if key in entity}
