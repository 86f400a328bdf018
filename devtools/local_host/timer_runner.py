"""One timer function as the host runs it: a singleton that skips ticks while it runs."""

from __future__ import annotations

import logging
import threading

from azure.functions.timer import TimerRequest

from devtools.local_host.bindings import TimerFunction
from devtools.local_host.invocation import invoke

_LOGGER = logging.getLogger(__name__)


class TimerRunner:
    """Runs one timer function, at most one invocation at a time."""

    def __init__(self, function: TimerFunction) -> None:
        self.function = function
        self._running = threading.Lock()

    def try_begin(self, reason: str) -> bool:
        """Claim the singleton; log and return False when an invocation is still running."""
        if self._running.acquire(blocking=False):
            return True
        _LOGGER.info(
            "timer tick skipped function=%s reason=%s: previous invocation still running",
            self.function.name,
            reason,
        )
        return False

    def run_claimed(self, *, past_due: bool) -> None:
        """Invoke once (the singleton must be claimed) and release it."""
        try:
            invoke(
                self.function.name,
                self.function.user_function,
                f"trigger=timer past_due={past_due}",
                **{self.function.binding_name: TimerRequest(past_due=past_due)},
            )
        finally:
            self._running.release()
