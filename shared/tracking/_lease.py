"""A named lease row: one holder at a time of something, across instances sharing the table.

Used for the package-import lease (F&O fails ImportFromPackage calls made in parallel, so
every instance takes it before the call) and for each export route's tick. The row is
written with its ETag: of two instances taking it at once, one wins (the other meets 409 or
412 and is told the lease is held). A write whose answer was lost is recognised as ours by
its ``write_id`` (:mod:`._writes`), never taken for another holder's. A holder that dies
keeps the lease only until ``until``; a package import whose call timed out keeps it too
(F&O may still be working on that call), so the next import waits out the same bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._codec import lease_entity, lease_key, parse_time
from ._model import utcnow
from ._table import StatusTable
from ._writes import insert_own, replace_own

__all__ = ["IMPORT_LEASE", "Lease", "LeaseHeld"]

IMPORT_LEASE = "package-import"
"""The name of the package-import lease (row ``~lease-package-import`` of the files)."""


@dataclass(frozen=True)
class LeaseHeld:
    """The right to act as ``name``'s one holder until ``until``."""

    name: str
    holder: str
    until: datetime
    etag: str = field(compare=False, repr=False)


class Lease:
    """The lease row ``~lease-<name>`` in the partition of ``table``.

    :param table: the status table's partition the row lives in.
    :param name: what the lease is of (``package-import``, an export route's name...).
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self, table: StatusTable, name: str, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._table = table
        self._name = name
        self._clock = clock

    def acquire(self, holder: str, *, until: datetime) -> LeaseHeld | None:
        """Take the lease until ``until``; None while another holder's lease runs."""
        entity = self._entity(holder, until)
        current = self._table.get(entity["RowKey"])
        if current is None:
            written = insert_own(self._table, entity)
        elif self._running(current):
            return None
        else:
            written = replace_own(self._table, entity, etag=current.metadata["etag"])
        return LeaseHeld(self._name, holder, until, written.etag) if written.ours else None

    def release(self, lease: LeaseHeld) -> None:
        """End the lease now, unless another holder took it meanwhile."""
        replace_own(self._table, self._entity(lease.holder, self._clock()), etag=lease.etag)

    def holder(self) -> str | None:
        """Who holds the lease now, None when nobody does."""
        row = self._table.get(lease_key(self._name))
        if row is None or not self._running(row):
            return None
        return str(row.get("holder"))

    def _running(self, row: Any) -> bool:
        return (parse_time(row.get("until")) or self._clock()) > self._clock()

    def _entity(self, holder: str, until: datetime) -> dict[str, Any]:
        return lease_entity(self._table.partition, self._name, holder, until)
