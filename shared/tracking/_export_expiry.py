"""Acknowledged export records past their retention, deleted with the purge row of their blobs.

An export record is expired once F&O will not offer its message again (``acked_at`` is set)
and it was acknowledged before the cut-off; one that is not acknowledged (given up, its ack
still failing) stays. Its row and the purge row of its list blob (a large unzip's list, in the
errors container) are one item of :class:`._deletions.Deletions`. The exported files are the
export container's: its lifecycle rule (``infra/app/storage.bicep``) deletes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

from ._deletions import Deletions, Doomed
from ._export_rows import EXPORTS_PARTITION, is_export_key
from ._purge import Purge, blob_folder, purge_operation
from ._table import Operation, StatusTable, if_match

__all__ = ["ExportRetention"]


class ExportRetention:
    """Deletes the expired export records of a status table.

    :param client: the status table's client.
    :keyword errors_container: where the records' list blobs are.
    :keyword rows_per_second: the pace of the deletions (see :class:`._deletions.Deletions`).
    :keyword busy_share: the share of the time they keep the store busy at most (same).
    """

    def __init__(
        self,
        client: TableClient,
        *,
        errors_container: ContainerClient | None = None,
        rows_per_second: float | None = None,
        busy_share: float | None = None,
    ) -> None:
        self._table = StatusTable(client, partition=EXPORTS_PARTITION)
        self._deletions = Deletions(
            self._table, rows_per_second=rows_per_second, busy_share=busy_share
        )
        self.purge = Purge(self._table, errors_container)

    def delete_older_than(self, cutoff: datetime, *, deadline: float) -> int:
        """Delete export records acknowledged before ``cutoff``, until ``deadline``
        (``time.monotonic()``); the rows deleted. Their list blobs wait for
        :meth:`Purge.finish`."""
        return self._deletions.delete(self._expired(cutoff), deadline=deadline)

    def _expired(self, cutoff: datetime) -> Iterator[Doomed]:
        # Keyed by message id, not by time: the service filters on acked_at (a typed time).
        rows = self._table.query(
            ["RowKey lt @leases", "acked_at le @cutoff"],
            {"leases": "~", "cutoff": cutoff.astimezone(UTC)},
            select=["RowKey", "acked_at", "blobs_blob"],
        )
        for row in rows:
            if is_export_key(row["RowKey"]):
                yield Doomed(row["RowKey"], _operations(row))


def _operations(row: Any) -> tuple[Operation, ...]:
    key = row["RowKey"]
    delete: Operation = (
        "delete",
        {"PartitionKey": EXPORTS_PARTITION, "RowKey": key},
        if_match(row.metadata["etag"]),
    )
    pointer = row.get("blobs_blob")
    purge = purge_operation(EXPORTS_PARTITION, key, [blob_folder(pointer)] if pointer else [])
    return (delete, purge) if purge else (delete,)
