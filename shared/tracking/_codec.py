"""The table rows of a tracked file's record, its poll-schedule entry, its index rows.

The row keys are :mod:`._keys`'; each property is encoded by :mod:`._properties`, which cuts
and checks the row against Azure Tables' limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ._fit import ERRORS_UNITS, Bounded, cut, dumps, keep, units
from ._keys import PARTITION, SCHEDULE_PREFIX, schedule_key
from ._model import (
    OUTCOME_UNKNOWN_TEXT,
    FailureKind,
    PendingEntry,
    TrackedFile,
    TrackingState,
    error_to_dict,
)
from ._properties import (
    RECORD_LISTS,
    decode_actor,
    decode_errors,
    decode_history,
    decode_list,
    encode_actor,
    encode_history,
    encode_list,
    finish,
    iso,
    parse_time,
)

__all__ = [
    "entry_for",
    "from_entity",
    "index_entity",
    "pending_entity",
    "pending_from",
    "schedule_row",
    "to_entity",
    "with_history",
]

_TIME_FIELDS = (
    "received_at",
    "updated_at",
    "enqueued_at",
    "completed_at",
    "send_started_at",
    "lease_until",
    "next_poll_at",
    "resubmit_at",
    "resubmitted_at",
    "line_created",
    "turn_at",
    "released_at",
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
    "resubmitted_request",
    "line",
    "line_mode",
    "behind",
    "late_after",
    "release_request",
)
_ACTOR_FIELDS = ("resubmit_by", "resubmitted_by", "released_by")
_COUNT_FIELDS = ("size", "error_count", "poll_count", "enqueue_attempts", "archive_attempts")


def with_history(record: TrackedFile, state: TrackingState, at: datetime) -> tuple:
    """The record's history with ``state`` appended (unless it is the last entry); the row
    keeps the newest entries (see :func:`._properties.encode_history`)."""
    if record.history and record.history[-1][0] == state.value:
        return record.history
    return (*record.history, (state.value, iso(at)))


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


def _failure(entity: Mapping[str, Any]) -> FailureKind | None:
    """The kind of the row's ``last_error``; a row written before the kind was stored is read
    by the text's start."""
    if entity.get("failure"):
        return FailureKind(entity["failure"])
    if (entity.get("last_error") or "").startswith(OUTCOME_UNKNOWN_TEXT):
        return FailureKind.OUTCOME_UNKNOWN
    return None


def to_entity(record: TrackedFile) -> dict[str, Any]:
    """The table entity of a record."""
    entity: dict[str, Any] = {
        "PartitionKey": PARTITION,
        "RowKey": record.row_key,
        "record_id": record.record_id,
        "state": record.state.value,
        "archive_pending": record.archive_pending,
        "line_stops": record.line_stops or None,
        "failure": record.failure and record.failure.value,
        **encode_history(record.history, record.history_dropped),
    }
    for name in _COUNT_FIELDS:
        entity[name] = getattr(record, name)
    for name in _TEXT_FIELDS:
        entity[name] = getattr(record, name)
    for name in _TIME_FIELDS:
        entity[name] = iso(getattr(record, name))
    for name in _ACTOR_FIELDS:
        entity[name] = encode_actor(getattr(record, name))
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
    if texts["resubmitted_as"] and not texts["resubmitted_request"]:
        # Linked before the outgoing resubmit had a request id of its own: it was this one.
        texts["resubmitted_request"] = texts["resubmit_request"]
        texts["resubmit_request"] = texts["resubmit_request"] if texts["resubmit_of"] else None
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
        line_stops=bool(entity.get("line_stops", False)),
        failure=_failure(entity),
        errors=decode_errors(entity.get("errors")),
        **{name: decode_actor(entity.get(name)) for name in _ACTOR_FIELDS},
        **decode_history(entity),
        **lists,
        etag=entity.metadata["etag"] if hasattr(entity, "metadata") else "",
        **texts,
        **times,
        **counts,
    )


def entry_for(record: TrackedFile, due_at: datetime) -> PendingEntry:
    """The poll-schedule entry of a record, due at ``due_at`` (its new anchor)."""
    return PendingEntry(
        record_id=record.record_id,
        record_row_key=record.row_key,
        due_at=due_at,
        state=record.state,
        since=record.enqueued_at or record.received_at,
        blob=record.blob,
        message_id=record.message_id,
        poll_count=record.poll_count,
        d365_status=record.d365_status,
        written_at=record.updated_at,
    )


def schedule_row(record: TrackedFile) -> dict[str, Any]:
    """The keys of a record's poll-schedule row (what a delete names)."""
    return {"PartitionKey": PARTITION, "RowKey": schedule_key(record.record_id)}


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
