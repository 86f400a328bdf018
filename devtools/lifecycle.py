"""The context-manager protocol of the local services (Azurite, the emulator, the host)."""

from __future__ import annotations

import signal
import time
from types import FrameType, TracebackType
from typing import Self

# How often the main thread wakes to run a signal handler another thread took the signal for.
_SIGNAL_STEP = 0.2


class Service:
    """Something started and stopped: ``with`` starts it and always stops it."""

    def start(self) -> None:
        """Start the service; return when it is ready."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the service (idempotent)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def wait_for_signals(*signals: signal.Signals) -> int:
    """Block the main thread until one of ``signals`` arrives; answer the exit status it
    asks for (128 + its number).

    The kernel hands a process's signal to any of its threads, and Python runs the handler
    only when the main thread next runs bytecode. A main thread blocked in a wait without a
    timeout then never runs it: a host process ignored SIGTERM and served on for minutes
    after its test. Waiting in short steps runs the handler within one step. The handlers
    found are put back on return, so a second signal during the shutdown acts as before.
    """
    received: list[int] = []

    def note(number: int, frame: FrameType | None) -> None:
        received.append(number)

    previous = {number: signal.signal(number, note) for number in signals}
    try:
        while not received:
            time.sleep(_SIGNAL_STEP)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 128 + received[0]
