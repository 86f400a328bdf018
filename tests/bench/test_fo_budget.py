"""The F&O budget benchmark's own judgement (bench/fo_budget.py), on hand-made phases."""

from __future__ import annotations

from bench.fo_budget import BudgetOptions, PhaseReport, verdict


def _phase(
    name: str, *, final: int = 100, seconds: float = 60.0, throttled: int = 0
) -> PhaseReport:
    return PhaseReport(name, 100, final, seconds, 400, throttled, 6, 6, 40)


def test_the_targets_are_met_with_no_429_and_not_slower() -> None:
    assert verdict([_phase("budget"), _phase("off", seconds=61, throttled=30)]) == []


def test_more_than_one_429_per_100_calls_with_the_budget_misses() -> None:
    missed = verdict([_phase("budget", throttled=5), _phase("off", seconds=90)])
    assert missed == ["more than one 429 per 100 F&O calls with the budget"]


def test_slower_than_an_app_without_the_budget_that_finished_misses() -> None:
    assert verdict([_phase("budget", seconds=90), _phase("off", seconds=20)]) == [
        "slower with the budget than without it"
    ]


def test_an_app_without_the_budget_that_never_finished_is_not_faster() -> None:
    assert verdict([_phase("budget", seconds=90), _phase("off", final=3, seconds=180)]) == []


def test_a_file_not_final_with_the_budget_misses() -> None:
    assert verdict([_phase("budget", final=99), _phase("off", seconds=90)]) == [
        "not every file reached a final state with the budget"
    ]


def test_the_apps_rate_and_its_burst_stay_under_the_emulators_window() -> None:
    options = BudgetOptions()
    per_second = options.app_requests_per_5min / 300
    # The bucket's 10 s burst plus a window's worth of the rate.
    assert per_second * (10 + options.fno_window) < options.fno_requests
    assert options.app_concurrency < options.fno_concurrency
