"""Files per hour by outcome: the hours of a period, their edges in UTC, the limit, the view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.tracking import TrackingState
from shared.views import counts
from shared.views.hourly import MAX_HOURS, HourlyCounts, Outcome
from tests.shared.conftest import Domain
from tests.shared.views.support import enqueued

T = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


def _zeros(start: str) -> dict[str, object]:
    return {"start": start, "processed": 0, "failed": 0, "pending": 0}


def test_every_hour_of_the_period_is_present_an_empty_one_as_zeros() -> None:
    hours = HourlyCounts(T, T + timedelta(hours=2))  # 09:30 to 11:30: hours 09, 10, 11

    assert hours.as_json() == [
        _zeros("2026-11-28T09:00:00+00:00"),
        _zeros("2026-11-28T10:00:00+00:00"),
        _zeros("2026-11-28T11:00:00+00:00"),
    ]


def test_a_file_on_the_hour_counts_in_the_hour_it_opens() -> None:
    hours = HourlyCounts(T, T + timedelta(hours=2))
    hours.add(datetime(2026, 11, 28, 9, 59, 59, 999999, tzinfo=UTC), Outcome.PROCESSED)
    hours.add(datetime(2026, 11, 28, 10, 0, tzinfo=UTC), Outcome.FAILED)
    hours.add(datetime(2026, 11, 28, 10, 0, tzinfo=UTC), Outcome.FAILED)
    hours.add(datetime(2026, 11, 28, 11, 30, tzinfo=UTC), Outcome.PENDING)

    assert [(h["processed"], h["failed"], h["pending"]) for h in hours.as_json()] == [
        (1, 0, 0),
        (0, 2, 0),
        (0, 0, 1),
    ]


def test_hours_are_of_utc_whatever_offset_the_times_carry() -> None:
    plus_two = timezone(timedelta(hours=2))
    since = datetime(2026, 11, 28, 11, 45, tzinfo=plus_two)  # 09:45 UTC
    hours = HourlyCounts(since, since + timedelta(minutes=30))
    hours.add(datetime(2026, 11, 28, 12, 5, tzinfo=plus_two), Outcome.PROCESSED)  # 10:05 UTC

    assert hours.as_json() == [
        _zeros("2026-11-28T09:00:00+00:00"),
        {**_zeros("2026-11-28T10:00:00+00:00"), "processed": 1},
    ]


def test_a_file_just_outside_the_period_counts_in_its_edge_hour() -> None:
    # The scan is bounded by the records' modified time, the hours by their received time.
    hours = HourlyCounts(T, T + timedelta(hours=1))
    hours.add(T - timedelta(hours=5), Outcome.FAILED)
    hours.add(T + timedelta(hours=9), Outcome.PENDING)

    first, last = hours.as_json()
    assert (first["failed"], last["pending"]) == (1, 1)


def test_a_period_that_ends_before_it_starts_has_no_hours() -> None:
    hours = HourlyCounts(T, T - timedelta(hours=3))
    hours.add(T, Outcome.PROCESSED)

    assert hours.as_json() == []


def test_31_days_of_hours_are_accepted_one_more_hour_is_refused_by_name() -> None:
    since = datetime(2026, 11, 1, tzinfo=UTC)
    assert len(HourlyCounts(since, since + timedelta(hours=MAX_HOURS)).as_json()) == 744

    with pytest.raises(ValueError, match=r"interval=hour covers at most 744 hours \(31 days\)"):
        HourlyCounts(since, since + timedelta(hours=MAX_HOURS, seconds=1))


def test_an_until_on_the_hour_closes_the_hour_before_it() -> None:
    hours = HourlyCounts(T.replace(minute=0), T.replace(minute=0) + timedelta(hours=2))
    hours.add(T.replace(minute=0) + timedelta(hours=2), Outcome.PROCESSED)  # at the very end

    assert [h["start"][11:16] for h in hours.as_json()] == ["09:00", "10:00"]
    assert hours.as_json()[-1]["processed"] == 1


def test_the_last_hour_of_the_accepted_range_is_counted_without_overflow(domain: Domain) -> None:
    response = counts.counts(
        lambda: domain.context,
        {"since": "9999-12-31T22:30:00Z", "until": "9999-12-31T23:59:59Z", "interval": "hour"},
    )

    assert response.status == 200, response.body
    assert [b["start"] for b in response.body["buckets"]] == [
        "9999-12-31T22:00:00+00:00",
        "9999-12-31T23:00:00+00:00",
    ]


def test_a_period_of_one_instant_has_its_hour() -> None:
    assert len(HourlyCounts(T.replace(minute=0), T.replace(minute=0)).as_json()) == 1


def test_the_states_fall_into_processed_failed_and_pending() -> None:
    groups = {state: counts.outcome(state) for state in TrackingState}

    assert groups[TrackingState.PROCESSED] is Outcome.PROCESSED
    assert {s for s, o in groups.items() if o is Outcome.FAILED} == counts.FAILED_STATES
    assert {s for s, o in groups.items() if o is Outcome.PENDING} == {
        state for state in TrackingState if not state.is_terminal
    }


def test_counts_with_interval_hour_fill_the_hours_from_the_same_scan(domain: Domain) -> None:
    enqueued(domain)
    now = datetime.now(UTC)
    since = (now - timedelta(hours=3)).isoformat()

    response = counts.counts(lambda: domain.context, {"since": since, "interval": "hour"})

    assert response.status == 200, response.body
    buckets = response.body["buckets"]
    assert response.body["interval"] == "hour"
    assert len(buckets) == 4
    assert buckets[-1]["start"] == now.replace(minute=0, second=0, microsecond=0).isoformat()
    assert buckets[-1]["pending"] == 1
    assert sum(b["processed"] + b["failed"] + b["pending"] for b in buckets) == 1
    assert "buckets" not in counts.counts(lambda: domain.context, {"since": since}).body


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"interval": "day"}, "interval 'day' is not accepted; expected hour"),
        (
            {"since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:01Z", "interval": "hour"},
            "interval=hour covers at most 744 hours (31 days); the period from "
            "2026-01-01T00:00:00+00:00 to 2026-02-01T00:00:01+00:00 spans 745",
        ),
    ],
)
def test_counts_refuse_another_interval_or_too_long_a_period_by_name(
    domain: Domain, params: dict[str, str], error: str
) -> None:
    response = counts.counts(lambda: domain.context, params)

    assert response.status == 400
    assert error in response.body["error"]
