"""The blob folders of deleted rows, kept in a purge row until every blob in them is gone.

A record whose row names blobs of the errors container (errors, lists, F&O's error files) is
deleted in one transaction with an insert of its purge row ``~p-<id>``, which names the
blob folders (``<record id>/``, ``<message id>/``). The blobs go after the transaction, then
the purge row: a run that dies in between leaves the purge row, and the next run finishes
it. No row ever points at a deleted blob.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

from ._keys import PURGE_PREFIX, purge_key
from ._properties import finish
from ._table import Operation, StatusTable

__all__ = ["Purge", "blob_folder", "purge_operation"]

_PURGE_END = PURGE_PREFIX[:-1] + chr(ord(PURGE_PREFIX[-1]) + 1)


def blob_folder(pointer: str) -> str:
    """The folder of a row's blob pointer (``<container>/<folder>/<name>``): ``<folder>/``."""
    return pointer.split("/", 1)[1].rsplit("/", 1)[0] + "/"


def purge_operation(partition: str, name: str, folders: Iterable[str]) -> Operation | None:
    """The insert of the purge row of ``name`` naming ``folders``; None when there are none."""
    unique = sorted(set(folders))
    if not unique:
        return None
    entity = {"PartitionKey": partition, "RowKey": purge_key(name), "folders": json.dumps(unique)}
    return ("upsert", finish(entity), {})


class Purge:
    """The purge rows of one partition, with the container their folders are in.

    :param table: the partition of the purge rows.
    :param container: the errors container; None: the rows name no blob.
    """

    def __init__(self, table: StatusTable, container: ContainerClient | None) -> None:
        self._table = table
        self._container = container

    def finish(self, *, deadline: float) -> int:
        """Delete the blobs of every purge row, then the row, until ``deadline``
        (``time.monotonic()``); the blobs deleted."""
        deleted = 0
        rows = self._table.query(
            ["RowKey ge @first", "RowKey lt @end"], {"first": PURGE_PREFIX, "end": _PURGE_END}
        )
        for row in rows:
            if time.monotonic() > deadline:
                break
            for folder in json.loads(row["folders"]):
                deleted += self._delete_folder(folder)
            self._table.delete(row["RowKey"], etag=row.metadata["etag"])
        return deleted

    def _delete_folder(self, folder: str) -> int:
        if self._container is None:
            return 0
        deleted = 0
        for blob in self._container.list_blobs(name_starts_with=folder):
            with contextlib.suppress(ResourceNotFoundError):
                self._container.delete_blob(blob.name, delete_snapshots="include")
                deleted += 1
        return deleted
