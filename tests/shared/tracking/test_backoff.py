"""The derived poll schedule: back-off points, what is due after a watermark, progress."""

from datetime import UTC, datetime, timedelta

import pytest

from shared.tracking import Backoff, PendingEntry, TrackingState

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
POLICY = Backoff(interval_min=timedelta(seconds=30), interval_max=timedelta(minutes=10))


def entry(
    *, due: datetime = T0, written: datetime = T0 - timedelta(seconds=1), polls: int = 0
) -> PendingEntry:
    return PendingEntry(
        record_id="r",
        record_row_key="k",
        due_at=due,
        state=TrackingState.ENQUEUED,
        since=T0,
        blob="b.xml",
        message_id="m",
        poll_count=polls,
        written_at=written,
    )


def test_back_off_doubles_from_the_minimum_up_to_the_maximum() -> None:
    assert [POLICY.next_interval(n).total_seconds() for n in range(7)] == [
        30, 60, 120, 240, 480, 600, 600,
    ]  # fmt: skip


def test_points_follow_the_back_off_from_the_anchor() -> None:
    points = POLICY.points(entry(), T0 + timedelta(minutes=8))
    offsets = [(p - T0).total_seconds() for p in points]
    assert offsets == [0, 30, 90, 210, 450]


def test_an_entry_written_after_the_last_tick_is_due_from_its_anchor() -> None:
    fresh = entry(written=T0 + timedelta(seconds=5))
    assert POLICY.is_due(fresh, T0, T0) is True
    assert POLICY.is_due(fresh, None, T0) is True
    assert POLICY.is_due(entry(due=T0 + timedelta(seconds=1)), None, T0) is False


@pytest.mark.parametrize(
    ("watermark_s", "now_s", "due"),
    [
        (0, 10, False),  # polled at 0 by the last tick; next point is 30
        (0, 30, True),  # the point at 30 falls after the watermark
        (30, 60, False),  # polled at 30; next point is 90
        (30, 95, True),
        (100, 200, False),  # polled at 90; next point is 210
        (100, 3600, True),  # ticks stopped for an hour: due once
    ],
)
def test_an_older_entry_is_due_when_one_of_its_points_follows_the_watermark(
    watermark_s: int, now_s: int, due: bool
) -> None:
    watermark = T0 + timedelta(seconds=watermark_s)
    now = T0 + timedelta(seconds=now_s)
    assert POLICY.is_due(entry(), watermark, now) is due


def test_progress_counts_the_polls_made_and_names_the_next() -> None:
    assert POLICY.progress(entry(written=T0 + timedelta(seconds=1)), T0) == (0, T0)
    polls, upcoming = POLICY.progress(entry(polls=2), T0 + timedelta(seconds=100))
    # points at 0, 120 (interval after 2 polls), 360...: one made by the watermark.
    assert polls == 3
    assert upcoming == T0 + timedelta(seconds=120)
