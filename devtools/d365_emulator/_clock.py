"""The emulator's lifecycle clock: real time that tests can advance or speed up."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Emulator time (UTC); starts at the real time, never goes backwards.

    `advance(seconds)` jumps ahead; `speed` scales how fast real time passes for it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._base = datetime.now(UTC)
        self._mono = time.monotonic()
        self._speed = 1.0

    def now(self) -> datetime:
        """The current emulator time."""
        with self._lock:
            return self._now_locked()

    def advance(self, seconds: float) -> None:
        """Move emulator time forward by `seconds`."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        with self._lock:
            self._base += timedelta(seconds=seconds)

    @property
    def speed(self) -> float:
        """How many emulator seconds pass per real second."""
        return self._speed

    @speed.setter
    def speed(self, factor: float) -> None:
        if factor < 0:
            raise ValueError("speed must not be negative")
        with self._lock:
            # Rebase so that changing the speed does not make time jump.
            self._base = self._now_locked()
            self._mono = time.monotonic()
            self._speed = factor

    def _now_locked(self) -> datetime:
        elapsed = (time.monotonic() - self._mono) * self._speed
        return self._base + timedelta(seconds=elapsed)
