"""A download's destination that keeps the route's lease running while bytes arrive.

A package may take longer to download than the route's lease lasts (the tick's budget plus
one call): without renewal a second instance would take the lease and download it too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

__all__ = ["KeptWriter", "no_keep"]


def no_keep() -> None:
    """Nothing to keep running (a write outside any lease)."""


class KeptWriter:
    """Writes into ``destination``, calling ``keep`` before each write (it renews the lease
    when due, and raises when the lease was lost: the download stops there).

    :param destination: where the bytes go (a temporary file, a blob's staged blocks).
    :param keep: renews the lease when due (:meth:`shared.tracking.LeaseKeeper.keep`).
    """

    def __init__(self, destination: BinaryIO, keep: Callable[[], None]) -> None:
        self._destination = destination
        self._keep = keep

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Keep the lease, then write ``data``."""
        self._keep()
        return self._destination.write(data)

    def writable(self) -> bool:
        """Always True."""
        return True

    def seekable(self) -> bool:
        """As the destination is."""
        return self._destination.seekable()

    def tell(self) -> int:
        """The destination's position."""
        return self._destination.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move the destination's position (a retried download rewinds it)."""
        return self._destination.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        """Cut the destination at ``size`` (a retried download drops a partial read)."""
        return self._destination.truncate(size)
