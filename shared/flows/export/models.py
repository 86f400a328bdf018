"""The settings of an export tick, with the counts of what it did."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from azure.storage.blob import BlobClient

from shared.clients.storage.blocks import BlockWriter
from shared.config import Settings
from shared.zips import ZipLimits

__all__ = ["ExportPolicy", "ExportTickResult"]


@dataclass(frozen=True)
class ExportPolicy:
    """How a tick runs.

    :param lease: how long a route's lease lasts (the tick's budget plus a download in flight).
    :param time_budget: no new message is dequeued after this.
    :param block_size: bytes per staged block.
    :param blocks_in_flight: blocks staged at once while the download goes on.
    :param max_attempts: tries of one message (one per time F&O offers it) before it is given
        up (``EXPORT_MAX_ATTEMPTS``).
    :param zip_limits: what an unzip route's package may hold (the ``ZIP_*`` settings).
    """

    lease: timedelta = timedelta(minutes=10)
    time_budget: timedelta = timedelta(minutes=4)
    block_size: int = 4 * 1024 * 1024
    blocks_in_flight: int = 4
    max_attempts: int = Settings.export_max_attempts
    zip_limits: ZipLimits = field(default_factory=ZipLimits)

    def block_writer(self, blob: BlobClient) -> BlockWriter:
        """A writer of ``blob`` with this policy's block size and blocks in flight."""
        return BlockWriter(blob, block_size=self.block_size, in_flight=self.blocks_in_flight)


@dataclass
class ExportTickResult:
    """What one tick did, per outcome (counts of messages): each message dequeued is counted
    once, ``acked`` or ``failed`` (not written, not acked, or given up), unless it was left
    to another writer."""

    routes: int = 0
    skipped_leased: int = 0
    dequeued: int = 0
    written: int = 0
    acked: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
