"""When a timer function fires: its NCRONTAB schedule, or a fixed interval for tests and demos.

NCRONTAB expressions are parsed by the app's own grammar (``shared.config.ncrontab``), so a
schedule the settings accept is one this host can run; its schedules satisfy :class:`Schedule`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


class Schedule(Protocol):
    """The occurrences of a timer."""

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence after ``moment``."""
        ...


@dataclass(frozen=True)
class IntervalSchedule:
    """A fixed interval between occurrences (what ``LocalHost(timer_interval=...)`` asks for)."""

    seconds: float

    def next_after(self, moment: datetime) -> datetime:
        """``moment`` plus the interval."""
        return moment + timedelta(seconds=self.seconds)
