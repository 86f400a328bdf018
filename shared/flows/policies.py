"""The import flows' policies (timing, limits, back-off), defaulting to the settings'."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from shared.clients.d365 import BLOCK_SIZE, MAX_BLOCKS, RetryPolicy
from shared.config import D365Settings, Settings
from shared.tracking import Backoff, lease_for_call
from shared.zips import ZipLimits

__all__ = [
    "MIB",
    "ONE_ATTEMPT",
    "PACKAGE_MAX_BYTES",
    "EnqueuePolicy",
    "PackagePolicy",
    "PollPolicy",
]

MIB = 1024 * 1024
"""One mebibyte: the unit of the flows' byte limits and of their texts."""
_LEASE_SPAN = lease_for_call(D365Settings.http_timeout)
# One attempt per call that must be bracketed by the record's writes (a send, an import):
# a worker that dies while waiting to retry never leaves "outcome unknown".
ONE_ATTEMPT = RetryPolicy(max_attempts=1)
PACKAGE_MAX_BYTES = MAX_BLOCKS * BLOCK_SIZE - MIB
"""The largest file the package path takes: the package goes up in 4 MiB blocks, and a block
blob holds at most 50,000 (about 195 GiB); 1 MiB is left for what a template adds (its
Manifest.xml, PackageHeader.xml and the zip's headers)."""


def _default_backoff() -> Backoff:
    """The poll and retry back-off of the default settings."""
    return Backoff(Settings.poll_interval_min, Settings.poll_interval_max)


@dataclass(frozen=True)
class EnqueuePolicy:
    """Timing and limits of the enqueue step.

    :ivar claim_lease: how long a worker owns a claimed file before recovery may judge it.
    :ivar answer_timeout: the longest wait for F&O's answer once the upload ended (its read
        timeout): an upload must end this long before the lease does.
    :ivar retry: back-off between sends F&O did not take.
    :ivar max_pending_age: a file not taken by F&O by then ends ``EnqueueFailed``.
    :ivar order_settle: a file of an ordered route waits this long after its blob was created
        before it may be sent (``ORDER_SETTLE``).
    :ivar package_max_bytes: the largest file of the package path (a package route without
        ``max_bytes``, or an ``on_too_large`` file); see :data:`PACKAGE_MAX_BYTES`.

    The defaults are the settings' (:class:`shared.config.Settings`), defined there once.
    """

    claim_lease: timedelta = Settings.claim_lease
    answer_timeout: timedelta = D365Settings.http_timeout
    first_poll_delay: timedelta = Settings.poll_interval_min
    default_max_bytes: int = Settings.max_file_bytes
    retry: Backoff = field(default_factory=_default_backoff)
    max_pending_age: timedelta = Settings.max_pending_age
    package_max_bytes: int = PACKAGE_MAX_BYTES
    order_settle: timedelta = Settings.order_settle


@dataclass(frozen=True)
class PackagePolicy:
    """Timing of the package path.

    :ivar lease_span: how long the import lease is held for one call: the call's read timeout
        plus a margin (a timed-out call keeps it that long).
    :ivar error_file_tries: reads of GetImportTargetErrorKeysFileUrl while it is "still
        generating", ``error_file_pause`` apart.
    :ivar poll_tick_budget: the poller's ``POLL_TICK_BUDGET``, which bounds the error files
        (:attr:`error_files_time`).
    :ivar zip_limits: what a template or an uploaded package may hold (the ``ZIP_*`` settings).
    """

    lease_span: timedelta = _LEASE_SPAN
    error_file_tries: int = 10
    error_file_pause: float = 1.0
    first_poll_delay: timedelta = Settings.poll_interval_min
    zip_limits: ZipLimits = field(default_factory=ZipLimits)
    poll_tick_budget: timedelta = Settings.poll_tick_budget

    @property
    def error_files_time(self) -> timedelta:
        """The longest one follow spends fetching error files: a quarter of the tick budget.
        F&O takes 2 or more calls per manifest entity, so thousands of entities would outlive
        the poll's lease and ``functionTimeout``, and the final write would never happen; the
        entities not reached are noted in ``last_error`` instead."""
        return self.poll_tick_budget / 4


@dataclass(frozen=True)
class PollPolicy:
    """Concurrency, budget and back-off of the poller.

    :ivar archive_attempts: archive tries before the file is left where it is, with the reason.
    """

    concurrency: int = Settings.poll_concurrency
    tick_budget: timedelta = Settings.poll_tick_budget
    backoff: Backoff = field(default_factory=_default_backoff)
    max_pending_age: timedelta = Settings.max_pending_age
    lease_margin: timedelta = timedelta(minutes=2)
    lease_span: timedelta = timedelta(seconds=40)
    """How long the poll lease is held at a time: a dead tick's lease ends within this."""
    lease_renew_every: timedelta = timedelta(seconds=10)
    """How often a live tick renews it (never past its budget plus ``lease_margin``)."""
    archive_attempts: int = 8
