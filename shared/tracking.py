"""The tracking store: what happened to every file, in one Azure table.

Rows (see docs/architecture.md):

- ``record``   PK ``record``, RK ``<inverted received ms>-<record id>``: the authoritative state of
  one blob version. Newest first is the table's own order, so listing is a partition scan.
- ``claim``    PK ``claim-<hash of path>``, RK ``<blob etag>``: created once per blob version
  (create-or-409), so duplicate and concurrent deliveries resolve to one record.
- ``message``  PK ``message``, RK ``<F&O message id>``: point lookup by message id.
- ``lease``    PK ``lease``, RK ``poller``: the one tick walking the schedule, until when.
- ``pending``  PK ``pending``, RK ``<record id>``: exists only while a record is not terminal, with
  its next poll time (``due``) and the poll bookkeeping. The poller reads this partition only,
  so a tick's cost does not grow with the history of finished files; its writes go in batches
  (entity group transactions), conditional on each row's ETag.

Every write to a record is conditional on its ETag; a lost race raises :class:`ConcurrencyError`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode
from azure.storage.blob import ContainerClient

from shared.d365 import ExecutionError, normalize_message_id

_LOGGER = logging.getLogger(__name__)

RECORD_PARTITION = "record"
MESSAGE_PARTITION = "message"
PENDING_PARTITION = "pending"
LEASE_PARTITION = "lease"
_POLL_LEASE = "poller"
_CLAIM_PREFIX = "claim-"
_INVERT_BASE = 10**13 - 1
BATCH_SIZE = 100  # operations per entity group transaction (Azure's limit)
# A table string property holds 64 KiB of UTF-16, i.e. 32K characters; stay well inside it.
INLINE_TEXT_LIMIT = 30_000
_HISTORY_LIMIT = 50


class TrackingState(StrEnum):
    """The state of a tracked file: F&O's message states plus our own."""

    RECEIVED = "Received"
    ENQUEUED = "Enqueued"
    PREPROCESSING = "Preprocessing"
    PROCESSING = "Processing"
    PROCESSED = "Processed"
    PROCESSED_WITH_ERRORS = "ProcessedWithErrors"
    PRE_PROCESSING_ERROR = "PreProcessingError"
    POST_PROCESSING_FAILED = "PostProcessingFailed"
    REJECTED = "Rejected"
    ENQUEUE_FAILED = "EnqueueFailed"
    TIMED_OUT = "TimedOut"

    @property
    def is_terminal(self) -> bool:
        """True when nothing more will happen to the file."""
        return self not in _NON_TERMINAL

    @classmethod
    def parse(cls, text: str) -> TrackingState:
        """Case-insensitive lookup; raises ValueError naming the accepted values."""
        for state in cls:
            if state.value.lower() == text.strip().lower():
                return state
        accepted = ", ".join(s.value for s in cls)
        raise ValueError(f"unknown state {text!r}; accepted: {accepted}")


_NON_TERMINAL = frozenset(
    {
        TrackingState.RECEIVED,
        TrackingState.ENQUEUED,
        TrackingState.PREPROCESSING,
        TrackingState.PROCESSING,
    }
)


class TrackingStoreError(RuntimeError):
    """The status table cannot be used; the message says which table and what to do."""


class ConcurrencyError(RuntimeError):
    """Another writer changed the row first (ETag mismatch); re-read and decide again."""


def error_to_dict(error: ExecutionError) -> dict[str, str]:
    """JSON form of one execution error, as the HTTP API and the errors blob hold it."""
    return {"record_id": error.record_id, "field": error.field, "message": error.message}


@dataclass(frozen=True)
class TrackedFile:
    """One blob version and everything that happened to it."""

    record_id: str
    row_key: str
    blob: str
    blob_etag: str
    state: TrackingState
    received_at: datetime
    updated_at: datetime
    route: str | None = None
    activity_id: str | None = None
    entity: str | None = None
    company: str | None = None
    size: int | None = None
    message_id: str | None = None
    raw_message_id: str | None = None
    d365_status: str | None = None
    execution_id: str | None = None
    errors: tuple[ExecutionError, ...] = ()
    error_count: int = 0
    errors_blob: str | None = None
    errors_raw: str | None = None
    enqueued_at: datetime | None = None
    completed_at: datetime | None = None
    send_started_at: datetime | None = None
    lease_until: datetime | None = None
    fingerprint: str | None = None
    poll_count: int = 0
    enqueue_attempts: int = 0
    last_error: str | None = None
    reject_reason: str | None = None
    archived_to: str | None = None
    archive_pending: bool = False
    stamped_etag: str | None = None
    history: tuple[tuple[str, str], ...] = ()
    etag: str = field(default="", compare=False, repr=False)

    def __repr__(self) -> str:
        return (
            f"TrackedFile(blob={self.blob!r}, record_id={self.record_id!r}, "
            f"state={self.state.value!r}, message_id={self.message_id!r})"
        )


