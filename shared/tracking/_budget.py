"""The F&O call budget every instance of the app shares, in the status table's ``budget`` rows.

Two kinds of row, read together by one query of the partition:

- ``throttle``: until when F&O throttles the app (``until``, the ``retry_after`` that asked for
  it, the instance that got it). Written only on a 429, conditional on its ETag, and only when
  it ends later than what it holds: the largest Retry-After wins.
- ``instance-<id>``: one per live instance (worker process), its last heartbeat (``seen``)
  and its ``demand`` (the most permits it wanted at once since the beat before). An instance
  whose heartbeat is older than three heartbeat intervals is gone (a crash included): its
  share goes back to the others, so nothing it held leaks for longer.

Each instance takes its part of the app's concurrency by demand (:func:`split_concurrency`;
a status call counts twice, so the instance that polls is served first),
and the same fraction of the rate, and enforces it locally
(:class:`shared.clients.d365.LocalBudget`). The table is read at most once per ``refresh``
and written once per ``heartbeat`` (sooner when the instance's demand has grown by half), and only
while the instance calls F&O. When
the table cannot be read, the instance keeps the share it last had (at first, that of
:data:`FALLBACK_INSTANCES` instances), logs it, and goes on: the budget never stops a call
for its own failure. See docs/architecture.md, "One F&O budget".
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError
from azure.data.tables import TableClient

from shared.clients.d365 import CallPriority, LocalBudget

from ._model import TrackingStoreError, utcnow
from ._properties import finish, parse_time
from ._table import StatusTable

__all__ = [
    "BUDGET_PARTITION",
    "FALLBACK_INSTANCES",
    "BudgetLimits",
    "SharedBudget",
    "split_concurrency",
]

_LOGGER = logging.getLogger(__name__)

BUDGET_PARTITION = "budget"
"""The partition of the status table that holds the budget's rows."""
FALLBACK_INSTANCES = 4
"""How many instances an instance assumes before it has read the table once."""
_THROTTLE_KEY = "throttle"
_INSTANCE_PREFIX = "instance-"
# A heartbeat older than this many intervals is an instance gone.
_LIVE_INTERVALS = 3
# Rows of instances gone this long are deleted by whoever sees them (a few per refresh).
_FORGET_AFTER = timedelta(minutes=10)
_DELETES_PER_REFRESH = 5
# After a failed read of the table, the next try waits this long (the share stays).
_RETRY_UNAVAILABLE = 30.0
_WRITE_TRIES = 3
_FAILURES = (AzureError, TrackingStoreError)


@dataclass(frozen=True)
class BudgetLimits:
    """The whole app's limits, and how often an instance looks at the table."""

    concurrency: int
    requests_per_5min: int
    refresh: timedelta = timedelta(seconds=3)
    heartbeat: timedelta = timedelta(seconds=15)


@dataclass(frozen=True)
class _View:
    """What one read of the partition said."""

    live: tuple[tuple[str, int], ...]
    """Each live instance and its demand, sorted by id."""
    throttled_until: datetime | None
    gone: tuple[Any, ...]


