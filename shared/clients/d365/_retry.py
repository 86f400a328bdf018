"""How long to wait before a call to F&O is made again (the policy, the budget, Retry-After)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime

import requests

from ._errors import D365HttpError

__all__ = [
    "RetryBudget",
    "RetryPolicy",
    "honour_retry_after",
    "parse_retry_after",
    "retry_after_of",
]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long the client retries a call that F&O may answer next time.

    429 and 503 wait for `Retry-After` (seconds or an HTTP date; `default_retry_after` when
    absent); other 5xx, timeouts and connection errors wait an exponential backoff with full
    jitter (`backoff_base * 2 ** (attempt - 1)`, capped at `backoff_max`). Retries stop after
    `max_attempts` attempts or when the next wait would end past `total_timeout` seconds from
    the first attempt.
    """

    max_attempts: int = 5
    total_timeout: float = 120.0
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    default_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        for name in ("total_timeout", "backoff_base", "backoff_max", "default_retry_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based), with full jitter."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(0.0, ceiling)  # noqa: S311 - jitter, not cryptography

    def describe(self) -> str:
        """The budget in words, for error messages."""
        return f"max_attempts={self.max_attempts}, total_timeout={self.total_timeout:g} s"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` in seconds from now: delay-seconds or an HTTP date; None when absent or
    unreadable. A date in the past gives 0."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def retry_after_of(response: requests.Response) -> float | None:
    """The `Retry-After` of `response` in seconds from now (see :func:`parse_retry_after`)."""
    return parse_retry_after(response.headers.get("Retry-After"))


def honour_retry_after(wait: timedelta, exc: BaseException) -> timedelta:
    """`wait`, or longer when `exc` is an F&O refusal whose Retry-After asked for more: how a
    caller that tries again later (a back-off) keeps to what F&O asked."""
    retry_after = exc.retry_after if isinstance(exc, D365HttpError) else None
    if retry_after:
        return max(wait, timedelta(seconds=retry_after))
    return wait


class RetryBudget:
    """Attempts made and time spent by one call, sleeps included.

    Time asleep is counted as requested, so an injected `sleep` that returns at once (tests)
    still consumes the budget, and a real one is not counted twice.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        sleep: Callable[[float], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._sleep = sleep
        self._clock = clock
        self._start = clock()
        self._asleep_requested = 0.0
        self._asleep_measured = 0.0
        self.attempts = 0

    @property
    def policy(self) -> RetryPolicy:
        """The policy this budget spends."""
        return self._policy

    def begin_attempt(self) -> int:
        """Count one attempt; returns its 1-based number."""
        self.attempts += 1
        return self.attempts

    @property
    def elapsed(self) -> float:
        """Seconds used so far."""
        awake = self._clock() - self._start - self._asleep_measured
        return awake + self._asleep_requested

    def allows(self, wait: float) -> bool:
        """True when another attempt after `wait` seconds stays within the policy."""
        return (
            self.attempts < self._policy.max_attempts
            and self.elapsed + wait <= self._policy.total_timeout
        )

    def sleep(self, wait: float) -> None:
        """Wait `wait` seconds with the injected sleeper."""
        before = self._clock()
        self._sleep(wait)
        self._asleep_measured += self._clock() - before
        self._asleep_requested += wait
