"""How one value of a status row becomes a table property (times, errors, histories, lists).

Every row of every kind (records, schedule entries, index rows, leases, export records) is
finished by :func:`finish`, which cuts its texts and checks it against Azure Tables' limits:
what a row holds at most, and how a longer value is made to fit, is decided in
:mod:`._fit`; a list too long for a row is kept whole in a blob (:mod:`._overflow`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.data.tables import EdmType, EntityProperty

from shared.clients.d365 import ExecutionError

from ._actor import Actor
from ._fit import (
    HISTORY_ENTRIES,
    HISTORY_UNITS,
    LIST_UNITS,
    REASON_UNITS,
    TEXT_UNITS,
    Bounded,
    check,
    cut,
    dumps,
    keep,
)
from ._model import error_to_dict

__all__ = [
    "ERROR_FILES",
    "EXPORT_BLOBS",
    "PACKAGE_ENTITIES",
    "RECORD_LISTS",
    "ListField",
    "decode_actor",
    "decode_errors",
    "decode_history",
    "decode_list",
    "decode_size",
    "encode_actor",
    "encode_errors",
    "encode_history",
    "encode_list",
    "encode_size",
    "finish",
    "iso",
    "parse_time",
    "row_etag",
]


def iso(value: datetime | None) -> str | None:
    """A time as the ISO text a row keeps (UTC); None for no time."""
    return value.astimezone(UTC).isoformat() if value else None


def parse_time(value: Any) -> datetime | None:
    """A stored time as timezone-aware UTC; None for an empty value."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def encode_errors(errors: Sequence[ExecutionError]) -> str:
    """Execution errors as the JSON text the row and the errors blob hold."""
    return dumps([error_to_dict(e) for e in errors])


def decode_errors(text: str | None) -> tuple[ExecutionError, ...]:
    """Inverse of :func:`encode_errors`."""
    if not text:
        return ()
    return tuple(
        ExecutionError(str(e["record_id"]), str(e["field"]), str(e["message"]))
        for e in json.loads(text)
    )


_ACTOR_UNITS = 500
"""Each of an actor's texts on a record (a display name, an object id, a provider)."""


def encode_actor(actor: Actor | None) -> Bounded | None:
    """An actor as the JSON text a record keeps, each of its texts cut to 500 units."""
    if actor is None:
        return None
    return Bounded(dumps({k: cut(v, _ACTOR_UNITS) for k, v in actor.to_dict().items()}))


def decode_actor(text: str | None) -> Actor | None:
    """Inverse of :func:`encode_actor`."""
    return Actor.from_dict(json.loads(text)) if text else None


def encode_size(size: int | None) -> EntityProperty | None:
    """A size in bytes as an Int64 property: an export may pass 2 GiB, which the Int32
    property the SDK makes of a Python int would refuse."""
    return None if size is None else EntityProperty(size, EdmType.INT64)


def decode_size(value: Any) -> int | None:
    """Inverse of :func:`encode_size`: an Int64 property is read back as an EntityProperty."""
    return getattr(value, "value", value)


def row_etag(row: Mapping[str, Any]) -> str:
    """The ETag a row was read with; "" for an entity built here (it has no metadata)."""
    return getattr(row, "metadata", {}).get("etag", "")


def finish(entity: Mapping[str, Any]) -> dict[str, Any]:
    """A row as it is written: empty values left out, every text cut to its cap (a value the
    codec bounded itself, :class:`._fit.Bounded`, is kept), then checked against the limits.

    :raises RowTooLargeError: the row would still not fit (a property added without a cap).
    """
    row = {name: _finished(name, value) for name, value in entity.items() if value is not None}
    check(row)
    return row


def _finished(name: str, value: Any) -> Any:
    if isinstance(value, Bounded):
        return str(value)
    if isinstance(value, str) and name not in ("PartitionKey", "RowKey"):
        return cut(value, TEXT_UNITS)
    return value


def encode_history(history: Sequence[Sequence[str | None]], dropped: int) -> dict[str, Any]:
    """The ``history`` and ``history_dropped`` properties: the newest entries that fit (each
    text cut to :data:`._fit.REASON_UNITS`), and how many were dropped before them."""
    newest = history[-HISTORY_ENTRIES:]
    entries = [[part if part is None else cut(part, REASON_UNITS) for part in e] for e in newest]
    kept = keep(entries, limit=HISTORY_UNITS, newest=True)
    return {
        "history": Bounded(dumps(kept)),
        "history_dropped": dropped + len(history) - len(kept),
    }


def decode_history(row: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encode_history`: entries as tuples."""
    entries = json.loads(row.get("history") or "[]")
    return {
        "history": tuple(tuple(entry) for entry in entries),
        "history_dropped": int(row.get("history_dropped") or 0),
    }


@dataclass(frozen=True)
class ListField:
    """A list a row keeps whole while it fits :data:`._fit.LIST_UNITS`: beyond, the row keeps its
    first entries, ``count`` says how many there are and ``blob`` names the blob holding all
    of them (``<container>/<name>``, written by :mod:`._overflow` before the row)."""

    name: str
    count: str
    blob: str


PACKAGE_ENTITIES = ListField("package_entities", "package_entity_count", "package_entities_blob")
ERROR_FILES = ListField("error_files", "error_file_count", "error_files_blob")
EXPORT_BLOBS = ListField("blobs", "blob_count", "blobs_blob")
RECORD_LISTS = (PACKAGE_ENTITIES, ERROR_FILES)
"""The lists of a tracked file's record."""


def encode_list(
    spec: ListField, items: Sequence[str], count: int, blob: str | None
) -> dict[str, Any]:
    """The properties of a list: its first entries that fit, its count and its blob."""
    kept = keep(items, limit=LIST_UNITS)
    return {
        spec.name: Bounded(dumps(kept)) if kept else None,
        spec.count: max(count, len(items)) or None,
        spec.blob: blob,
    }


def decode_list(spec: ListField, row: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encode_list` (a row written before the count counts its entries)."""
    items = tuple(json.loads(row.get(spec.name) or "[]"))
    return {
        spec.name: items,
        spec.count: int(row.get(spec.count) or len(items)),
        spec.blob: row.get(spec.blob),
    }
