"""The F&O budget settings: the calls all instances together may make at once, per 5 minutes.

Defaults stay below F&O's documented user-based service protection limits (52 concurrent
requests, 6,000 requests per 5 minutes, per user per web server; Microsoft Learn, "Service
protection API limits"), with room for the seconds an instance needs to learn of another.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shared.config.parsers import parse_choice
from shared.config.reader import SettingsReader

__all__ = [
    "BUDGET_SETTING",
    "CONCURRENCY_SETTING",
    "REQUESTS_SETTING",
    "BudgetMode",
    "BudgetSettings",
    "read_budget",
]

BUDGET_SETTING = "D365_BUDGET"
CONCURRENCY_SETTING = "D365_MAX_CONCURRENCY"
REQUESTS_SETTING = "D365_MAX_REQUESTS_PER_5MIN"
# Above F&O's documented limits only where they are off (user-based limits: optional from
# 10.0.35, removed in 10.0.36); the bounds just catch typos.
_MAX_CONCURRENCY = 1000
_MAX_REQUESTS = 1_000_000


class BudgetMode(enum.StrEnum):
    """Whether the instances share one F&O budget."""

    SHARED = "shared"
    """One budget for the whole app, kept in the status table."""
    OFF = "off"
    """No budget: each call goes at once, a 429 delays only its own call."""


@dataclass(frozen=True)
class BudgetSettings:
    """The whole app's F&O limits."""

    mode: BudgetMode = BudgetMode.SHARED
    max_concurrency: int = 32
    max_requests_per_5min: int = 4800


def read_budget(reader: SettingsReader) -> BudgetSettings:
    """Read ``D365_BUDGET``, ``D365_MAX_CONCURRENCY`` and ``D365_MAX_REQUESTS_PER_5MIN``;
    problems are noted on ``reader``."""
    defaults = BudgetSettings()
    return BudgetSettings(
        mode=reader.parsed(
            BUDGET_SETTING,
            defaults.mode,
            lambda raw: parse_choice(raw, BudgetMode, "a budget mode"),
            "expected shared (one F&O budget for every instance) or off",
        ),
        max_concurrency=reader.whole_number(
            CONCURRENCY_SETTING,
            defaults.max_concurrency,
            minimum=1,
            maximum=_MAX_CONCURRENCY,
            expected="expected F&O calls in flight at once for the whole app, e.g. 32 "
            "(F&O allows 52 per user)",
        ),
        max_requests_per_5min=reader.whole_number(
            REQUESTS_SETTING,
            defaults.max_requests_per_5min,
            minimum=1,
            maximum=_MAX_REQUESTS,
            expected="expected F&O calls per 5 minutes for the whole app, e.g. 4800 "
            "(F&O allows 6000 per user)",
        ),
    )