@dataclass(frozen=True)
class PendingEntry:
    """A record on the poll schedule: when it is due, the poll bookkeeping, and the few record
    fields a poll needs, so that a poll that changes nothing reads and writes no record."""

    record_id: str
    record_row_key: str
    due_at: datetime
    state: TrackingState
    since: datetime
    blob: str
    message_id: str | None = None
    poll_count: int = 0
    d365_status: str | None = None
    written_at: datetime | None = None
    etag: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class PollLease:
    """The right to walk the poll schedule until ``until``."""

    holder: str
    until: datetime
    watermark: datetime | None
    """Start of the last tick that polled everything due; None before the first."""
    etag: str = field(compare=False, repr=False)


@dataclass(frozen=True)
class ClaimResult:
    """Outcome of :meth:`TrackingStore.claim`: the record, and whether this call created it."""

    record: TrackedFile
    created: bool


@dataclass(frozen=True)
class Page:
    """One page of a listing; ``continuation`` is opaque, None on the last page."""

    records: tuple[TrackedFile, ...]
    continuation: str | None


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def clean_etag(etag: str) -> str:
    """An ETag without the quotes HTTP puts around it (quotes are awkward in row keys)."""
    return etag.strip().strip('"')


def record_id_for(blob: str, etag: str) -> str:
    """The record id of one blob version: stable, so every delivery computes the same one."""
    digest = hashlib.sha256(f"{blob}\n{clean_etag(etag)}".encode())
    return digest.hexdigest()[:32]


def claim_partition(blob: str) -> str:
    """The partition holding the claims of every version of one blob path."""
    return _CLAIM_PREFIX + hashlib.sha256(blob.encode()).hexdigest()[:32]


def record_row_key(received_at: datetime, record_id: str) -> str:
    """Inverted time first, so the newest record sorts first."""
    millis = int(received_at.timestamp() * 1000)
    return f"{_INVERT_BASE - millis:013d}-{record_id}"


def _since_bound(since: datetime) -> str:
    millis = int(since.timestamp() * 1000)
    return f"{_INVERT_BASE - millis:013d}-~"


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _parse_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def _encode_errors(errors: Sequence[ExecutionError]) -> str:
    return json.dumps([error_to_dict(e) for e in errors], ensure_ascii=False)


def _decode_errors(text: str | None) -> tuple[ExecutionError, ...]:
    if not text:
        return ()
    return tuple(
        ExecutionError(str(e["record_id"]), str(e["field"]), str(e["message"]))
        for e in json.loads(text)
    )


_TIME_FIELDS = (
    "received_at",
    "updated_at",
    "enqueued_at",
    "completed_at",
    "send_started_at",
    "lease_until",
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
    "errors_blob",
    "errors_raw",
    "last_error",
    "reject_reason",
    "archived_to",
    "stamped_etag",
    "fingerprint",
)


def _to_entity(record: TrackedFile) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": RECORD_PARTITION,
        "RowKey": record.row_key,
        "record_id": record.record_id,
        "state": record.state.value,
        "size": record.size,
        "error_count": record.error_count,
        "poll_count": record.poll_count,
        "enqueue_attempts": record.enqueue_attempts,
        "archive_pending": record.archive_pending,
        "errors": _encode_errors(record.errors),
        "history": json.dumps(record.history),
    }
    for name in _TEXT_FIELDS:
        entity[name] = getattr(record, name)
    for name in _TIME_FIELDS:
        entity[name] = _iso(getattr(record, name))
    return {k: v for k, v in entity.items() if v is not None}


