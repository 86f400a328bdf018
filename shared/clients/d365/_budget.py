"""The call budget the engine asks before each call to F&O: the protocol, and its local form.

F&O limits each user (the app's client id) in requests at once and per five minutes, and
answers 429 with a ``Retry-After`` when pushed past them (see docs/architecture.md, "One F&O
budget"). The engine asks a :class:`CallBudget` for a permit before every attempt it sends
with the F&O token, gives it back once the answer is read, and tells it of every 429. The
client knows only this protocol; the app's budget shared across instances lives in
``shared.tracking`` and is wired in ``shared.context``.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from ._failures import not_admitted
from ._operation import OperationContext

__all__ = [
    "DEFAULT_BUDGET_WAIT",
    "RATE_WINDOW_SECONDS",
    "UNLIMITED",
    "CallBudget",
    "CallPriority",
    "LocalBudget",
    "Reservations",
    "permit",
    "priority_of",
]

DEFAULT_BUDGET_WAIT = 20.0
"""Seconds a call waits at most for a permit before it fails unsent (a 429 of our own)."""
RATE_WINDOW_SECONDS = 300.0
"""F&O's window for the number of requests: five minutes."""

_STATUS_OPERATIONS = frozenset(
    {
        "GetMessageStatus",
        "GetExecutionIdByMessageId",
        "GetExecutionErrors",
        "GetExecutionSummaryStatus",
        "GetImportStagingErrorFileUrl",
        "GenerateImportTargetErrorKeysFile",
        "GetImportTargetErrorKeysFileUrl",
    }
)
# The bucket holds this many seconds of the rate (at least the concurrency): a burst.
_BURST_SECONDS = 10.0
# The share of an instance's concurrency kept for status calls when it has 2 slots or more.
_STATUS_RESERVE = 0.25


class CallPriority(enum.IntEnum):
    """Which calls go first when the budget is short: lower values first."""

    STATUS = 0
    """Status polls of messages and executions: they keep moving during a large upload."""
    TRANSFER = 1
    """Enqueue, dequeue, download, ack and the package calls: they wait first."""


def priority_of(operation: str) -> CallPriority:
    """The priority of one of the client's operations (its name, e.g. ``GetMessageStatus``)."""
    return CallPriority.STATUS if operation in _STATUS_OPERATIONS else CallPriority.TRANSFER


