"""The status table's client behind one error translator.

Every SDK call of the status model goes through :class:`StatusTable`, so a missing table is
reported the same way everywhere, and the calls are easy to count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.clients.storage import entities, queries, transactions

from ._keys import PARTITION
from ._model import TrackingStoreError

__all__ = ["Operation", "StatusTable", "if_match"]

_T = TypeVar("_T")
Operation = tuple[str, Mapping[str, Any], dict[str, Any]]
"""One operation of an entity group transaction, in the SDK's tuple form."""


def if_match(etag: str) -> dict[str, Any]:
    """Keyword arguments of a write conditional on ``etag``."""
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


class StatusTable:
    """One partition of the status model in one table.

    :param client: the status table's client.
    :keyword partition: the partition (the files' by default; exports keep their own).
    """

    def __init__(self, client: TableClient, *, partition: str = PARTITION) -> None:
        self._client = client
        self._partition = partition

    @property
    def name(self) -> str:
        """Name of the status table."""
        return self._client.table_name

    @property
    def partition(self) -> str:
        """The partition this client reads and writes."""
        return self._partition

    def create(self) -> None:
        """Create the table when missing; a clear error when it cannot be created."""
        try:
            self._client.create_table()
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:
            raise TrackingStoreError(
                f"status table {self.name!r} is missing and could not be created "
                f"({exc.status_code} {exc.reason}); create it, or grant the app's identity "
                "'Storage Table Data Contributor' on the storage account"
            ) from exc

    def get(self, row_key: str) -> Any | None:
        """The row ``row_key``, or None."""
        try:
            return self._call(self._client.get_entity, self._partition, row_key)
        except ResourceNotFoundError:
            return None

    def query(
        self,
        clauses: Iterable[str],
        parameters: Mapping[str, Any],
        *,
        select: list[str] | None = None,
        per_page: int = 1000,
    ) -> Iterator[Any]:
        """Rows of the partition matching every clause (parameters, never formatting)."""
        rows = queries.query(
            self._client,
            " and ".join(["PartitionKey eq @pk", *clauses]),
            parameters={"pk": self._partition, **parameters},
            select=select,
            results_per_page=per_page,
        )
        return self._translated(rows)

    def insert(self, entity: Mapping[str, Any]) -> str:
        """Create a row; ResourceExistsError when it exists. Returns the new ETag."""
        return self._call(self._client.create_entity, entity)["etag"]

    def replace(self, entity: Mapping[str, Any], *, etag: str) -> str:
        """Replace a row if unchanged since ``etag``; ResourceModifiedError otherwise."""
        return self._call(entities.update, self._client, entity, mode=UpdateMode.REPLACE, etag=etag)

    def upsert(self, entity: Mapping[str, Any]) -> str:
        """Create or replace a row whatever it holds (a row one writer alone writes)."""
        return self._call(self._client.upsert_entity, entity, mode=UpdateMode.REPLACE)["etag"]

    def merge(self, entity: Mapping[str, Any], *, etag: str) -> str:
        """Merge fields into a row if unchanged since ``etag``."""
        return self._call(entities.update, self._client, entity, mode=UpdateMode.MERGE, etag=etag)

    def delete(self, row_key: str, *, etag: str | None = None) -> None:
        """Delete a row (if unchanged since ``etag`` when given); a missing row is fine."""
        kwargs = if_match(etag) if etag else {}
        with contextlib.suppress(ResourceNotFoundError):
            self._call(self._client.delete_entity, self._partition, row_key, **kwargs)

    def transact(self, operations: list[Operation]) -> list[str]:
        """Apply operations on the partition all or none; the new ETag of each.

        :raises azure.data.tables.TableTransactionError: one operation failed (its ``index``).
        """
        return self._call(transactions.submit, self._client, operations)

    def _call(self, method: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        try:
            return method(*args, **kwargs)
        except ResourceNotFoundError as exc:
            self._raise_if_missing_table(exc)
            raise

    def _translated(self, rows: Iterable[Any]) -> Iterator[Any]:
        # Query pages are fetched lazily: translate the errors of later pages too.
        try:
            yield from rows
        except ResourceNotFoundError as exc:
            self._raise_if_missing_table(exc)
            raise

    def _raise_if_missing_table(self, exc: ResourceNotFoundError) -> None:
        if getattr(exc, "error_code", None) == "TableNotFound":
            raise TrackingStoreError(
                f"status table {self.name!r} does not exist; it is created on the first run "
                f"(STATUS_TABLE names it), or create it with `az storage table create --name "
                f"{self.name}`"
            ) from exc