def _from_entity(entity: Mapping[str, Any]) -> TrackedFile:
    texts = {name: entity.get(name) for name in _TEXT_FIELDS}
    times = {name: _parse_time(entity.get(name)) for name in _TIME_FIELDS}
    return TrackedFile(
        record_id=entity["record_id"],
        row_key=entity["RowKey"],
        state=TrackingState.parse(entity["state"]),
        size=entity.get("size"),
        error_count=int(entity.get("error_count") or 0),
        poll_count=int(entity.get("poll_count") or 0),
        enqueue_attempts=int(entity.get("enqueue_attempts") or 0),
        archive_pending=bool(entity.get("archive_pending", False)),
        errors=_decode_errors(entity.get("errors")),
        history=tuple(tuple(item) for item in json.loads(entity.get("history") or "[]")),
        etag=entity.metadata["etag"] if hasattr(entity, "metadata") else "",
        **texts,
        **times,
    )


def _with_history(record: TrackedFile, state: TrackingState, at: datetime) -> tuple:
    if record.history and record.history[-1][0] == state.value:
        return record.history
    return (*record.history, (state.value, _iso(at)))[-_HISTORY_LIMIT:]


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
    if "-" not in row_key or not row_key.split("-", 1)[0].isdigit():
        raise ValueError("continuation is not a token this API issued")
    return row_key