class SharedBudget:
    """An instance's share of the app's F&O budget (a :class:`shared.clients.d365.CallBudget`).

    :param table: the status table's client.
    :param limits: the whole app's limits.
    :keyword instance_id: this instance's name in the table (default: a new one).
    :keyword clock: UTC time, shared by every instance (heartbeats, throttled-until).
    :keyword monotonic: this process's clock for waits.
    """

    def __init__(
        self,
        table: TableClient,
        limits: BudgetLimits,
        *,
        instance_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = StatusTable(table, partition=BUDGET_PARTITION)
        self._limits = limits
        self.instance_id = instance_id or f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._clock = clock
        self._monotonic = monotonic
        self._local = LocalBudget(
            max(1, limits.concurrency // FALLBACK_INSTANCES),
            limits.requests_per_5min / FALLBACK_INSTANCES,
            clock=monotonic,
        )
        self._refreshing = threading.Lock()
        self._counts_lock = threading.Lock()
        self._next_refresh = 0.0
        self._next_heartbeat = 0.0
        self._wanting = 0
        self._held = 0
        self._peak = 0
        self._published = 0
        self._live = 0
        self._available = True
        self.table_calls = 0
        """Requests this budget sent to the table (a measure of what it costs)."""
        self.permits = 0
        """Permits granted (the F&O calls it let out)."""

    @property
    def local(self) -> LocalBudget:
        """This instance's share, as enforced now."""
        return self._local

    @property
    def live_instances(self) -> int:
        """Instances counted at the last read of the table (0 before it)."""
        return self._live

    # -- CallBudget ---------------------------------------------------------------------------

    def acquire(self, priority: CallPriority, *, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a permit, looking at the table again every
        ``refresh`` meanwhile (a share can grow, another instance can be throttled)."""
        deadline = self._monotonic() + max(0.0, timeout)
        step = self._limits.refresh.total_seconds()
        weight = _weight(priority)
        with self._counts_lock:
            self._wanting += weight
            self._peak = max(self._peak, self._wanting + self._held)
        try:
            while True:
                self._refresh_if_due()
                left = deadline - self._monotonic()
                throttled = self._local.retry_after()
                if throttled > left:
                    return False
                if throttled > 0:
                    time.sleep(min(throttled, step))
                    continue
                if self._local.acquire(priority, timeout=max(0.0, min(left, step))):
                    with self._counts_lock:
                        self.permits += 1
                        self._held += weight
                    return True
                if deadline <= self._monotonic():
                    return False
        finally:
            with self._counts_lock:
                self._wanting -= weight

    def release(self, priority: CallPriority) -> None:
        """Give back a permit."""
        with self._counts_lock:
            self._held = max(0, self._held - _weight(priority))
        self._local.release(priority)

    def throttled(self, retry_after: float) -> None:
        """F&O answered 429: this instance stops at once, the others at their next read."""
        self._local.throttled(retry_after)
        until = self._clock() + timedelta(seconds=retry_after)
        _LOGGER.warning(
            "f&o throttled the app: every instance waits until %s (Retry-After %.0f s) instance=%s",
            until.isoformat(),
            retry_after,
            self.instance_id,
        )
        try:
            self._publish(until, retry_after)
        except _FAILURES as exc:
            self._unavailable(exc)

    def retry_after(self) -> float:
        """Seconds until calls may be made again (0 when not throttled)."""
        return self._local.retry_after()

    # -- the table ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the partition now (heartbeat first when due) and take the share it gives."""
        now_mono = self._monotonic()
        try:
            # Due, or this instance wants half as much again as the others were told.
            if now_mono >= self._next_heartbeat or 2 * self._peak > 3 * self._published:
                self._heartbeat()
                self._next_heartbeat = now_mono + self._limits.heartbeat.total_seconds()
            view = self._read()
        except _FAILURES as exc:
            self._next_refresh = now_mono + _RETRY_UNAVAILABLE
            self._unavailable(exc)
            return
        self._next_refresh = now_mono + self._limits.refresh.total_seconds()
        if not self._available:
            self._available = True
            _LOGGER.warning("f&o budget table readable again instance=%s", self.instance_id)
        self._apply(view)
        self._forget(view.gone)

    def _refresh_if_due(self) -> None:
        if self._monotonic() < self._next_refresh:
            return
        # One thread reads; the others go on with the share as it is.
        if not self._refreshing.acquire(blocking=False):
            return
        try:
            if self._monotonic() >= self._next_refresh:
                self.refresh()
        finally:
            self._refreshing.release()

    def _heartbeat(self) -> None:
        """Write this instance's row: when it was seen, and its demand (the most permits it
        wanted at once since the last beat, a status call's counting twice: polls first)."""
        with self._counts_lock:
            demand = self._peak
            self._peak = self._wanting + self._held
        self._count()
        self._table.upsert(
            finish(
                {
                    "PartitionKey": BUDGET_PARTITION,
                    "RowKey": _INSTANCE_PREFIX + self.instance_id,
                    "seen": self._clock(),
                    "demand": demand,
                }
            )
        )
        self._published = demand

    def _read(self) -> _View:
        self._count()
        now = self._clock()
        live_after = now - self._limits.heartbeat * _LIVE_INTERVALS
        live, gone, until = {self.instance_id: self._published}, [], None
        for row in self._table.query([], {}):
            key = str(row.get("RowKey", ""))
            if key == _THROTTLE_KEY:
                until = parse_time(row.get("until"))
            elif key.startswith(_INSTANCE_PREFIX):
                seen = parse_time(row.get("seen")) or now
                if seen > live_after:
                    name = key.removeprefix(_INSTANCE_PREFIX)
                    live[name] = int(row.get("demand") or 0)
                elif seen < now - _FORGET_AFTER:
                    gone.append(row)
        return _View(tuple(sorted(live.items())), until, tuple(gone[:_DELETES_PER_REFRESH]))

    def _apply(self, view: _View) -> None:
        """Take this instance's share (:func:`split_concurrency`) of the concurrency, and the same
        fraction of the rate."""
        total = self._limits.concurrency
        concurrency = split_concurrency(total, view.live)[self.instance_id]
        changed = len(view.live) != self._live
        self._live = len(view.live)
        self._local.set_share(concurrency, self._limits.requests_per_5min * concurrency / total)
        if view.throttled_until is not None:
            left = (view.throttled_until - self._clock()).total_seconds()
            if left > 0:
                self._local.throttle_until(self._monotonic() + left)
        if changed:
            _LOGGER.info(
                "f&o budget share instance=%s live_instances=%d concurrency=%d "
                "requests_per_5min=%.0f permits=%d table_calls=%d",
                self.instance_id,
                self._live,
                concurrency,
                self._local.requests_per_5min,
                self.permits,
                self.table_calls,
            )

    def _publish(self, until: datetime, retry_after: float) -> None:
        """Write ``until`` to the throttle row unless it holds a later end (ETag-conditional;
        a lost answer is read back as a row that already holds it)."""
        entity = finish(
            {
                "PartitionKey": BUDGET_PARTITION,
                "RowKey": _THROTTLE_KEY,
                "until": until,
                "retry_after": float(retry_after),
                "instance": self.instance_id,
            }
        )
        for _ in range(_WRITE_TRIES):
            self._count()
            row = self._table.get(_THROTTLE_KEY)
            if row is not None and (parse_time(row.get("until")) or until) >= until:
                return
            self._count()
            try:
                if row is None:
                    self._table.insert(entity)
                else:
                    self._table.replace(entity, etag=row.metadata["etag"])
            except (ResourceExistsError, ResourceModifiedError):
                continue
            return

    def _forget(self, rows: tuple[Any, ...]) -> None:
        for row in rows:
            self._count()
            try:
                self._table.delete(str(row["RowKey"]), etag=row.metadata["etag"])
            except _FAILURES:
                return

    def _count(self) -> None:
        with self._counts_lock:
            self.table_calls += 1

    def _unavailable(self, exc: Exception) -> None:
        if self._available:
            self._available = False
            _LOGGER.warning(
                "f&o budget table unavailable, going on with this instance's last share "
                "(concurrency=%d requests_per_5min=%.0f) instance=%s: %s",
                self._local.concurrency,
                self._local.requests_per_5min,
                self.instance_id,
                type(exc).__name__,
            )


def split_concurrency(total: int, demands: Sequence[tuple[str, int]]) -> dict[str, int]:
    """The concurrency of each instance: ``total`` in proportion to the demands (the largest
    remainders, then the first by id, get the odd slots), what no one wants evenly. Every
    instance computes the same split from the same rows; it sums to ``total``.

    :param demands: (instance id, the most permits it wanted at once lately), sorted by id.
    """
    ids = [name for name, _ in demands]
    want = dict(demands)
    wanted = sum(want.values())
    give = min(total, wanted)
    share = {name: give * want[name] // wanted if wanted else 0 for name in ids}
    left = give - sum(share.values())
    remainders = sorted(ids, key=lambda name: (-(give * want[name] % max(1, wanted)), name))
    for name in remainders[:left]:
        share[name] += 1
    base, rest = divmod(total - give, len(ids))
    for rank, name in enumerate(ids):
        share[name] += base + (1 if rank < rest else 0)
    return share


def _weight(priority: CallPriority) -> int:
    return 2 if priority is CallPriority.STATUS else 1
