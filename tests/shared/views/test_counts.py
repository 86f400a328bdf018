"""The counts view: its refusals, the ends of the accepted range, what counts as failed."""

from __future__ import annotations

import pytest
from hypothesis import given

from shared.tracking import TrackingState
from shared.views import counts
from tests.hostile import hostile_settings
from tests.shared.conftest import Domain
from tests.shared.views.support import (
    OUT_OF_RANGE,
    assert_answered_or_refused,
    enqueued,
    query_params,
)


def test_counts_refuse_unknown_parameters_and_bad_times(domain: Domain) -> None:
    unknown = counts.counts(lambda: domain.context, {"state": "Processed"})
    bad = counts.counts(lambda: domain.context, {"since": "soon"})
    assert unknown.status == bad.status == 400
    assert "unknown parameter(s) state; accepted: since, until, interval" in unknown.body["error"]
    assert "since 'soon' is not a date-time" in bad.body["error"]


@pytest.mark.parametrize(
    "params",
    [
        {"until": "0001-01-01T00:00:00Z"},
        {"since": "0001-01-01T00:30:00+01:00"},
        {"since": "9999-12-31T23:00:00-05:00"},
        {"until": "9999-12-31T23:00:00-05:00"},
        {"since": "1600-12-31T23:59:59Z"},
    ],
)
def test_counts_with_a_time_past_the_accepted_range_is_a_400_that_names_it(
    domain: Domain, params: dict[str, str]
) -> None:
    [(name, text)] = params.items()

    response = counts.counts(lambda: domain.context, params)

    assert response.status == 400
    assert response.body["error"] == f"{name} {text!r} {OUT_OF_RANGE}"


def test_counts_take_the_ends_of_the_accepted_range(domain: Domain) -> None:
    enqueued(domain)
    earliest = counts.counts(lambda: domain.context, {"until": "1601-01-01T00:00:00Z"})
    everything = counts.counts(
        lambda: domain.context,
        {"since": "1601-01-01T01:00:00+01:00", "until": "9999-12-31T23:59:59Z"},
    )
    assert earliest.status == everything.status == 200
    assert (earliest.body["since"], earliest.body["total"]) == ("1600-12-31T00:00:00+00:00", 0)
    assert (everything.body["since"], everything.body["total"]) == ("1601-01-01T00:00:00+00:00", 1)


def test_every_final_state_but_processed_counts_as_failed() -> None:
    # A state added to TrackingState (as the package API's were) is counted, not left out.
    final = {state for state in TrackingState if state.is_terminal}
    assert final - {TrackingState.PROCESSED} == counts.FAILED_STATES
    assert {TrackingState.IMPORT_FAILED, TrackingState.IMPORT_CANCELED} <= counts.FAILED_STATES


@hostile_settings(100)
@given(params=query_params("since", "until", "interval"))
def test_hostile_query_parameters_answer_the_counts_or_a_400_saying_why(
    domain: Domain, params: dict[str, str]
) -> None:
    assert_answered_or_refused(counts.counts(lambda: domain.context, params), 400)
