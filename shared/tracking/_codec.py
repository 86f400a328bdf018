"""How the status model is laid out in its table: keys, entities and continuation tokens.

Every row of the status model lives in one partition, so that a record and the rows that
follow it (its place on the poll schedule, its message-id and blob-path indexes) are written
together in one entity group transaction: they cannot disagree after a failed call.

=================================  ===========================================================
row key                            row
=================================  ===========================================================
``<inverted ms>-<record id>``      a record: one blob version; newest first is the table order
``~b-<path hash>-<record key>``    blob-path index: the versions of one path, newest first
``~m-<message id>``                message-id index: F&O's message id to the record
``~s-<record id>``                 poll-schedule entry, only while the record is not final
``~lease-poller``                  the poll lease and the watermark of the last whole tick
``~lease-package-import``          the package-import lease: one ImportFromPackage in flight
=================================  ===========================================================

Every row of every kind (these, and the export records and leases of :mod:`._exports`) is
finished by :func:`finish`, which cuts its texts and checks it against Azure Tables' limits:
what a row holds at most, and how a longer value is made to fit, is decided in
:mod:`._fit`; a list too long for a row is kept whole in a blob (:mod:`._overflow`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.clients.d365 import ExecutionError

from ._fit import (
    ERRORS_UNITS,
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
    units,
)
from ._model import PendingEntry, TrackedFile, TrackingState, error_to_dict

__all__ = [
    "ERROR_FILES",
    "EXPORT_BLOBS",
    "PACKAGE_ENTITIES",
    "PARTITION",
    "RECORD_LISTS",
    "ListField",
    "blob_index_key",
    "blob_index_prefix",
    "clean_etag",
    "decode_continuation",
    "decode_errors",
    "decode_history",
    "decode_list",
    "encode_continuation",
    "encode_errors",
    "encode_history",
    "encode_list",
    "finish",
    "from_entity",
    "index_entity",
    "is_record_key",
    "lease_entity",
    "lease_key",
    "message_key",
    "pending_entity",
    "pending_from",
    "quoted_etag",
    "record_id_for",
    "record_row_key",
    "schedule_key",
    "since_bound",
    "to_entity",
    "until_bound",
]

PARTITION = "files"
RECORDS_END = "~"
"""Every record key sorts before this; every other row after it."""
SCHEDULE_PREFIX = "~s-"
_MESSAGE_PREFIX = "~m-"
_BLOB_PREFIX = "~b-"
_LEASE_PREFIX = "~lease-"
_INVERT_BASE = 10**13 - 1
_RECORD_KEY = re.compile(r"^\d{13}-[0-9a-f]{32}$")


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def parse_time(value: Any) -> datetime | None:
    """A stored time as timezone-aware UTC; None for an empty value."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def clean_etag(etag: str) -> str:
    """An ETag without the quotes HTTP puts around it (quotes are awkward in keys)."""
    return etag.strip().strip('"')


def quoted_etag(etag: str) -> str:
    """An ETag in the quoted form conditional headers expect."""
    return f'"{clean_etag(etag)}"'


def record_id_for(blob: str, etag: str) -> str:
    """The record id of one blob version: stable, so every delivery computes the same one."""
    digest = hashlib.sha256(f"{blob}\n{clean_etag(etag)}".encode())
    return digest.hexdigest()[:32]


def record_row_key(modified_at: datetime, record_id: str) -> str:
    """Inverted time first, so the newest record sorts first.

    The time is the blob version's own (its Last-Modified), so every delivery of a version
    computes the same key and creating the row is the claim.
    """
    millis = int(modified_at.timestamp() * 1000)
    return f"{_INVERT_BASE - max(millis, 0):013d}-{record_id}"


def is_record_key(text: str) -> bool:
    """True for a string shaped like a record's row key (metadata from uploaders may lie)."""
    return bool(_RECORD_KEY.fullmatch(text))


