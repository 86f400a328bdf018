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
from collections.abc import Mapping, Sequence
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient

from shared.clients.d365 import ExecutionError

from ._fit import ERRORS_UNITS, LIST_UNITS, dumps, keep, keeps_all, units
from ._model import TrackedFile, TrackingStoreError, error_to_dict
from ._properties import RECORD_LISTS, ListField, decode_errors, encode_errors

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

    def record_lists(self, record_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """``fields`` with each list of a record given in them as the row keeps it: a list too
        long for the row is written to a blob first."""
        listed = dict(fields)
        for spec in RECORD_LISTS:
            if spec.name in fields:
                listed.update(self.list_fields(spec, fields[spec.name], folder=record_id))
        return listed

    def errors_fields(
        self, record: TrackedFile, errors: Sequence[ExecutionError], raw: str
    ) -> dict[str, Any]:
        """Fields for a record holding these errors: inline when they fit, else in a blob.

        The raw text F&O sent is always kept, inline or beside the parsed list in the blob.
        Sizes are counted in UTF-16, as Table Storage counts them.
        """
        # The codec keeps the errors that fit ERRORS_UNITS and F&O's text in what is left.
        if keeps_all([error_to_dict(e) for e in errors], limit=ERRORS_UNITS - units(raw)):
            return {
                "errors": tuple(errors),
                "error_count": len(errors),
                "errors_raw": raw,
                "errors_blob": None,
            }
        base = f"{record.message_id or record.record_id}"
        what = "execution errors"
        pointer = self.write(f"{base}/errors.json", encode_errors(errors).encode(), what=what)
        self.write(f"{base}/errors.raw.txt", raw.encode(), what=what)
        _LOGGER.info(
            "execution errors stored in blob blob=%s message_id=%s count=%d",
            record.blob,
            record.message_id,
            len(errors),
        )
        preview = keep([error_to_dict(e) for e in errors], limit=ERRORS_UNITS // 2)
        return {
            "errors": tuple(errors[: len(preview)]),
            "error_count": len(errors),
            "errors_raw": None,
            "errors_blob": pointer,
        }

    def read_errors(self, record: TrackedFile) -> tuple[ExecutionError, ...]:
        """All errors of a record, reading the errors blob when they did not fit the row."""
        if not record.errors_blob:
            return record.errors
        return decode_errors(self.read(record.errors_blob))
