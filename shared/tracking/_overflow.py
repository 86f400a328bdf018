"""Values too large for a row, kept whole in blobs of the errors container.

The row keeps what fits (a preview, the count) and ``<container>/<name>`` of the blob; a
reader that needs everything reads the blob. Execution errors were the first such values
(``<message id>/errors.json``, F&O's raw text beside it); the lists that cannot be cut (a
manifest's entities, F&O's error files, the blobs an export wrote) take the same way.

The blob is written before the row. *Fails*: the row is not written (the caller records the
failure as for any storage error). *The row write fails after it*: the blob stays, unused.
A list's blob is named by a hash of its content, so two writers of one record never overwrite
each other's list: the one whose row write wins points at its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient

from ._codec import ListField
from ._fit import LIST_UNITS, dumps, keep, keeps_all
from ._model import TrackingStoreError

__all__ = ["Overflow"]

_LOGGER = logging.getLogger(__name__)


class Overflow:
    """Blobs holding what did not fit a row.

    :param container: the errors container (``ERRORS_CONTAINER``); None: nothing may overflow
        (a value too large for a row is then refused with :class:`TrackingStoreError`).
    """

    def __init__(self, container: ContainerClient | None) -> None:
        self._container = container

    def ensure_ready(self) -> None:
        """Create the container when missing."""
        if self._container is not None:
            with contextlib.suppress(ResourceExistsError):
                self._container.create_container()

    def write(self, name: str, data: bytes, *, what: str) -> str:
        """Write blob ``name`` (replacing it); its ``<container>/<name>`` for the row.

        :raises TrackingStoreError: there is no errors container.
        :raises AzureError: storage failed.
        """
        if self._container is None:
            raise TrackingStoreError(f"{what} too large for a row and no errors container")
        self._container.upload_blob(name, data, overwrite=True)
        return f"{self._container.container_name}/{name}"

    def read(self, pointer: str) -> str:
        """The text of the blob a row points at (``<container>/<name>``)."""
        if self._container is None:
            raise TrackingStoreError(f"{pointer} cannot be read: no errors container")
        name = pointer.split("/", 1)[1]
        text: str = self._container.download_blob(name, encoding="utf-8").readall()
        return text

    def list_fields(self, spec: ListField, items: Sequence[str], *, folder: str) -> dict[str, Any]:
        """The record fields of list ``spec`` holding ``items``: all of them when they fit the
        row, else the first ones, the count and the blob (written now) holding all of them.

        :raises TrackingStoreError: the list does not fit and there is no errors container.
        :raises AzureError: the blob could not be written.
        """
        items = tuple(items)
        if keeps_all(items, limit=LIST_UNITS):  # what the codec keeps on the row: all of it
            return {spec.name: items, spec.count: len(items), spec.blob: None}
        text = dumps(list(items))
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        pointer = self.write(
            f"{folder}/{spec.name}-{digest}.json", text.encode(), what=f"the {spec.name} list"
        )
        _LOGGER.info("list stored in blob %s count=%d", pointer, len(items))
        preview = tuple(keep(items, limit=LIST_UNITS))
        return {spec.name: preview, spec.count: len(items), spec.blob: pointer}

    def read_list(self, items: tuple[str, ...], pointer: str | None) -> tuple[str, ...]:
        """The whole list: ``items`` when the row holds all of it, else the blob's."""
        if not pointer or self._container is None:
            return items
        return tuple(json.loads(self.read(pointer)))