def since_bound(since: datetime) -> str:
    """Upper bound of the record keys at or after ``since``."""
    # Before 1970 is everything; past the year 2286 (13 digits of ms) is nothing.
    millis = min(max(int(since.timestamp() * 1000), 0), _INVERT_BASE)
    return f"{_INVERT_BASE - millis:013d}-~"


def until_bound(until: datetime) -> str:
    """Lower bound of the record keys at or before ``until``."""
    millis = min(max(int(until.timestamp() * 1000), 0), _INVERT_BASE)
    return f"{_INVERT_BASE - millis:013d}-"


def _path_hash(blob: str) -> str:
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def blob_index_prefix(blob: str) -> str:
    """Key prefix of the blob-path index rows of one path."""
    return f"{_BLOB_PREFIX}{_path_hash(blob)}-"


def blob_index_key(blob: str, row_key: str) -> str:
    """Blob-path index row of one version: the prefix, then the record's key."""
    return blob_index_prefix(blob) + row_key


def message_key(message_id: str) -> str:
    """Message-id index row of a normalised F&O message id."""
    return _MESSAGE_PREFIX + message_id


def schedule_key(record_id: str) -> str:
    """Poll-schedule row of a record."""
    return SCHEDULE_PREFIX + record_id


def lease_key(name: str) -> str:
    """Lease row ``name``."""
    return _LEASE_PREFIX + name


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


_TIME_FIELDS = (
    "received_at",
    "updated_at",
    "enqueued_at",
    "completed_at",
    "send_started_at",
    "lease_until",
    "next_poll_at",
)
_TEXT_FIELDS = (
    "blob",
    "blob_etag",
    "route",
    "activity_id",
    "entity",
    "company",
    "message_id",
    "raw_message_id",
    "d365_status",
    "execution_id",
    "sent_execution_id",
    "errors_blob",
    "last_error",
    "reject_reason",
    "archived_to",
    "archive_error",
    "fingerprint",
    "write_id",
    "api",
    "definition_group",
    "api_note",
    "resubmit_of",
    "resubmitted_as",
    "resubmit_request",
)
_COUNT_FIELDS = ("size", "error_count", "poll_count", "enqueue_attempts", "archive_attempts")


def with_history(record: TrackedFile, state: TrackingState, at: datetime) -> tuple:
    """The record's history with ``state`` appended (unless it is the last entry); the row
    keeps the newest entries (see :func:`encode_history`)."""
    if record.history and record.history[-1][0] == state.value:
        return record.history
    return (*record.history, (state.value, _iso(at)))


def _errors_properties(record: TrackedFile) -> dict[str, Any]:
    """The errors the row keeps (the first that fit) and F&O's raw text in what is left of
    :data:`._fit.ERRORS_UNITS`; all of them are in the errors blob when they did not fit."""
    kept = keep([error_to_dict(e) for e in record.errors], limit=ERRORS_UNITS)
    errors = dumps(kept)
    raw = record.errors_raw
    return {
        "errors": Bounded(errors),
        "errors_raw": None if raw is None else Bounded(cut(raw, ERRORS_UNITS - units(errors))),
    }


def to_entity(record: TrackedFile) -> dict[str, Any]:
    """The table entity of a record."""
    entity: dict[str, Any] = {
        "PartitionKey": PARTITION,
        "RowKey": record.row_key,
        "record_id": record.record_id,
        "state": record.state.value,
        "archive_pending": record.archive_pending,
        **encode_history(record.history, record.history_dropped),
    }
    for name in _COUNT_FIELDS:
        entity[name] = getattr(record, name)
    for name in _TEXT_FIELDS:
        entity[name] = getattr(record, name)
    for name in _TIME_FIELDS:
        entity[name] = _iso(getattr(record, name))
    for spec in RECORD_LISTS:
        entity.update(
            encode_list(
                spec,
                getattr(record, spec.name),
                getattr(record, spec.count),
                getattr(record, spec.blob),
            )
        )
    entity.update(_errors_properties(record))
    return finish(entity)


