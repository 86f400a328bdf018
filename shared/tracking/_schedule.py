"""The poll schedule: its back-off arithmetic, its entries, and the poll lease.

A poll that changes nothing writes nothing: an entry's later poll times follow from its anchor
(``due_at``, ``poll_count`` and ``written_at``) and the back-off, and each tick that polled
everything due records its start as the watermark on the lease row.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from ._codec import (
    PARTITION,
    SCHEDULE_PREFIX,
    lease_entity,
    lease_key,
    parse_time,
    pending_entity,
    pending_from,
    schedule_key,
)
from ._model import PendingEntry, PollLease, utcnow
from ._table import StatusTable, if_match
from ._writes import insert_own, replace_own

__all__ = ["BATCH_SIZE", "Backoff", "Schedule"]

BATCH_SIZE = 100
"""Operations per entity group transaction (Azure's limit)."""
_POLL_LEASE = "poller"
_SCHEDULE_END = SCHEDULE_PREFIX[:-1] + chr(ord(SCHEDULE_PREFIX[-1]) + 1)
_POLL_FIELDS = ("due", "state", "poll_count", "d365_status", "written_at")


@dataclass(frozen=True)
class Backoff:
    """Poll intervals doubling from ``interval_min`` up to ``interval_max`` (their defaults are
    the settings', ``POLL_INTERVAL_MIN`` and ``POLL_INTERVAL_MAX``)."""

    interval_min: timedelta
    interval_max: timedelta

    def next_interval(self, poll_count: int) -> timedelta:
        """Doubling back-off, capped: 30 s, 1 min, 2 min, 4 min, 8 min, 10 min..."""
        seconds = self.interval_min.total_seconds() * 2 ** min(poll_count, 20)
        return timedelta(seconds=min(seconds, self.interval_max.total_seconds()))

    def _points(self, anchor: datetime, poll_count: int) -> Iterator[datetime]:
        point, count = anchor, poll_count
        while True:
            yield point
            point += self.next_interval(count)
            count += 1

    def points(self, entry: PendingEntry, until: datetime) -> list[datetime]:
        """The entry's poll times from its anchor (``due_at``) up to ``until``."""
        schedule = self._points(entry.due_at, entry.poll_count)
        return list(itertools.takewhile(lambda point: point <= until, schedule))

    def is_due(self, entry: PendingEntry, watermark: datetime | None, now: datetime) -> bool:
        """Whether a poll time of the entry falls after the last complete tick.

        An entry written after that tick (a new anchor) is due from its anchor on.
        """
        if entry.due_at > now:
            return False
        return _fresh(entry, watermark) or self.points(entry, now)[-1] > (watermark or now)

    def progress(self, entry: PendingEntry, watermark: datetime | None) -> tuple[int, datetime]:
        """Polls made so far and the next poll time, as the derived schedule has them."""
        done = 0 if _fresh(entry, watermark) else len(self.points(entry, watermark or entry.due_at))
        upcoming = next(itertools.islice(self._points(entry.due_at, entry.poll_count), done, None))
        return entry.poll_count + done, upcoming

    def projected(
        self, anchor: datetime | None, poll_count: int, now: datetime
    ) -> tuple[int, datetime | None]:
        """Polls made and the next poll time of an anchor, assuming every tick ran on time.

        What a reader shows without the schedule row and the watermark.
        """
        if anchor is None:
            return poll_count, None
        done = len(list(itertools.takewhile(lambda p: p <= now, self._points(anchor, poll_count))))
        upcoming = next(itertools.islice(self._points(anchor, poll_count), done, None))
        return poll_count + done, upcoming


def _fresh(entry: PendingEntry, watermark: datetime | None) -> bool:
    """Written after the last complete tick: no tick has polled it on this anchor yet."""
    return watermark is None or entry.written_at is None or entry.written_at >= watermark


_IN_RANGE = ["RowKey ge @first", "RowKey lt @end"]
_RANGE = {"first": SCHEDULE_PREFIX, "end": _SCHEDULE_END}


class Schedule:
    """The poll-schedule entries and the poll lease of one status table."""

    def __init__(self, table: StatusTable, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._table = table
        self._clock = clock

    def get(self, record_id: str) -> PendingEntry | None:
        """A record's schedule entry, or None when it is not scheduled."""
        row = self._table.get(schedule_key(record_id))
        return None if row is None else pending_from(row)

    def due(self, now: datetime) -> list[PendingEntry]:
        """Entries whose anchor has passed; the finished history is never read."""
        rows = self._table.query(
            [*_IN_RANGE, "due le @now"], {**_RANGE, "now": now.astimezone(UTC)}
        )
        return sorted((pending_from(row) for row in rows), key=lambda entry: entry.due_at)

    def count(self) -> int:
        """How many records are waiting on the poll schedule."""
        return sum(1 for _ in self._table.query(_IN_RANGE, _RANGE, select=["RowKey"]))

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

    # -- the poll lease ---------------------------------------------------------------------

    def acquire_lease(self, holder: str, *, until: datetime) -> PollLease | None:
        """Become the one poller until ``until``; None while a lease (any holder's) runs.

        One tick at a time walks the schedule (the Functions timer is a singleton too, but a
        lease in the table also holds across apps sharing a table and after lock loss). The
        lease row also keeps the watermark of the last complete tick.
        """
        now = self._clock()
        current = self._table.get(lease_key(_POLL_LEASE))
        if current is None:
            watermark = None
            written = insert_own(self._table, _lease_entity(holder, until, None))
        elif (parse_time(current.get("until")) or now) > now:
            return None
        else:
            watermark = parse_time(current.get("watermark"))
            written = replace_own(
                self._table,
                _lease_entity(holder, until, watermark),
                etag=current.metadata["etag"],
            )
        return PollLease(holder, until, watermark, written.etag) if written.ours else None

    def finish_lease(self, lease: PollLease, *, watermark: datetime | None) -> None:
        """End the lease, recording ``watermark`` (None keeps the previous one).

        A lease another holder took meanwhile (this tick overran) is left alone.
        """
        entity = _lease_entity(lease.holder, self._clock(), watermark or lease.watermark)
        replace_own(self._table, entity, etag=lease.etag)

    def watermark(self) -> datetime | None:
        """The watermark of the last complete tick."""
        row = self._table.get(lease_key(_POLL_LEASE))
        return None if row is None else parse_time(row.get("watermark"))

    def last_tick(self) -> datetime | None:
        """When the last tick ended (the lease's ``until`` once finished)."""
        row = self._table.get(lease_key(_POLL_LEASE))
        return None if row is None else parse_time(row.get("until"))


def _lease_entity(holder: str, until: datetime, watermark: datetime | None) -> dict[str, Any]:
    return lease_entity(PARTITION, _POLL_LEASE, holder, until, watermark=watermark)


def _poll_fields(entry: PendingEntry) -> dict[str, Any]:
    entity = pending_entity(entry)
    keys = ("PartitionKey", "RowKey", *_POLL_FIELDS)
    return {key: entity[key] for key in keys if key in entity}
