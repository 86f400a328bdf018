"""The views' query parameters under hostile input (Hypothesis): times, page sizes, states, message
ids, parameter names and the counts' interval are each a valid value or a ``ValueError`` naming
the parameter; never another exception, and a valid time survives what the views do with it."""

from __future__ import annotations

import re
import uuid
from datetime import UTC

from hypothesis import example, given
from hypothesis import strategies as st

from shared.tracking import ExportState, TrackingState
from shared.tracking._keys import since_bound, until_bound
from shared.views.counts import DEFAULT_COUNT_PERIOD
from shared.views.hourly import HOUR, HourlyCounts
from shared.views.params import (
    EARLIEST,
    LATEST,
    MAX_LIMIT,
    check_names,
    limit_param,
    parse_message_id,
    time_param,
)
from shared.views.response import json_time
from tests.hostile import DEEP_JSON, HOSTILE, TEXTS, weighted
from tests.shared.views.support import DIGITS, TIMES

GUIDS = st.uuids().map(str)
MESSAGE_IDS = weighted(
    (1, GUIDS.map(lambda g: f"{{{g.upper()}}}")),
    (1, GUIDS.map(lambda g: f'{{"value": "{g}"}}')),
    (1, GUIDS.map(lambda g: f'"{g}"')),
    (1, DEEP_JSON),
    (3, TEXTS),
)
"""Message ids as F&O or a person writes them, nested JSON, and anything at all."""


@HOSTILE
@given(text=TIMES, name=st.sampled_from(["since", "until"]))
@example(text="9999-12-31T23:59:59.999999-00:01", name="until")
@example(text="1601-01-01T00:00:00+00:01", name="since")
def test_a_time_is_an_aware_utc_time_in_range_or_a_refusal_naming_it(text: str, name: str) -> None:
    try:
        value = time_param({name: text}, name)
    except ValueError as exc:
        assert str(exc).startswith(f"{name} "), exc
        return
    if not text:
        assert value is None
        return
    assert value is not None and value.tzinfo is UTC
    assert EARLIEST <= value <= LATEST
    # What the views and the store do with a time: none of it may overflow.
    assert json_time(value)
    assert since_bound(value) and until_bound(value)
    assert value - DEFAULT_COUNT_PERIOD < value


@HOSTILE
@given(since=TIMES, until=TIMES)
def test_the_hourly_interval_of_any_accepted_period_is_counted_or_refused(
    since: str, until: str
) -> None:
    try:
        first = time_param({"since": since}, "since") or EARLIEST
        last = time_param({"until": until}, "until") or LATEST
        hours = HourlyCounts(first, last)
    except ValueError as exc:
        assert re.match(rf"(since|until|interval={HOUR}) ", str(exc)), exc
        return
    assert hours.as_json() is not None


@HOSTILE
@given(text=weighted((1, DIGITS), (1, st.integers(0, MAX_LIMIT + 1).map(str)), (1, TEXTS)))
@example(text="²")
@example(text="1" * 5000)
@example(text="\uff10\uff11")  # fullwidth digits: int() reads them
def test_a_limit_is_a_page_size_or_a_refusal_naming_it(text: str) -> None:
    try:
        limit = limit_param({"limit": text})
    except ValueError as exc:
        assert str(exc).startswith("limit "), exc
        return
    assert 1 <= limit <= MAX_LIMIT


@HOSTILE
@given(text=MESSAGE_IDS)
@example(text="[" * 2000)
@example(text='{"value": ' * 2000)
def test_a_message_id_is_a_bare_lower_case_guid_or_a_refusal_naming_it(text: str) -> None:
    try:
        message_id = parse_message_id(text, expected="a GUID")
    except ValueError as exc:
        assert str(exc).startswith("message_id "), exc
        assert str(exc).endswith("expected a GUID")
        return
    assert message_id == str(uuid.UUID(message_id))


@HOSTILE
@given(
    text=weighted(
        (1, st.sampled_from([*TrackingState, *ExportState]).map(lambda s: f" {s.value.upper()} ")),
        (2, TEXTS),
    ),
    kind=st.sampled_from([TrackingState, ExportState]),
)
def test_a_state_is_a_member_in_any_case_or_a_refusal_listing_the_states(
    text: str, kind: type[TrackingState] | type[ExportState]
) -> None:
    try:
        state = kind.parse(text)
    except ValueError as exc:
        assert "accepted: " in str(exc), exc
        return
    assert state.value.lower() == text.strip().lower()


@HOSTILE
@given(names=st.dictionaries(TEXTS, TEXTS, max_size=4))
def test_unknown_parameter_names_are_refused_listing_the_accepted_ones(
    names: dict[str, str],
) -> None:
    accepted = ("since", "until", "limit")
    try:
        check_names(names, accepted)
    except ValueError as exc:
        assert str(exc).endswith("accepted: since, until, limit"), exc
        return
    assert set(names) <= {*accepted, "code"}
