"""How a value is made to fit one row of Azure Tables.

What one row can hold at most, and how a longer value is cut, is decided here.

Azure Tables refuses a write with 400 when its entity is over 1 MiB, a property over 64 KiB
(a string property: 32K UTF-16 code units), or when it has more than 255 properties
(PartitionKey, RowKey and Timestamp included). The codec builds every row of every kind with
these functions, so that no record, however long its texts or lists, makes a row the service
refuses:

- a text is cut at :data:`TEXT_UNITS`, ending with a marker that says how much was cut;
- a history keeps its newest entries (at most :data:`HISTORY_ENTRIES`, within
  :data:`HISTORY_UNITS`, each reason within :data:`REASON_UNITS`) and a count of the dropped;
- a list that cannot be cut (the blobs an export wrote, a manifest's entities) stays on the
  row when its JSON fits :data:`LIST_UNITS`; else the row keeps its first entries, its count
  and the name of a blob holding all of it (see :mod:`._overflow`);
- execution errors and F&O's raw text share :data:`ERRORS_UNITS` (more goes to a blob too);
- :func:`check` measures the finished row and refuses one that would still not fit, naming
  the property, before anything is sent.

Sizes are UTF-16 code units, as the service counts them (a character beyond the Basic
Multilingual Plane takes two). JSON inside a property is written with ``ensure_ascii=False``:
escaped, a non-ASCII character would take six units instead of one. The SDK itself sends the
entity as JSON with every non-ASCII character escaped (six bytes a code unit at worst), and
Azurite measures that request body against the 1 MiB, so a row is measured both ways. The
caps are chosen so that even the largest record passes both: 23 texts at 4,000 units, errors
at 30,000, a history at 16,000 and two lists at 8,000 are 154,000 units, at most 924,000 bytes
on the wire.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from azure.data.tables import EntityProperty

from shared.errors import AppError

__all__ = [
    "ERRORS_UNITS",
    "HISTORY_ENTRIES",
    "HISTORY_UNITS",
    "LIST_UNITS",
    "MAX_ENTITY_BYTES",
    "MAX_KEY_UNITS",
    "MAX_PROPERTIES",
    "MAX_PROPERTY_BYTES",
    "MAX_STRING_UNITS",
    "REASON_UNITS",
    "TEXT_UNITS",
    "Bounded",
    "RowTooLargeError",
    "check",
    "cut",
    "dumps",
    "keep",
    "keeps_all",
    "request_bytes",
    "service_bytes",
    "units",
]

MAX_ENTITY_BYTES = 1024 * 1024
"""An entity, as the service measures it (and as Azurite measures the request body)."""
MAX_PROPERTY_BYTES = 64 * 1024
"""A binary property."""
MAX_STRING_UNITS = 32 * 1024
"""A string property: 64 KiB of UTF-16."""
MAX_PROPERTIES = 255 - 3
"""Properties of our own: 255 counting PartitionKey, RowKey and Timestamp."""
MAX_KEY_UNITS = 512
"""PartitionKey and RowKey take 1 KiB each."""

TEXT_UNITS = 4_000
"""A text property (an error, F&O's status text, a blob name): room for any F&O message an
operator reads, a tenth of what a property takes."""
REASON_UNITS = 2_000
"""The reason of one history entry."""
HISTORY_UNITS = 16_000
"""A history's JSON: half a property, so a listing of 1,000 records stays readable."""
HISTORY_ENTRIES = 50
"""Entries a history keeps at most (a message re-delivered for days would grow without end)."""
LIST_UNITS = 8_000
"""A list kept on the row (or its first entries when the whole is in a blob)."""
ERRORS_UNITS = 30_000
"""Execution errors and F&O's raw text of them together, as the row keeps them."""

_ANNOTATION_BYTES = 40
"""What the SDK may add per property on the wire (``"<name>@odata.type": "Edm.Int64"``)."""
_OTHER_BYTES = 16
"""A value that is not a string, binary or boolean (numbers, times, GUIDs: 16 at most)."""
_PROPERTY_BOUND = 100
"""Bytes a property costs beyond its name and its text, on the wire or as the service counts
(quotes, separators, annotation, a time's 32 characters): bounds :func:`check`'s fast path."""
_T = TypeVar("_T")


class Bounded(str):
    """A property value the codec has already bounded (JSON of a list, kept within its own
    budget): :func:`check` measures it but the text cut leaves it alone."""

    __slots__ = ()


class RowTooLargeError(AppError, ValueError):
    """A row would not fit Azure Tables; the text names the row, the property and the limit.

    Raised before anything is sent. The codec's caps make it unreachable for the rows it
    builds; it guards a property added without a cap.
    """


def units(text: str) -> int:
    """UTF-16 code units of ``text`` (what a string property counts)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def dumps(value: Any) -> str:
    """JSON for a property: non-ASCII kept as it is (one unit, not six)."""
    return json.dumps(value, ensure_ascii=False)


def _marker(count: int) -> str:
    return f"… [{count:,} characters cut]"


def cut(text: str, limit: int = TEXT_UNITS) -> str:
    """``text`` within ``limit`` code units: a longer one keeps its start and ends with a
    marker saying how many characters were cut (cutting it again changes nothing)."""
    if len(text) <= limit // 2 or units(text) <= limit:
        return text
    budget = max(limit - units(_marker(len(text))), 0)
    kept = used = 0
    for char in text:
        size = 2 if ord(char) > 0xFFFF else 1
        if used + size > budget:
            break
        used += size
        kept += 1
    return text[:kept] + _marker(len(text) - kept)


def keep(entries: Sequence[_T], *, limit: int, newest: bool = False) -> list[_T]:
    """The first entries (or the newest, in their order) whose JSON list fits ``limit`` units.

    Exact: the entries are all kept exactly when ``units(dumps(list(entries))) <= limit``.
    """
    kept: list[_T] = []
    used = 2  # the brackets
    for entry in reversed(entries) if newest else entries:
        # The entry, and the ", " that separates it from the one before (none for the first).
        size = units(dumps(entry)) + (2 if kept else 0)
        if used + size > limit:
            break
        kept.append(entry)
        used += size
    return kept[::-1] if newest else kept


def keeps_all(entries: Sequence[Any], *, limit: int) -> bool:
    """True when :func:`keep` keeps every entry: the one test of "the whole list fits the
    row", so that a list the row cannot hold whole always goes to a blob."""
    return limit >= 2 and len(keep(entries, limit=limit)) == len(entries)  # 2: the brackets


def _raw(value: Any) -> Any:
    """The Python value of a property (an ``EntityProperty`` holds it in ``value``)."""
    return value.value if isinstance(value, EntityProperty) else value


def _value_bytes(value: Any) -> int:
    raw = _raw(value)
    if isinstance(raw, str):
        return 4 + 2 * units(raw)
    if isinstance(raw, bytes):
        return 4 + len(raw)
    if isinstance(raw, bool):
        return 1
    return _OTHER_BYTES


def service_bytes(entity: Mapping[str, Any]) -> int:
    """The entity's size as Azure Tables computes it (its Timestamp included)."""
    total = 4 + 8 + 2 * len("Timestamp") + 8
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey"):
            total += 2 * units(value)
        elif value is not None:
            total += 8 + 2 * len(name) + _value_bytes(value)
    return total


def _wire(value: Any) -> Any:
    raw = _raw(value)
    if isinstance(raw, bytes):
        return "=" * (4 * ((len(raw) + 2) // 3))  # base64
    return raw.isoformat() if isinstance(raw, datetime) else raw


def request_bytes(entity: Mapping[str, Any]) -> int:
    """The entity's JSON as the SDK sends it (non-ASCII escaped), type annotations included."""
    body = json.dumps({name: _wire(value) for name, value in entity.items()}, default=str)
    return len(body.encode()) + sum(len(name) + _ANNOTATION_BYTES for name in entity)


def check(entity: Mapping[str, Any]) -> None:
    """Refuse a row Azure Tables would refuse.

    :raises RowTooLargeError: naming the row, the property and the limit it passes.
    """
    row = f"row {str(entity.get('RowKey'))[:80]!r}"
    properties = [name for name in entity if name not in ("PartitionKey", "RowKey")]
    if len(properties) > MAX_PROPERTIES:
        raise RowTooLargeError(
            f"{row} has {len(properties)} properties; a row takes {MAX_PROPERTIES} of ours"
        )
    bound = 64  # at most 6 bytes a code unit on the wire, 2 as the service counts
    for name, value in entity.items():
        raw = _raw(value)
        bound += 2 * len(name) + _PROPERTY_BOUND
        if isinstance(raw, str):
            size = units(raw)
            bound += 6 * size
            if name in ("PartitionKey", "RowKey") and size > MAX_KEY_UNITS:
                raise RowTooLargeError(f"{row}: {name} is over {MAX_KEY_UNITS} characters")
            if size > MAX_STRING_UNITS:
                raise RowTooLargeError(
                    f"{row}: property {name!r} holds {size:,} UTF-16 code units; a string "
                    f"property takes {MAX_STRING_UNITS:,}"
                )
        elif isinstance(raw, bytes):
            bound += 2 * len(raw)  # base64 on the wire
            if len(raw) > MAX_PROPERTY_BYTES:
                raise RowTooLargeError(
                    f"{row}: property {name!r} is over {MAX_PROPERTY_BYTES} bytes"
                )
    if bound <= MAX_ENTITY_BYTES:
        return  # a small row: no need to measure it exactly
    size = max(service_bytes(entity), request_bytes(entity))
    if size > MAX_ENTITY_BYTES:
        raise RowTooLargeError(f"{row} is {size:,} bytes; an entity takes {MAX_ENTITY_BYTES:,}")
