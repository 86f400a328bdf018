"""F&O's user-based service protection limits: requests at once, requests per window, per user.

Microsoft Learn, "Service protection API limits" (reference spec §14): per user (here: the
token's ``oid``) a number of concurrent requests (52) and of requests in a sliding window (6,000
over 300 s), answered past either with 429, F&O's text and a ``Retry-After``. "Retry
operations": a request sent before its Retry-After has passed is not processed, and the
Retry-After grows. The emulator does the same when the knobs set a limit:

- ``user_max_concurrent`` / ``user_max_requests`` over ``user_window_seconds``: None is no
  limit. Only F&O's own calls count (not the token endpoint, not the SAS blob endpoint, which
  is Azure Storage's); a refused request is not counted in the window.
- the Retry-After of a refusal: for the window, the seconds until its oldest request leaves
  it; for concurrency, ``knobs.retry_after`` (1 s by default).
- a user calling again before that Retry-After has passed is refused whatever the limits
  say, with twice the previous Retry-After (at most ``user_retry_after_max``); its first
  request admitted after it resets the growth. ``user_retry_after_growth=False`` turns this
  off (only the limits refuse).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import jwt

from ._models import Knobs

__all__ = ["Refusal", "UserLimits", "user_of"]

_ANONYMOUS = "anonymous"


def _concurrency_text(limit: int) -> str:
    return f"Number of concurrent requests exceeded the limit of {limit}."


def _rate_text(limit: int, window: float) -> str:
    # F&O's text, typo included.
    return (
        f"Number of requests exeeded the limit of {limit} over the time window of "
        f"{window:g} seconds."
    )


def user_of(headers: Mapping[str, str]) -> str:
    """The user a request counts against: its bearer token's ``oid`` (unverified here; the
    route checks the token), else ``anonymous``."""
    value = headers.get("Authorization") or ""
    if not value.lower().startswith("bearer "):
        return _ANONYMOUS
    try:
        claims = jwt.decode(value[7:].strip(), options={"verify_signature": False})
    except jwt.PyJWTError:
        return _ANONYMOUS
    return str(claims.get("oid") or claims.get("appid") or _ANONYMOUS)


@dataclass(frozen=True)
class Refusal:
    """A request refused by the limits: F&O's text and the Retry-After in seconds."""

    message: str
    retry_after: int


@dataclass
class _User:
    started: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    arrived: int = 0
    blocked_until: float = 0.0
    last_retry_after: int = 0
    last_message: str = ""


class UserLimits:
    """The per-user counters; thread-safe. Also what a benchmark reads: the most requests
    seen in flight at once, and the refusals.

    :keyword clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._users: dict[str, _User] = {}
        self.max_in_flight = 0
        """The most F&O requests of one user admitted at once since the last clear."""
        self.max_offered = 0
        """The most F&O requests of one user under way at once, refused ones included: the
        concurrency the client pushed."""
        self.refusals = 0
        """Requests refused by the limits since the last clear."""

    def clear(self) -> None:
        """Forget every user and the counters."""
        with self._lock:
            self._users.clear()
            self.max_in_flight = 0
            self.max_offered = 0
            self.refusals = 0

    def in_flight(self, user: str) -> int:
        """Requests of ``user`` in flight now."""
        with self._lock:
            found = self._users.get(user)
            return found.in_flight if found else 0

    def admit(self, user: str, knobs: Knobs) -> Refusal | None:
        """Admit one request of ``user``, or refuse it; :meth:`done` must follow either way."""
        with self._lock:
            state = self._users.setdefault(user, _User())
            state.arrived += 1
            self.max_offered = max(self.max_offered, state.arrived)
            now = self._clock()
            if knobs.user_retry_after_growth and now < state.blocked_until:
                return self._refuse(
                    state, now, state.last_message, state.last_retry_after * 2, knobs
                )
            window = knobs.user_window_seconds
            while state.started and state.started[0] <= now - window:
                state.started.popleft()
            limit = knobs.user_max_requests
            if limit is not None and len(state.started) >= limit:
                wait = math.ceil(state.started[0] + window - now)
                return self._refuse(state, now, _rate_text(limit, window), wait, knobs)
            most = knobs.user_max_concurrent
            if most is not None and state.in_flight >= most:
                message = _concurrency_text(most)
                return self._refuse(state, now, message, knobs.retry_after or 1, knobs)
            state.last_retry_after = 0
            state.started.append(now)
            state.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, state.in_flight)
            return None

    def done(self, user: str, *, admitted: bool = True) -> None:
        """One request of ``user`` has been answered (``admitted``: it was let in)."""
        with self._lock:
            state = self._users.get(user)
            if state is not None:
                state.arrived = max(0, state.arrived - 1)
                if admitted:
                    state.in_flight = max(0, state.in_flight - 1)

    def _refuse(self, state: _User, now: float, message: str, wait: int, knobs: Knobs) -> Refusal:
        wait = max(1, min(wait, knobs.user_retry_after_max))
        state.blocked_until = now + wait
        state.last_retry_after = wait
        state.last_message = message
        self.refusals += 1
        return Refusal(message, wait)