class TrackingStore:
    """Reads and writes tracked files in one table.

    :param table: the status table's client.
    :keyword errors_container: where execution errors too large for a row are written.
    """

    def __init__(self, table: TableClient, *, errors_container: ContainerClient | None = None):
        self._table = table
        self._errors = errors_container

    @property
    def table_name(self) -> str:
        """Name of the status table."""
        return self._table.table_name

    def ensure_ready(self) -> None:
        """Create the table (and errors container) when missing; a clear error when we cannot."""
        try:
            self._table.create_table()
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:
            raise TrackingStoreError(
                f"status table {self.table_name!r} is missing and could not be created "
                f"({exc.status_code} {exc.reason}); create it, or grant the app's identity "
                "'Storage Table Data Contributor' on the storage account"
            ) from exc
        if self._errors is not None:
            with contextlib.suppress(ResourceExistsError):
                self._errors.create_container()

    # -- claims and records -------------------------------------------------------------

    def claim(
        self,
        blob: str,
        etag: str,
        *,
        received_at: datetime | None = None,
        state: TrackingState = TrackingState.RECEIVED,
        **fields: Any,
    ) -> ClaimResult:
        """Claim one blob version: exactly one caller creates the record, the others get it.

        :param blob: blob path inside the inbound container.
        :param etag: the blob version's ETag.
        :keyword state: the initial state (``Rejected`` records are claimed too, so a duplicate
            delivery of a rejected blob is recognised).
        :keyword fields: initial :class:`TrackedFile` fields (route, activity_id, size...).
        :raises TrackingStoreError: the table is missing and cannot be created.
        """
        now = received_at or utcnow()
        record_id = record_id_for(blob, etag)
        row_key = record_row_key(now, record_id)
        claim = {
            "PartitionKey": claim_partition(blob),
            "RowKey": clean_etag(etag),
            "blob": blob,
            "record_row_key": row_key,
            "received_at": _iso(now),
        }
        try:
            self._call(self._table.create_entity, claim)
        except ResourceExistsError:
            existing = self._table.get_entity(claim["PartitionKey"], claim["RowKey"])
            row_key = existing["record_row_key"]
            record = self.get(row_key)
            if record is not None:
                return ClaimResult(record, created=False)
            # The claimer stopped before writing the record: this delivery finishes its work.
            now = _parse_time(existing["received_at"]) or now
        record = TrackedFile(
            record_id=record_id,
            row_key=row_key,
            blob=blob,
            blob_etag=clean_etag(etag),
            state=state,
            received_at=now,
            updated_at=now,
            history=((state.value, _iso(now)),),
            **fields,
        )
        try:
            metadata = self._table.create_entity(_to_entity(record))
        except ResourceExistsError:
            current = self.get(row_key)
            if current is None:
                raise
            return ClaimResult(current, created=False)
        return ClaimResult(replace(record, etag=metadata["etag"]), created=True)

    def get(self, row_key: str) -> TrackedFile | None:
        """A record by its row key, or None."""
        try:
            return _from_entity(self._call(self._table.get_entity, RECORD_PARTITION, row_key))
        except ResourceNotFoundError:
            return None

    def get_by_message_id(self, message_id: str) -> TrackedFile | None:
        """The record of an F&O message id (any case, braces allowed), or None."""
        try:
            key = normalize_message_id(message_id)
        except ValueError:
            return None
        try:
            pointer = self._call(self._table.get_entity, MESSAGE_PARTITION, key)
        except ResourceNotFoundError:
            return None
        return self.get(pointer["record_row_key"])

    def latest_for_blob(self, blob: str) -> TrackedFile | None:
        """The most recently received version of a blob path, or None."""
        claims = self._call(
            self._table.query_entities,
            "PartitionKey eq @pk",
            parameters={"pk": claim_partition(blob)},
            select=["record_row_key"],
        )
        # Record keys sort newest first, so the smallest key is the latest version.
        keys = sorted(c["record_row_key"] for c in claims)
        for key in keys:
            record = self.get(key)
            if record is not None:
                return record
        return None

    def update(self, record: TrackedFile, **changes: Any) -> TrackedFile:
        """Write changes to a record if nobody changed it since it was read.

        A change of ``state`` appends to the history; ``updated_at`` is set to now.

        :raises ConcurrencyError: the row changed since ``record`` was read.
        """
        now = utcnow()
        state = changes.get("state", record.state)
        if state != record.state:
            changes["history"] = _with_history(record, state, now)
            if state.is_terminal and "completed_at" not in changes:
                changes["completed_at"] = now
        changes["updated_at"] = now
        updated = replace(record, **changes)
        try:
            metadata = self._call(
                self._table.update_entity,
                _to_entity(updated),
                mode=UpdateMode.REPLACE,
                etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError as exc:
            raise ConcurrencyError(f"record {record.record_id} changed meanwhile") from exc
        return replace(updated, etag=metadata["etag"])

    def link_message(self, record: TrackedFile) -> None:
        """Index a record by its F&O message id (idempotent)."""
        if not record.message_id:
            raise ValueError("record has no message_id to index")
        self._call(
            self._table.upsert_entity,
            {
                "PartitionKey": MESSAGE_PARTITION,
                "RowKey": record.message_id,
                "record_row_key": record.row_key,
            },
        )

    def list_records(
        self,
        *,
        state: TrackingState | None = None,
        route: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        continuation: str | None = None,
    ) -> Page:
        """Records newest first, filtered, one page at a time.

        :keyword continuation: a token from the previous page.
        :raises ValueError: a continuation token this store did not issue.
        """
        clauses = ["PartitionKey eq @pk"]
        params: dict[str, Any] = {"pk": RECORD_PARTITION}
        if continuation:
            clauses.append("RowKey gt @after")
            params["after"] = decode_continuation(continuation)
        if since:
            clauses.append("RowKey le @since")
            params["since"] = _since_bound(since)
        if state:
            clauses.append("state eq @state")
            params["state"] = state.value
        if route:
            clauses.append("route eq @route")
            params["route"] = route
        rows = self._call(
            self._table.query_entities,
            " and ".join(clauses),
            parameters=params,
            results_per_page=min(limit + 1, 1000),
        )
        found: list[TrackedFile] = []
        more = False
        for entity in rows:
            if len(found) == limit:
                more = True
                break
            found.append(_from_entity(entity))
        token = encode_continuation(found[-1].row_key) if more and found else None
        return Page(tuple(found), token)

    # -- execution errors -----------------------------------------------------------------

    def store_errors(
        self, record: TrackedFile, errors: Sequence[ExecutionError], raw: str
    ) -> dict[str, Any]:
        """Fields for a record holding these errors: inline when they fit, else in a blob.

        The raw text F&O sent is always kept, inline or beside the parsed list in the blob.
        """
        encoded = _encode_errors(errors)
        if len(encoded) <= INLINE_TEXT_LIMIT and len(raw) <= INLINE_TEXT_LIMIT:
            return {
                "errors": tuple(errors),
                "error_count": len(errors),
                "errors_raw": raw,
                "errors_blob": None,
            }
        if self._errors is None:
            raise TrackingStoreError("execution errors too large for a row and no errors container")
        base = f"{record.message_id or record.record_id}"
        self._errors.upload_blob(
            f"{base}/errors.json", encoded.encode(), overwrite=True, encoding="utf-8"
        )
        self._errors.upload_blob(f"{base}/errors.raw.txt", raw.encode(), overwrite=True)
        preview = _preview(errors)
        _LOGGER.info(
            "execution errors stored in blob blob=%s message_id=%s count=%d",
            record.blob,
            record.message_id,
            len(errors),
        )
        return {
            "errors": preview,
            "error_count": len(errors),
            "errors_raw": None,
            "errors_blob": f"{self._errors.container_name}/{base}/errors.json",
        }

    def load_errors(self, record: TrackedFile) -> tuple[ExecutionError, ...]:
        """All errors of a record, reading the errors blob when they did not fit the row."""
        if not record.errors_blob or self._errors is None:
            return record.errors
        name = record.errors_blob.split("/", 1)[1]
        text = self._errors.download_blob(name, encoding="utf-8").readall()
        return _decode_errors(text)

    # -- the poll schedule --------------------------------------------------------------------

    def schedule(self, record: TrackedFile, due_at: datetime) -> PendingEntry:
        """Put a record on the poll schedule, or move it there (one row per record)."""
        entry = PendingEntry(
            record_id=record.record_id,
            record_row_key=record.row_key,
            due_at=due_at,
            state=record.state,
            since=record.enqueued_at or record.received_at,
            blob=record.blob,
            message_id=record.message_id,
            poll_count=record.poll_count,
            d365_status=record.d365_status,
        )
        entry = replace(entry, written_at=utcnow())
        metadata = self._call(self._table.upsert_entity, _pending_entity(entry))
        return replace(entry, etag=metadata.get("etag", ""))

    def get_pending(self, record_id: str) -> PendingEntry | None:
        """A record's schedule entry, or None when it is not scheduled."""
        try:
            return _pending_from(self._call(self._table.get_entity, PENDING_PARTITION, record_id))
        except ResourceNotFoundError:
            return None

    def due(self, now: datetime) -> list[PendingEntry]:
        """Schedule entries whose anchor has passed; the finished history is never read."""
        rows = self._call(
            self._table.query_entities,
            "PartitionKey eq @pk and due le @now",
            parameters={"pk": PENDING_PARTITION, "now": now.astimezone(UTC)},
            results_per_page=1000,
        )
        return sorted((_pending_from(row) for row in rows), key=lambda entry: entry.due_at)

    def acquire_poll_lease(self, holder: str, *, until: datetime) -> PollLease | None:
        """Become the one poller until ``until``; None while another holder's lease runs.

        One tick at a time walks the schedule (the Functions timer is a singleton too, but a
        lease in the table also holds across apps sharing a table and after lock loss). The
        lease row also keeps the watermark of the last complete tick.
        """
        now = utcnow()
        try:
            current = self._call(self._table.get_entity, LEASE_PARTITION, _POLL_LEASE)
        except ResourceNotFoundError:
            try:
                metadata = self._table.create_entity(_lease_entity(holder, until, None))
            except ResourceExistsError:
                return None
            return PollLease(holder, until, None, metadata["etag"])
        current_until = _parse_time(current.get("until")) or now
        if current_until > now and current.get("holder") != holder:
            return None
        watermark = _parse_time(current.get("watermark"))
        try:
            metadata = self._table.update_entity(
                _lease_entity(holder, until, watermark),
                mode=UpdateMode.REPLACE,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return None
        return PollLease(holder, until, watermark, metadata["etag"])

    def finish_poll_lease(self, lease: PollLease, *, watermark: datetime | None) -> None:
        """End the lease, recording ``watermark`` (None keeps the previous one).

        A lease another holder took meanwhile (this tick overran) is left alone.
        """
        entity = _lease_entity(lease.holder, utcnow(), watermark or lease.watermark)
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self._table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=lease.etag,
                match_condition=MatchConditions.IfNotModified,
            )

    def get_poll_watermark(self) -> datetime | None:
        """The watermark of the last complete tick, for reading the derived schedule."""
        try:
            row = self._call(self._table.get_entity, LEASE_PARTITION, _POLL_LEASE)
        except ResourceNotFoundError:
            return None
        return _parse_time(row.get("watermark"))

    def reschedule(self, entries: Sequence[PendingEntry]) -> list[PendingEntry]:
        """Write new due times and bookkeeping for entries this worker holds (batched)."""
        now = utcnow()
        return self._write_conditionally([replace(e, written_at=now) for e in entries])

    def unschedule(self, record_id: str) -> None:
        """Take a record off the schedule (it is terminal); a missing entry is fine."""
        with contextlib.suppress(ResourceNotFoundError):
            self._table.delete_entity(PENDING_PARTITION, record_id)

    def count_pending(self) -> int:
        """How many records are waiting on the poll schedule."""
        rows = self._call(
            self._table.query_entities,
            "PartitionKey eq @pk",
            parameters={"pk": PENDING_PARTITION},
            select=["RowKey"],
            results_per_page=1000,
        )
        return sum(1 for _ in rows)

    def _write_conditionally(self, entries: Sequence[PendingEntry]) -> list[PendingEntry]:
        """Merge the poll fields of each row if it is unchanged since read (its ``etag``).

        Batched; only the fields a poll changes are sent, as the cost of a batch is mostly the
        serialisation of its entities.
        """
        written: list[PendingEntry] = []
        for start in range(0, len(entries), BATCH_SIZE):
            chunk = entries[start : start + BATCH_SIZE]
            operations = [
                (
                    "update",
                    _poll_fields(entry),
                    {
                        "mode": UpdateMode.MERGE,
                        "etag": entry.etag,
                        "match_condition": MatchConditions.IfNotModified,
                    },
                )
                for entry in chunk
            ]
            try:
                results = self._table.submit_transaction(operations)
            except TableTransactionError:
                # Someone else changed a row of this batch: write the rest one by one.
                written.extend(self._write_each(chunk))
                continue
            written.extend(
                replace(entry, etag=result["etag"])
                for entry, result in zip(chunk, results, strict=True)
            )
        return written

    def _write_each(self, entries: Sequence[PendingEntry]) -> list[PendingEntry]:
        written = []
        for entry in entries:
            try:
                metadata = self._table.update_entity(
                    _poll_fields(entry),
                    mode=UpdateMode.MERGE,
                    etag=entry.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
            written.append(replace(entry, etag=metadata["etag"]))
        return written

    # -- helpers ---------------------------------------------------------------------------

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "TableNotFound":
                raise TrackingStoreError(
                    f"status table {self.table_name!r} does not exist; it is created on the "
                    "first run (STATUS_TABLE names it), or create it with "
                    f"`az storage table create --name {self.table_name}`"
                ) from exc
            raise


def _pending_entity(entry: PendingEntry) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": PENDING_PARTITION,
        "RowKey": entry.record_id,
        "record_row_key": entry.record_row_key,
        "due": entry.due_at.astimezone(UTC),
        "state": entry.state.value,
        "since": entry.since.astimezone(UTC),
        "blob": entry.blob,
        "poll_count": entry.poll_count,
        "message_id": entry.message_id,
        "d365_status": entry.d365_status,
        # Every write of an entry is a new anchor of its schedule: the poller reads it so.
        "written_at": (entry.written_at or utcnow()).astimezone(UTC),
    }
    return {k: v for k, v in entity.items() if v is not None}


def _lease_entity(holder: str, until: datetime, watermark: datetime | None) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": LEASE_PARTITION,
        "RowKey": _POLL_LEASE,
        "holder": holder,
        "until": until.astimezone(UTC),
    }
    if watermark is not None:
        entity["watermark"] = watermark.astimezone(UTC)
    return entity


