"""The files of a period per hour of UTC by outcome, for the console's chart.

Filled from the counts view's one scan of the period's records (no query per hour). Every hour
of the period is present, an hour without files as zeros, so a chart needs no gaps filled.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.views.response import json_time

__all__ = ["HOUR", "MAX_HOURS", "HourlyCounts", "Outcome"]

HOUR = "hour"
"""The one ``?interval=`` accepted."""
MAX_HOURS = 31 * 24
"""The most hours one answer holds (31 days): a longer period is refused, not cut."""
_ONE_HOUR = timedelta(hours=1)


class Outcome(enum.StrEnum):
    """How a file ended, as the chart groups the states."""

    PROCESSED = "processed"
    FAILED = "failed"
    """A final state other than Processed (the counts view's failed states)."""
    PENDING = "pending"
    """Not final yet."""


def _hour_of(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class HourlyCounts:
    """Files per hour of UTC by :class:`Outcome`, from the hour ``since`` falls in to the one
    ``until`` falls in (an ``until`` on the hour closes the hour before it).

    :raises ValueError: the period spans more than :data:`MAX_HOURS` hours; the text names
        the period and the limit.
    """

    def __init__(self, since: datetime, until: datetime) -> None:
        first, last = _hour_of(since), _hour_of(until)
        # The hour ``until`` falls in counts, unless ``until`` is the hour's very start; not
        # added to ``last``, which may be the last hour of year 9999.
        hours = max(0, int((last - first) / _ONE_HOUR) + (last < until or last == first))
        if hours > MAX_HOURS:
            raise ValueError(
                f"interval={HOUR} covers at most {MAX_HOURS} hours ({MAX_HOURS // 24} days); "
                f"the period from {json_time(since)} to {json_time(until)} spans {hours}: "
                "ask for a shorter one with since and until"
            )
        self._first = first
        self._first_second = first.timestamp()
        self._counts = [
            dict.fromkeys((outcome.value for outcome in Outcome), 0) for _ in range(hours)
        ]

    def add(self, received: datetime, outcome: Outcome) -> None:
        """Count one file received at ``received``; a time outside the period (a record's
        modified time bounds the scan, not its received time) counts in the nearest hour."""
        if not self._counts:
            return
        # Seconds since the first hour, not datetime arithmetic: this runs once per record.
        index = int((received.timestamp() - self._first_second) // 3600)
        self._counts[min(max(index, 0), len(self._counts) - 1)][outcome.value] += 1

    def as_json(self) -> list[dict[str, Any]]:
        """One entry per hour, oldest first: its start (UTC) and its files by outcome."""
        return [
            {"start": json_time(self._first + index * _ONE_HOUR), **counts}
            for index, counts in enumerate(self._counts)
        ]
