"""The context-manager protocol of the local services (Azurite, the emulator, the host)."""

from __future__ import annotations

from types import TracebackType
from typing import Self


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
