"""What ``GET /api/counts`` answers: files by state, by route, over a period.

Reads only the records of that period (default the last 24 hours), and only three fields of
each; the stuck and the failed ones are counted apart. With ``?interval=hour`` the same scan
also counts the files of each hour by outcome (:mod:`shared.views.hourly`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.context import AppContext
from shared.tracking import TrackingState
from shared.views.guard import with_context
from shared.views.hourly import HOUR, HourlyCounts, Outcome
from shared.views.params import check_names, time_param
from shared.views.response import ApiResponse, json_time, problem

__all__ = ["DEFAULT_COUNT_PERIOD", "FAILED_STATES", "STUCK_AFTER", "counts", "outcome"]

_PARAMS = ("since", "until", "interval")
DEFAULT_COUNT_PERIOD = timedelta(hours=24)
STUCK_AFTER = timedelta(hours=1)
"""A file not final this long after it arrived counts as stuck."""
FAILED_STATES = frozenset(
    {
        TrackingState.PROCESSED_WITH_ERRORS,
        TrackingState.PRE_PROCESSING_ERROR,
        TrackingState.POST_PROCESSING_FAILED,
        TrackingState.REJECTED,
        TrackingState.ENQUEUE_FAILED,
        TrackingState.TIMED_OUT,
        TrackingState.IMPORT_FAILED,
        TrackingState.IMPORT_CANCELED,
    }
)


def counts(context_factory: Callable[[], AppContext], params: Mapping[str, str]) -> ApiResponse:
    """``GET /api/counts?since=&until=&interval=``: files by state and by route over a period
    (default the last 24 hours), with the stuck and failed ones, and with ``interval=hour``
    the files of each hour by outcome; reads only that period's records, once."""

    def answer(context: AppContext) -> ApiResponse:
        now = datetime.now(UTC)
        try:
            check_names(params, _PARAMS)
            since = time_param(params, "since")
            until = time_param(params, "until")
            since = since or (until or now) - DEFAULT_COUNT_PERIOD
            hours = _hourly(params.get("interval"), since, until or now)
        except ValueError as exc:
            return problem(400, str(exc))
        return ApiResponse(200, _count(context, since, until, now, hours))

    return with_context(context_factory, answer)


def _hourly(interval: str | None, since: datetime, until: datetime) -> HourlyCounts | None:
    """The per-hour counts ``?interval=`` asks for (None when absent or empty).

    :raises ValueError: an interval other than ``hour``, or a period too long for it.
    """
    if not interval:
        return None
    if interval != HOUR:
        raise ValueError(f"interval {interval[:20]!r} is not accepted; expected {HOUR}")
    return HourlyCounts(since, until)


def outcome(state: TrackingState) -> Outcome:
    """The chart's group of ``state``: processed, failed (:data:`FAILED_STATES`) or pending."""
    if state in FAILED_STATES:
        return Outcome.FAILED
    return Outcome.PROCESSED if state.is_terminal else Outcome.PENDING


def _count(
    context: AppContext,
    since: datetime,
    until: datetime | None,
    now: datetime,
    hours: HourlyCounts | None,
) -> dict[str, Any]:
    by_state: dict[str, int] = {}
    by_route: dict[str, dict[str, int]] = {}
    totals = {"total": 0, "failed": 0, "stuck": 0}
    fields = ["state", "route", "received_at"]
    for row in context.store.record_fields(fields, since=since, until=until):
        state = TrackingState.parse(row["state"])
        route = row["route"] or "(no route)"
        received = datetime.fromisoformat(str(row["received_at"]))
        stuck = not state.is_terminal and now - received > STUCK_AFTER
        by_state[state.value] = by_state.get(state.value, 0) + 1
        if hours is not None:
            hours.add(received, outcome(state))
        per_route = by_route.setdefault(route, {"total": 0, "failed": 0, "stuck": 0})
        for bucket in (totals, per_route):
            bucket["total"] += 1
            bucket["failed"] += state in FAILED_STATES
            bucket["stuck"] += stuck
    return {
        "since": json_time(since),
        "until": json_time(until),
        **totals,
        "stuck_after_seconds": STUCK_AFTER.total_seconds(),
        "by_state": by_state,
        "by_route": by_route,
        **({"interval": HOUR, "buckets": hours.as_json()} if hours is not None else {}),
    }
