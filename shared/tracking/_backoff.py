"""The poll back-off: when an entry of the poll schedule is due.

A poll that changes nothing writes nothing: an entry's later poll times follow from its anchor
(``due_at``, ``poll_count`` and ``written_at``) and the back-off, and each tick that polled
everything due records its start as the watermark on the poll lease's row.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from ._model import PendingEntry

__all__ = ["Backoff"]


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
