"""NCRONTAB schedules, read as the Azure Functions timer trigger reads them, then evaluated.

One grammar for the app's validation and the local host's timer: what :func:`parse_ncrontab`
accepts, :meth:`NcrontabSchedule.next_after` can run.

- Six fields ``{second} {minute} {hour} {day} {month} {day-of-week}``, separated by spaces.
  Five fields are read with the second 0, as the Functions host reads them.
- Each field is a comma-separated list of parts. A part is:
  - ``*``;
  - a value ``a``;
  - a range ``a-b`` with ``a <= b``;
  - any of these with a step ``/n``; ``a/n`` runs from ``a`` to the field's last value.
- Months may be written ``JAN``-``DEC`` and days of the week ``SUN``-``SAT`` (or in full,
  any case). Sunday is 0; the days of the week run 0-6.
- Day and day of week must both match (the NCrontab library's rule; Vixie cron's is either).

Refused, with the field named:

- what NCrontab does not know (``?``, ``L``, ``W``, ``#``, 7 for Sunday);
- what it reads otherwise than it looks: a reversed range ``30-10`` (NCrontab swaps it to
  ``10-30``) and a step of 0 or one as long as the field (``*/60`` fires at second 0 only);
- a schedule that never fires (``0 0 0 30 2 *``: there is no 30 February).

Times are UTC, as on the Flex Consumption plan.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from shared.config.parsers import shown

__all__ = ["NCRONTAB_FORM", "NcrontabSchedule", "parse_ncrontab"]

NCRONTAB_FORM = "'{second} {minute} {hour} {day} {month} {day-of-week}'"

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
# Every combination of date and day of week comes round within 28 years (the Gregorian
# weekday cycle for 29 February), so a valid schedule always fires within this many days.
_HORIZON_DAYS = 366 * 28 + 7
# The most days each month ever has (29 February in leap years).
_LONGEST_MONTH = {month: calendar.monthrange(2000, month)[1] for month in range(1, 13)}


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()

    @property
    def form(self) -> str:
        values = f"{self.low}-{self.high}"
        if self.names:
            values += f" or {self.names[0][:3].upper()}-{self.names[-1][:3].upper()}"
        if self.name == "day-of-week":
            values += " (Sunday is 0)"
        return f"{values}, as *, a, a-b or a list of these, each with an optional /step"


_FIELDS = (
    _Field("second", 0, 59),
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day-of-week", 0, 6, _DAYS),
)


class _PartError(ValueError):
    """One part of a field is wrong; the text says how, after the part itself."""


@dataclass(frozen=True)
class NcrontabSchedule:
    """A parsed NCRONTAB expression: the values each field matches, in ascending order.

    Build with :func:`parse_ncrontab`.
    """

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    days_of_week: tuple[int, ...]

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment``, as a timezone-aware UTC datetime.

        :param moment: a timezone-aware datetime.
        :raises ValueError: ``moment`` is naive.
        """
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("moment must be timezone-aware, e.g. datetime.now(UTC)")
        start = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        day, earliest = start.date(), start.time()
        for _ in range(_HORIZON_DAYS):
            if self._matches_date(day) and (found := self._first_time(earliest)):
                return datetime.combine(day, found, UTC)
            day, earliest = day + timedelta(days=1), time(0, 0, 0)
        # parse_ncrontab refuses schedules without a date that exists: unreachable.
        raise AssertionError(f"{self.expression!r} has no occurrence")

    def _matches_date(self, day: date) -> bool:
        # isoweekday() counts Monday 1 .. Sunday 7; NCRONTAB counts Sunday 0.
        return (
            day.month in self.months
            and day.day in self.days
            and day.isoweekday() % 7 in self.days_of_week
        )

    def _first_time(self, earliest: time) -> time | None:
        """The first matching time of day at or after ``earliest``, or None."""
        for hour in self.hours[bisect_left(self.hours, earliest.hour) :]:
            same_hour = hour == earliest.hour
            for minute in self.minutes[
                bisect_left(self.minutes, earliest.minute if same_hour else 0) :
            ]:
                floor = earliest.second if same_hour and minute == earliest.minute else 0
                index = bisect_left(self.seconds, floor)
                if index < len(self.seconds):
                    return time(hour, minute, self.seconds[index])
        return None


def parse_ncrontab(text: str) -> NcrontabSchedule:
    """Parse an NCRONTAB expression (six fields, seconds first; five read with second 0).

    :raises ValueError: naming the field that is wrong and the form it accepts, or saying
        that the schedule never fires.
    """
    given = text.split()
    parts = ["0", *given] if len(given) == 5 else given
    if len(parts) != 6:
        raise ValueError(
            f"{shown(text)} has {len(given)} field{'' if len(given) == 1 else 's'}; expected 6, "
            f"{NCRONTAB_FORM}, or 5 without {{second}}"
        )
    values = [_parse_field(text, part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    schedule = NcrontabSchedule(" ".join(given), *values)
    if not any(day <= _LONGEST_MONTH[month] for month in schedule.months for day in schedule.days):
        raise ValueError(
            f"{shown(text)} never fires: no month of its month field ({parts[4]}) has a day of "
            f"its day field ({parts[3]}); February has at most 29 days, and April, June, "
            "September and November 30"
        )
    return schedule


def _parse_field(text: str, field_text: str, spec: _Field) -> tuple[int, ...]:
    values: set[int] = set()
    for part in field_text.split(","):
        try:
            values.update(_parse_part(part, spec))
        except _PartError as exc:
            raise ValueError(
                f"{shown(text)}: {spec.name} field {shown(part)} {exc}; expected {spec.form}"
            ) from None
    return tuple(sorted(values))


def _parse_part(part: str, spec: _Field) -> range:
    base, slash, step_text = part.partition("/")
    step = _parse_step(step_text, spec) if slash else 1
    if base == "*":
        return range(spec.low, spec.high + 1, step)
    first_text, dash, last_text = base.partition("-")
    first = _parse_value(first_text, spec)
    if not dash:
        # "a/n" runs from a to the field's last value; a bare "a" is one value.
        return range(first, spec.high + 1 if slash else first + 1, step)
    last = _parse_value(last_text, spec)
    if first > last:
        raise _PartError(
            f"is a reversed range, which NCRONTAB does not wrap around: write "
            f"{first}-{spec.high},{spec.low}-{last} to wrap, or {last}-{first}"
        )
    return range(first, last + 1, step)


def _parse_step(text: str, spec: _Field) -> int:
    span = spec.high - spec.low
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= span):
        raise _PartError(f"has a step that is not a whole number from 1 to {span}")
    return int(text)


def _parse_value(text: str, spec: _Field) -> int:
    if text.isascii() and text.isdigit() and len(text) <= 2:
        value = int(text)
    else:
        value = _named_value(text, spec.names)
        if value is None:
            raise _PartError("is not a value NCRONTAB knows")
        value += spec.low
    if not spec.low <= value <= spec.high:
        raise _PartError("is out of range")
    return value


def _named_value(text: str, names: Sequence[str]) -> int | None:
    """Index of a month or day name, written in full or by its first three letters."""
    wanted = text.lower()
    return next(
        (i for i, name in enumerate(names) if wanted in (name.lower(), name[:3].lower())), None
    )