class CallBudget(Protocol):
    """What the engine asks before each F&O call and tells after it."""

    def acquire(self, priority: CallPriority, *, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a permit; False when none came (nothing sent)."""
        ...

    def release(self, priority: CallPriority) -> None:
        """Give back the permit of a call whose answer has been read (or that failed)."""
        ...

    def throttled(self, retry_after: float) -> None:
        """F&O answered 429 asking for ``retry_after`` seconds: nobody calls until then."""
        ...

    def retry_after(self) -> float:
        """Seconds until calls may be made again (0 when not throttled)."""
        ...


@contextmanager
def permit(budget: CallBudget, context: OperationContext, *, timeout: float) -> Iterator[None]:
    """Hold one permit of ``budget`` for one attempt of ``context``'s call.

    :raises D365ThrottledError: no permit within ``timeout`` seconds, or the app is throttled
        past it; nothing was sent.
    """
    priority = priority_of(context.operation)
    if not budget.acquire(priority, timeout=max(0.0, timeout)):
        raise not_admitted(context, budget.retry_after(), timeout)
    try:
        yield
    finally:
        budget.release(priority)


class Reservations:
    """Permits a thread took ahead of its next calls of one operation (see
    :meth:`D365Client.reserved`): those calls use it instead of asking again."""

    def __init__(self) -> None:
        self._local = threading.local()

    def holds(self, operation: str) -> bool:
        """True when this thread holds a permit for ``operation``'s calls."""
        return getattr(self._local, "operation", None) == operation

    @contextmanager
    def hold(
        self, budget: CallBudget, context: OperationContext, *, timeout: float
    ) -> Iterator[None]:
        """Take a permit for ``context.operation``'s calls on this thread until the block ends.

        :raises D365ThrottledError: no permit within ``timeout`` seconds (nothing was sent).
        """
        if self.holds(context.operation):
            yield
            return
        with permit(budget, context, timeout=timeout):
            self._local.operation = context.operation
            try:
                yield
            finally:
                self._local.operation = None


class _Unlimited:
    """A budget that never waits: the client's default."""

    def acquire(self, priority: CallPriority, *, timeout: float) -> bool:
        """Always a permit at once."""
        return True

    def release(self, priority: CallPriority) -> None:
        """Nothing to give back."""

    def throttled(self, retry_after: float) -> None:
        """Nothing to remember: the engine's own retry waits honour Retry-After."""

    def retry_after(self) -> float:
        """Never throttled."""
        return 0.0


UNLIMITED: CallBudget = _Unlimited()
"""The budget of a client given none: no limit of its own."""


class LocalBudget:
    """One process's permits: at most ``concurrency`` calls at once, a token bucket of
    ``requests_per_5min`` spread evenly, a "throttled until", and status calls first.

    Transfer calls may hold at most ``concurrency`` minus a reserve (a quarter, at least one,
    once there are 2 slots), and wait while a status call waits, so polls keep moving while
    uploads hold slots. The bucket holds 10 s of the rate (at least ``concurrency`` tokens),
    so any stretch of ``t`` seconds sees at most that plus ``rate * t`` calls start: 5 minutes
    at most 1.03 times the rate's 5 minutes.

    :param concurrency: calls in flight at once; 0 stops every call (an instance without a
        share).
    :param requests_per_5min: calls started per five minutes.
    :keyword clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        concurrency: int,
        requests_per_5min: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._in_flight = dict.fromkeys(CallPriority, 0)
        self._waiting = dict.fromkeys(CallPriority, 0)
        self._throttled_until = 0.0
        self._concurrency = 0
        self._rate = 0.0
        self._tokens = 0.0
        self._filled_at = clock()
        self.set_share(concurrency, requests_per_5min)
        self._tokens = self._capacity

    @property
    def concurrency(self) -> int:
        """Calls allowed in flight at once now."""
        return self._concurrency

    @property
    def requests_per_5min(self) -> float:
        """Calls allowed to start per five minutes now."""
        return self._rate * RATE_WINDOW_SECONDS

    @property
    def in_flight(self) -> int:
        """Calls holding a permit now."""
        with self._cond:
            return sum(self._in_flight.values())

    @property
    def _capacity(self) -> float:
        return max(1.0, float(self._concurrency), self._rate * _BURST_SECONDS)

    def set_share(self, concurrency: int, requests_per_5min: float) -> None:
        """Change the limits (an instance's share changed); waiters look again."""
        if concurrency < 0 or requests_per_5min < 0:
            raise ValueError("a budget's concurrency and rate must not be negative")
        with self._cond:
            self._refill(self._clock())
            self._concurrency = concurrency
            self._rate = requests_per_5min / RATE_WINDOW_SECONDS
            self._tokens = min(self._tokens, self._capacity)
            self._cond.notify_all()

    def acquire(self, priority: CallPriority, *, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a permit; False at once when throttled past it."""
        with self._cond:
            deadline = self._clock() + max(0.0, timeout)
            self._waiting[priority] += 1
            try:
                while True:
                    now = self._clock()
                    if self._throttled_until > deadline:
                        return False
                    wait = self._wait_for(priority, now)
                    if wait <= 0:
                        self._in_flight[priority] += 1
                        self._tokens -= 1.0
                        return True
                    if now >= deadline:
                        return False
                    self._cond.wait(min(wait, deadline - now))
            finally:
                self._waiting[priority] -= 1
                self._cond.notify_all()

    def release(self, priority: CallPriority) -> None:
        """Give back a permit."""
        with self._cond:
            self._in_flight[priority] = max(0, self._in_flight[priority] - 1)
            self._cond.notify_all()

    def throttled(self, retry_after: float) -> None:
        """No permit until ``retry_after`` seconds from now (a later end is kept)."""
        self.throttle_until(self._clock() + max(0.0, retry_after))

    def throttle_until(self, until: float) -> None:
        """No permit before ``until`` (this budget's clock); an earlier end never shortens it."""
        with self._cond:
            if until > self._throttled_until:
                self._throttled_until = until
                self._cond.notify_all()

    def retry_after(self) -> float:
        """Seconds until the throttling ends (0 when not throttled)."""
        with self._cond:
            return max(0.0, self._throttled_until - self._clock())

    def _wait_for(self, priority: CallPriority, now: float) -> float:
        """Seconds to wait before ``priority`` may go (math.inf: until something changes)."""
        if self._throttled_until > now:
            return self._throttled_until - now
        if sum(self._in_flight.values()) >= self._concurrency or (
            priority is CallPriority.TRANSFER and self._transfer_held_back()
        ):
            return math.inf
        self._refill(now)
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) / self._rate if self._rate > 0 else math.inf

    def _transfer_held_back(self) -> bool:
        """A transfer call waits while a status call waits, or when it would take the slots
        reserved for status calls."""
        if self._waiting[CallPriority.STATUS]:
            return True
        reserve = max(1, int(self._concurrency * _STATUS_RESERVE)) if self._concurrency > 1 else 0
        return self._in_flight[CallPriority.TRANSFER] >= self._concurrency - reserve

    def _refill(self, now: float) -> None:
        self._tokens = min(self._capacity, self._tokens + (now - self._filled_at) * self._rate)
        self._filled_at = now
