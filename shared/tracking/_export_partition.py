"""What the two export stores share: the partition ``exports``, its overflow, its clock.

:class:`ExportStore` (recurring exports) and :class:`PackageExportStore` (package exports)
keep their records in the same partition, and a list of blobs too long for a row in the same
folder of the errors container, ``exports/<record key>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

from ._export_model import ExportRecord
from ._export_rows import EXPORTS_PARTITION
from ._model import ConcurrencyError, utcnow
from ._overflow import Overflow
from ._package_export_model import PackageExportRecord
from ._properties import EXPORT_BLOBS
from ._table import StatusTable
from ._writes import replace_own

__all__ = ["ExportPartition"]

_Record = TypeVar("_Record", ExportRecord, PackageExportRecord)


class ExportPartition:
    """The export records' partition of one status table.

    :param client: the status table's client (the table is the files' too).
    :keyword errors_container: where a list of blobs too long for a row is written.
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self,
        client: TableClient,
        *,
        errors_container: ContainerClient | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._table = StatusTable(client, partition=EXPORTS_PARTITION)
        self._overflow = Overflow(errors_container)
        self._clock = clock

    def list_blobs(self, record: ExportRecord | PackageExportRecord) -> tuple[str, ...]:
        """All blobs of a record (from the errors container when they did not fit the row)."""
        return self._overflow.read_list(record.blobs, record.blobs_blob)

    def _blobs_fields(self, key: str, blobs: Sequence[str]) -> dict[str, Any]:
        """The row's fields of ``blobs`` of the record ``key``: a list too long for the row
        goes to a blob first."""
        return self._overflow.list_fields(EXPORT_BLOBS, blobs, folder=f"exports/{key}")

    def _replaced(
        self,
        entity: dict[str, Any],
        *,
        etag: str,
        decode: Callable[[dict[str, Any]], _Record],
        what: str,
    ) -> _Record:
        """Write ``entity`` over the row read with ``etag``; the record written, with its new
        ETag.

        :param what: the record in the error's text (e.g. ``export record <id>``).
        :raises ConcurrencyError: another writer changed the row meanwhile.
        """
        written = replace_own(self._table, entity, etag=etag)
        if not written.ours:
            raise ConcurrencyError(f"{what} was changed by another writer")
        return replace(decode(entity), etag=written.etag)
