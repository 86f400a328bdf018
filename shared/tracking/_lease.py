"""A named lease row: one holder at a time of something, across instances sharing the table.

Every lease of the app is one of these rows (``~lease-<name>`` in the partition of its
table), read and written the same way:

- ``poller``: one poll tick at a time walks the schedule; the row also keeps the watermark of
  the last tick that polled everything due;
- ``package-import``: F&O fails ImportFromPackage calls made in parallel, so every instance
  takes it before the call;
- each export route's name (in the exports partition): one tick at a time per route;
- ``retention``: one retention run at a time; the row also keeps the oldest record kept as of
  the last run (its watermark).

The row is written with its ETag: of two instances taking it at once, one wins (the other
meets 409 or 412 and is told the lease is held). A write whose answer was lost is recognised
as ours by its ``write_id`` (:mod:`._writes`), never taken for another holder's. A holder that
dies keeps the lease only until ``until``; a package import whose call timed out keeps it too
(F&O may still be working on that call), so the next import waits out the same bound. Work
that may outlast its lease (a package export's download) keeps it with :class:`LeaseKeeper`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError

from shared.clients.storage import storage_reason
from shared.errors import AppError

from ._keys import lease_key
from ._model import ConcurrencyError, utcnow
from ._properties import finish, parse_time
from ._table import StatusTable
from ._writes import insert_own, replace_own

__all__ = [
    "IMPORT_LEASE",
    "LEASE_MARGIN",
    "POLL_LEASE",
    "RETENTION_LEASE",
    "Lease",
    "LeaseHeld",
    "LeaseHeldError",
    "LeaseKeeper",
    "LeaseLostError",
    "lease_for_call",
]

IMPORT_LEASE = "package-import"
"""The name of the package-import lease (row ``~lease-package-import`` of the files)."""
POLL_LEASE = "poller"
"""The name of the poll lease (row ``~lease-poller`` of the files)."""
RETENTION_LEASE = "retention"
"""The name of the retention lease (row ``~lease-retention`` of the files)."""

_LOGGER = logging.getLogger(__name__)
LEASE_MARGIN = timedelta(seconds=30)
"""What a lease covering an outbound call adds to the call's read timeout."""


def lease_for_call(call_timeout: timedelta) -> timedelta:
    """How long a lease must outlast the start of a call that may take ``call_timeout``: the
    timeout plus :data:`LEASE_MARGIN` (a timed-out call keeps the lease that long)."""
    return call_timeout + LEASE_MARGIN


class LeaseHeldError(AppError):
    """Another holder's lease runs; the work waits its turn (the text says whose)."""


class LeaseLostError(ConcurrencyError):
    """The lease ran out and another holder took it: the work is left to that holder."""


@dataclass(frozen=True)
class LeaseHeld:
    """The right to act as ``name``'s one holder until ``until``."""

    name: str
    holder: str
    until: datetime
    watermark: datetime | None = None
    """The poll lease's: start of the last tick that polled everything due; the retention
    lease's: when the oldest record kept was modified, as of the last run. None before the
    first (and for every other lease)."""
    etag: str = field(default="", compare=False, repr=False)


class Lease:
    """The lease row ``~lease-<name>`` in the partition of ``table``.

    :param table: the status table's partition the row lives in.
    :param name: what the lease is of (``poller``, ``package-import``, an export route...).
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self, table: StatusTable, name: str, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._table = table
        self._name = name
        self._clock = clock

    @property
    def name(self) -> str:
        """What the lease is of."""
        return self._name

    def acquire(self, holder: str, *, until: datetime) -> LeaseHeld | None:
        """Take the lease until ``until``, one try; None while a lease (any holder's) runs.

        The row's watermark is kept, and handed to the new holder.
        """
        current = self._table.get(lease_key(self._name))
        if current is None:
            watermark = None
            written = insert_own(self._table, self._entity(holder, until, None))
        elif self._running(current):
            return None
        else:
            watermark = parse_time(current.get("watermark"))
            written = replace_own(
                self._table,
                self._entity(holder, until, watermark),
                etag=current.metadata["etag"],
            )
        if not written.ours:
            return None
        return LeaseHeld(self._name, holder, until, watermark, written.etag)

    def release(self, lease: LeaseHeld, *, watermark: datetime | None = None) -> None:
        """End the lease now, recording ``watermark`` (None keeps the lease's).

        A lease another holder took meanwhile (this one overran) is left alone.
        """
        entity = self._entity(lease.holder, self._clock(), watermark or lease.watermark)
        replace_own(self._table, entity, etag=lease.etag)

    def renew(self, lease: LeaseHeld, *, until: datetime) -> LeaseHeld | None:
        """Extend ``lease`` to ``until``, conditional on its ETag; None when another holder
        took the lease meanwhile (this one ran out).

        :raises AzureError: storage failed (the lease still runs until its ``until``).
        """
        entity = self._entity(lease.holder, until, lease.watermark)
        written = replace_own(self._table, entity, etag=lease.etag)
        if not written.ours:
            return None
        return LeaseHeld(self._name, lease.holder, until, lease.watermark, written.etag)

    def holder(self) -> str | None:
        """Who holds the lease now, None when nobody does."""
        row = self._table.get(lease_key(self._name))
        if row is None or not self._running(row):
            return None
        return str(row.get("holder"))

    def last(self) -> LeaseHeld | None:
        """The lease as last written, running or ended (its ``until`` is then when it ended);
        None before the first."""
        row = self._table.get(lease_key(self._name))
        if row is None:
            return None
        return LeaseHeld(
            self._name,
            str(row.get("holder")),
            parse_time(row.get("until")) or self._clock(),
            parse_time(row.get("watermark")),
            row.metadata["etag"],
        )

    def _running(self, row: Any) -> bool:
        return (parse_time(row.get("until")) or self._clock()) > self._clock()

    def _entity(self, holder: str, until: datetime, watermark: datetime | None) -> dict[str, Any]:
        return finish(
            {
                "PartitionKey": self._table.partition,
                "RowKey": lease_key(self._name),
                "holder": holder,
                "until": until.astimezone(UTC),
                "watermark": watermark and watermark.astimezone(UTC),
            }
        )


class LeaseKeeper:
    """Keeps a held lease running through work that may outlast it (a long download).

    :meth:`keep`, called as the work goes on, renews the lease for another ``length`` once
    less than half of it is left. Cheap to call often: it writes only when a renewal is due.

    :param lease: the lease row.
    :param held: the lease as taken.
    :keyword length: how long each renewal lasts.
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self,
        lease: Lease,
        held: LeaseHeld,
        *,
        length: timedelta,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._lease = lease
        self._held = held
        self._length = length
        self._clock = clock

    @property
    def held(self) -> LeaseHeld:
        """The lease as last written (release this one: its ETag is the row's)."""
        return self._held

    def keep(self) -> None:
        """Renew the lease when less than half of ``length`` is left; a storage failure is
        logged and the renewal tried again at the next call (the lease runs until its end).

        :raises LeaseLostError: another holder took the lease: stop, the work is theirs.
        """
        now = self._clock()
        if self._held.until - now > self._length / 2:
            return
        try:
            renewed = self._lease.renew(self._held, until=now + self._length)
        except AzureError as exc:
            _LOGGER.warning("lease %s not renewed now: %s", self._lease.name, storage_reason(exc))
            return
        if renewed is None:
            raise LeaseLostError(
                f"the lease {self._lease.name} ran out and another holder took it; "
                "the work is left to it"
            )
        self._held = renewed
