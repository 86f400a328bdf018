"""Which slot of a package export route's schedule is due: the latest one not yet run."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.config.ncrontab import NcrontabSchedule

__all__ = ["due_slot"]


def due_slot(schedule: NcrontabSchedule, *, last: datetime, now: datetime) -> datetime | None:
    """The latest slot after ``last`` and at or before ``now``; None when none is due.

    Slots missed while the app was down collapse into this one: a route runs once for them,
    not once each. The search starts a second before ``now`` and widens the window until a
    slot is in it, so a schedule of every second and a downtime of weeks cost few steps.
    """
    if schedule.next_after(last) > now:
        return None
    window = timedelta(seconds=1)
    while (found := schedule.next_after(max(last, now - window))) > now:
        window *= 2
    while (later := schedule.next_after(found)) <= now:
        found = later
    return found