def from_entity(entity: Mapping[str, Any]) -> TrackedFile:
    """The record of a table entity."""
    texts = {name: entity.get(name) for name in (*_TEXT_FIELDS, "errors_raw")}
    texts["write_id"] = texts["write_id"] or ""
    times = {name: parse_time(entity.get(name)) for name in _TIME_FIELDS}
    counts = {name: int(entity.get(name) or 0) for name in _COUNT_FIELDS}
    counts["size"] = entity.get("size")  # type: ignore[assignment] - None stays unknown
    lists: dict[str, Any] = {}
    for spec in RECORD_LISTS:
        lists.update(decode_list(spec, entity))
    return TrackedFile(
        record_id=entity["record_id"],
        row_key=entity["RowKey"],
        state=TrackingState.parse(entity["state"]),
        archive_pending=bool(entity.get("archive_pending", False)),
        errors=decode_errors(entity.get("errors")),
        **decode_history(entity),
        **lists,
        etag=entity.metadata["etag"] if hasattr(entity, "metadata") else "",
        **texts,
        **times,
        **counts,
    )


def pending_entity(entry: PendingEntry) -> dict[str, Any]:
    """The table entity of a poll-schedule entry."""
    return finish(
        {
            "PartitionKey": PARTITION,
            "RowKey": schedule_key(entry.record_id),
            "record_row_key": entry.record_row_key,
            "due": entry.due_at.astimezone(UTC),
            "state": entry.state.value,
            "since": entry.since.astimezone(UTC),
            "blob": entry.blob,
            "poll_count": entry.poll_count,
            "message_id": entry.message_id,
            "d365_status": entry.d365_status,
            # Every write of an entry is a new anchor of its schedule: the poller reads it so.
            "written_at": (entry.written_at or entry.due_at).astimezone(UTC),
        }
    )


def pending_from(row: Any) -> PendingEntry:
    """The poll-schedule entry of a table row."""
    return PendingEntry(
        record_id=row["RowKey"][len(SCHEDULE_PREFIX) :],
        record_row_key=row["record_row_key"],
        due_at=parse_time(row["due"]) or datetime.now(UTC),
        state=TrackingState.parse(row["state"]),
        since=parse_time(row["since"]) or datetime.now(UTC),
        blob=row["blob"],
        message_id=row.get("message_id"),
        poll_count=int(row.get("poll_count") or 0),
        d365_status=row.get("d365_status"),
        written_at=parse_time(row.get("written_at")),
        etag=row.metadata["etag"],
    )


def index_entity(row_key: str, record_row_key: str) -> dict[str, Any]:
    """An index row (blob path or message id): a pointer to the record's row."""
    return finish({"PartitionKey": PARTITION, "RowKey": row_key, "record_row_key": record_row_key})


def lease_entity(
    partition: str, name: str, holder: str, until: datetime, *, watermark: datetime | None = None
) -> dict[str, Any]:
    """The lease row ``name`` of ``partition``: its holder until ``until`` (and the poll
    lease's watermark)."""
    return finish(
        {
            "PartitionKey": partition,
            "RowKey": lease_key(name),
            "holder": holder,
            "until": until.astimezone(UTC),
            "watermark": watermark and watermark.astimezone(UTC),
        }
    )


def encode_continuation(row_key: str) -> str:
    """Opaque continuation token for the HTTP API."""
    return base64.urlsafe_b64encode(row_key.encode()).decode().rstrip("=")


def decode_continuation(token: str) -> str:
    """Inverse of :func:`encode_continuation`; ValueError for a token we did not issue."""
    try:
        padded = token + "=" * (-len(token) % 4)
        row_key = base64.urlsafe_b64decode(padded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("continuation is not a token this API issued") from exc
    if not is_record_key(row_key):
        raise ValueError("continuation is not a token this API issued")
    return row_key
