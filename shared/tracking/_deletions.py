"""Row deletions sent up to 100 to an entity group transaction, each item's rows all or none.

An item is one record (or export record) with the rows that go with it: deleted in one
transaction of their partition, no index row is ever left pointing at a deleted record,
whatever line a run dies on. The item's own row goes only if unchanged since it was read (its
ETag): a record written meanwhile (resubmitted, say) is left for the next run to judge. A
companion row already gone (404) is dropped from the transaction, which is sent again; an
item whose own row is gone (a run before this one took it, or this one's answer was lost and
the transaction sent again) is dropped whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.data.tables import TableTransactionError

from ._schedule import BATCH_SIZE
from ._table import Operation, StatusTable
from ._writes import status_of

__all__ = ["Deletions", "Doomed"]

_ATTEMPTS = 3


@dataclass(frozen=True)
class Doomed:
    """One item to delete: its own row's operation first (conditional on its ETag), then the
    operations on the rows that go with it."""

    key: str
    operations: tuple[Operation, ...]


class Deletions:
    """Sends the deletions of items in transactions of up to :data:`BATCH_SIZE` operations.

    :param table: the partition the items live in.
    :keyword rows_per_second: the pace the deletions keep at most (None: as fast as they go),
        so that the partition's other traffic keeps its share of the partition's throughput.
    :keyword busy_share: the share of the time the deletions keep a transaction in flight at
        most (None: no bound): after a transaction that took ``t``, a pause of
        ``t * (1 / busy_share - 1)``. A store that slows down (busy, or slow with a large
        partition) slows the deletions with it, where a fixed pace would take it all.
    :keyword sleep: how the pace waits (tests pass their own).
    """

    def __init__(
        self,
        table: StatusTable,
        *,
        rows_per_second: float | None = None,
        busy_share: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table
        self._rate = rows_per_second
        self._share = busy_share
        self._sleep = sleep

    def delete(self, items: Iterable[Doomed], *, deadline: float) -> int:
        """Delete ``items`` in batches until they end or ``deadline`` (``time.monotonic()``)
        passes; the rows deleted."""
        started = time.monotonic()
        deleted = 0
        batch: list[Doomed] = []
        size = 0
        for item in items:
            if size + len(item.operations) > BATCH_SIZE:
                sent = time.monotonic()
                deleted += self._send(batch)
                batch, size = [], 0
                self._pace(deleted, started, time.monotonic() - sent, deadline)
                if time.monotonic() > deadline:
                    return deleted
            batch.append(item)
            size += len(item.operations)
        return deleted + self._send(batch)

    def _send(self, batch: list[Doomed]) -> int:
        pending = {item.key: list(item.operations) for item in batch}
        uncertain = 0
        while pending:
            flat = [(key, op) for key, ops in pending.items() for op in ops]
            try:
                self._table.transact([op for _, op in flat])
            except (ServiceRequestError, ServiceResponseError):
                # Sent again: what landed meets 404 on its own row and is dropped.
                uncertain += 1
                if uncertain == _ATTEMPTS:
                    raise
                continue
            except TableTransactionError as exc:
                key, operation = flat[exc.index]
                status = status_of(exc)
                own_row = operation is pending[key][0]
                if status == 412 or (status == 404 and own_row):
                    del pending[key]
                elif status == 404:
                    pending[key].remove(operation)
                else:
                    raise
                continue
            return sum(1 for _, op in flat if op[0] == "delete")
        return 0

    def _pace(self, deleted: int, started: float, took: float, deadline: float) -> None:
        pause = 0.0
        if self._rate is not None:
            pause = deleted / self._rate - (time.monotonic() - started)
        if self._share is not None:
            pause = max(pause, took * (1 / self._share - 1))
        if pause > 0:
            self._sleep(min(pause, max(0.0, deadline - time.monotonic())))
