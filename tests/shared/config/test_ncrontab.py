"""NCRONTAB: the grammar Azure Functions' timer reads, and the occurrences it yields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.config import NcrontabSchedule, parse_ncrontab

# A Wednesday.
NOON = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def _next(expression: str, after: datetime = NOON, count: int = 1) -> list[datetime]:
    schedule = parse_ncrontab(expression)
    found = []
    for _ in range(count):
        after = schedule.next_after(after)
        found.append(after)
    return found


def _at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 */1 * * * *", [_at(2025, 1, 1, 12, 1), _at(2025, 1, 1, 12, 2)]),
        ("*/10 * * * * *", [_at(2025, 1, 1, 12, 0, 10), _at(2025, 1, 1, 12, 0, 20)]),
        ("*/5 * * * *", [_at(2025, 1, 1, 12, 5), _at(2025, 1, 1, 12, 10)]),  # five fields
        ("0 0 9-17 * * 1-5", [_at(2025, 1, 1, 13), _at(2025, 1, 1, 14)]),
        ("0 0 0 * * MON-FRI", [_at(2025, 1, 2), _at(2025, 1, 3)]),
        ("0 0 0 * * sat,SUNDAY", [_at(2025, 1, 4), _at(2025, 1, 5)]),
        ("0 30 2 1,15 JAN-MAR *", [_at(2025, 1, 15, 2, 30), _at(2025, 2, 1, 2, 30)]),
        ("0 0 1-10/3 * * *", [_at(2025, 1, 2, 1), _at(2025, 1, 2, 4)]),
        ("0 50/5 * * * *", [_at(2025, 1, 1, 12, 50), _at(2025, 1, 1, 12, 55)]),
        ("0 0 12 * * *", [_at(2025, 1, 2, 12), _at(2025, 1, 3, 12)]),  # strictly after
        # Day and day of week must both match (NCrontab), not either (Vixie cron).
        ("0 0 0 13 * FRI", [_at(2025, 6, 13), _at(2026, 2, 13)]),
        ("0 0 0 29 2 *", [_at(2028, 2, 29), _at(2032, 2, 29)]),
        ("0 0 0 31 * *", [_at(2025, 1, 31), _at(2025, 3, 31)]),
        ("59 59 23 31 12 *", [_at(2025, 12, 31, 23, 59, 59), _at(2026, 12, 31, 23, 59, 59)]),
    ],
)
def test_next_occurrences(expression: str, expected: list[datetime]) -> None:
    assert _next(expression, count=len(expected)) == expected


def test_the_rarest_schedule_still_fires() -> None:
    # 29 February on a Monday: 2044 after 2016 (28 years is the full cycle).
    assert _next("0 0 0 29 2 MON", _at(2016, 3, 1)) == [_at(2044, 2, 29)]


def test_next_after_takes_any_timezone_and_answers_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    moment = datetime(2025, 1, 1, 13, 0, 0, 500_000, tzinfo=paris)  # 12:00:00.5 UTC
    found = parse_ncrontab("* * * * * *").next_after(moment)
    assert found == _at(2025, 1, 1, 12, 0, 1)
    assert found.tzinfo is UTC


def test_next_after_refuses_a_naive_moment() -> None:
    with pytest.raises(ValueError, match="moment must be timezone-aware"):
        parse_ncrontab("* * * * * *").next_after(datetime(2025, 1, 1))


def test_parsed_values_and_normalised_text() -> None:
    schedule = parse_ncrontab("  0  0/20 9-11,13 * jan,Mar MON-WED ")
    assert schedule == NcrontabSchedule(
        expression="0 0/20 9-11,13 * jan,Mar MON-WED",
        seconds=(0,),
        minutes=(0, 20, 40),
        hours=(9, 10, 11, 13),
        days=tuple(range(1, 32)),
        months=(1, 3),
        days_of_week=(1, 2, 3),
    )


FORM = "as *, a, a-b or a list of these, each with an optional /step"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            "30-10 * * * * *",
            "'30-10 * * * * *': second field '30-10' is a reversed range, which NCRONTAB does "
            f"not wrap around: write 30-59,0-10 to wrap, or 10-30; expected 0-59, {FORM}",
        ),
        (
            "0 0 0 30 2 *",
            "'0 0 0 30 2 *' never fires: no month of its month field (2) has a day of its day "
            "field (30); February has at most 29 days, and April, June, September and "
            "November 30",
        ),
        (
            "0 0 0 31 APR,JUN *",
            "'0 0 0 31 APR,JUN *' never fires: no month of its month field (APR,JUN) has a day "
            "of its day field (31); February has at most 29 days, and April, June, September "
            "and November 30",
        ),
        (
            "0 0 * * * * *",
            "'0 0 * * * * *' has 7 fields; expected 6, '{second} {minute} {hour} {day} {month} "
            "{day-of-week}', or 5 without {second}",
        ),
        (
            "60 * * * * *",
            f"'60 * * * * *': second field '60' is out of range; expected 0-59, {FORM}",
        ),
        ("0 0 24 * * *", f"'0 0 24 * * *': hour field '24' is out of range; expected 0-23, {FORM}"),
        ("0 0 0 0 * *", f"'0 0 0 0 * *': day field '0' is out of range; expected 1-31, {FORM}"),
        (
            "0 0 0 * 13 *",
            f"'0 0 0 * 13 *': month field '13' is out of range; expected 1-12 or JAN-DEC, {FORM}",
        ),
        (
            "0 0 0 * * 7",
            "'0 0 0 * * 7': day-of-week field '7' is out of range; expected 0-6 or SUN-SAT "
            f"(Sunday is 0), {FORM}",
        ),
        (
            "0 */0 * * * *",
            "'0 */0 * * * *': minute field '*/0' has a step that is not a whole number from 1 "
            f"to 59; expected 0-59, {FORM}",
        ),
        (
            "*/60 * * * * *",
            "'*/60 * * * * *': second field '*/60' has a step that is not a whole number from 1 "
            f"to 59; expected 0-59, {FORM}",
        ),
        (
            "0 0 0 ? * *",
            f"'0 0 0 ? * *': day field '?' is not a value NCRONTAB knows; expected 1-31, {FORM}",
        ),
        (
            "0 0 0 L * *",
            f"'0 0 0 L * *': day field 'L' is not a value NCRONTAB knows; expected 1-31, {FORM}",
        ),
        (
            "0 0 0 * * MON#2",
            "'0 0 0 * * MON#2': day-of-week field 'MON#2' is not a value NCRONTAB knows; "
            f"expected 0-6 or SUN-SAT (Sunday is 0), {FORM}",
        ),
        (
            "0 0 0 * * TUES",
            "'0 0 0 * * TUES': day-of-week field 'TUES' is not a value NCRONTAB knows; "
            f"expected 0-6 or SUN-SAT (Sunday is 0), {FORM}",
        ),
        (
            "0 0 0 * FOO *",
            "'0 0 0 * FOO *': month field 'FOO' is not a value NCRONTAB knows; expected 1-12 "
            f"or JAN-DEC, {FORM}",
        ),
        (
            "0 0 0 * * MON-",
            "'0 0 0 * * MON-': day-of-week field 'MON-' is not a value NCRONTAB knows; "
            f"expected 0-6 or SUN-SAT (Sunday is 0), {FORM}",
        ),
        (
            "0 0 0 1,,2 * *",
            f"'0 0 0 1,,2 * *': day field '' is not a value NCRONTAB knows; expected 1-31, {FORM}",
        ),
        (
            "0 0 H * * *",
            f"'0 0 H * * *': hour field 'H' is not a value NCRONTAB knows; expected 0-23, {FORM}",
        ),
        (
            "0 0 ٣ * * *",
            f"'0 0 ٣ * * *': hour field '٣' is not a value NCRONTAB knows; expected 0-23, {FORM}",
        ),
        (
            "",
            "'' has 0 fields; expected 6, '{second} {minute} {hour} {day} {month} "
            "{day-of-week}', or 5 without {second}",
        ),
    ],
)
def test_refused_expressions_name_the_field_and_the_form(expression: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_ncrontab(expression)
    assert str(caught.value) == message