_POLL_FIELDS = ("due", "state", "poll_count", "d365_status", "written_at")


def _poll_fields(entry: PendingEntry) -> dict[str, Any]:
    entity = _pending_entity(entry)
    keys = ("PartitionKey", "RowKey", *_POLL_FIELDS)
    return {key: entity[key] for key in keys if key in entity}


def _pending_from(row: Any) -> PendingEntry:
    return PendingEntry(
        record_id=row["RowKey"],
        record_row_key=row["record_row_key"],
        due_at=_parse_time(row["due"]) or utcnow(),
        state=TrackingState.parse(row["state"]),
        since=_parse_time(row["since"]) or utcnow(),
        blob=row["blob"],
        message_id=row.get("message_id"),
        poll_count=int(row.get("poll_count") or 0),
        d365_status=row.get("d365_status"),
        written_at=_parse_time(row.get("written_at")),
        etag=row.metadata["etag"],
    )


def _preview(errors: Sequence[ExecutionError]) -> tuple[ExecutionError, ...]:
    kept: list[ExecutionError] = []
    size = 2
    for error in errors:
        size += len(json.dumps(error_to_dict(error), ensure_ascii=False)) + 1
        if size > INLINE_TEXT_LIMIT:
            break
        kept.append(error)
    return tuple(kept)
