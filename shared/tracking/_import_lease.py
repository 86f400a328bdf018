"""The package-import lease: at most one ImportFromPackage in flight per environment.

F&O fails ImportFromPackage calls made in parallel, so every instance sharing the status
table takes this row (written with its ETag) before the call. A holder that dies keeps it
only until ``until``; a holder whose call timed out keeps it too (F&O may still be working on
that call), so the next import waits out the same bound.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from ._codec import PARTITION, lease_key, parse_time
from ._model import utcnow
from ._table import StatusTable

__all__ = ["ImportLease", "ImportLeaseHeld"]

_NAME = "package-import"


@dataclass(frozen=True)
class ImportLeaseHeld:
    """The right to call ImportFromPackage until ``until``."""

    holder: str
    until: datetime
    etag: str = field(compare=False, repr=False)


class ImportLease:
    """The package-import lease row of one status table."""

    def __init__(self, table: StatusTable, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._table = table
        self._clock = clock

    def acquire(self, holder: str, *, until: datetime) -> ImportLeaseHeld | None:
        """Take the lease until ``until``; None while another holder's lease runs."""
        entity = {
            "PartitionKey": PARTITION,
            "RowKey": lease_key(_NAME),
            "holder": holder,
            "until": until.astimezone(UTC),
        }
        current = self._table.get(lease_key(_NAME))
        try:
            if current is None:
                etag = self._table.insert(entity)
            elif (parse_time(current.get("until")) or self._clock()) > self._clock():
                return None
            else:
                etag = self._table.replace(entity, etag=current.metadata["etag"])
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return None
        return ImportLeaseHeld(holder, until, etag)

    def release(self, lease: ImportLeaseHeld) -> None:
        """End the lease now, unless another holder took it meanwhile."""
        entity = {
            "PartitionKey": PARTITION,
            "RowKey": lease_key(_NAME),
            "holder": lease.holder,
            "until": self._clock().astimezone(UTC),
        }
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self._table.replace(entity, etag=lease.etag)

    def holder(self) -> str | None:
        """Who holds the lease now, None when nobody does."""
        row = self._table.get(lease_key(_NAME))
        if row is None or (parse_time(row.get("until")) or self._clock()) <= self._clock():
            return None
        return str(row.get("holder"))
