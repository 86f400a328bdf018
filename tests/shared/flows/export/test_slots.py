"""Which slot of a package export route is due: the latest one not run, missed ones as one."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from shared.config.ncrontab import parse_ncrontab
from shared.flows.export.slots import due_slot

NOW = datetime(2026, 12, 6, 18, 30, 17, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "last", "expected"),
    [
        # Nothing due yet: the next slot is after now.
        ("0 0 2 * * *", NOW - timedelta(hours=1), None),
        # One slot due.
        ("0 0 18 * * *", NOW - timedelta(hours=1), datetime(2026, 12, 6, 18, tzinfo=UTC)),
        # Ten days missed: only the latest of the ten daily slots.
        ("0 0 2 * * *", NOW - timedelta(days=10), datetime(2026, 12, 6, 2, tzinfo=UTC)),
        # A slot exactly now is due; the last slot itself is never due again.
        ("17 30 18 * * *", NOW - timedelta(seconds=1), NOW),
        ("17 30 18 * * *", NOW, None),
    ],
)
def test_the_latest_slot_after_the_last_one_is_due(
    schedule: str, last: datetime, expected: datetime | None
) -> None:
    assert due_slot(parse_ncrontab(schedule), last=last, now=NOW) == expected


def test_a_dense_schedule_down_for_weeks_is_one_slot_found_in_few_steps() -> None:
    started = time.monotonic()
    found = due_slot(parse_ncrontab("* * * * * *"), last=NOW - timedelta(days=30), now=NOW)
    assert found == NOW
    assert time.monotonic() - started < 1.0
