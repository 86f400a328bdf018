"""Messages of the emulated environment: the import lifecycle on the emulator clock, the export
queue with its visibility timeout, and forced outcomes."""

from __future__ import annotations

import enum
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ._models import ExecutionErrorRecord, ForcedOutcomes, Job, Message, MessageState, Outcome

ZERO_GUID = "00000000-0000-0000-0000-000000000000"


@dataclass
class _Stored:
    """Mutable bookkeeping for one message; read through `Message` snapshots."""

    message_id: str
    job: Job
    entity: str
    company: str
    external_id: str | None
    body_path: Path | None
    body_size: int
    enqueued_at: datetime
    is_export: bool = False
    started_at: datetime | None = None
    durations: tuple[float, float, float] = (0.0, 0.0, 0.0)
    execution_suffix: str = ""
    outcome: Outcome | None = None
    pop_receipt: str | None = None
    last_dequeued_at: datetime | None = None
    downloaded: bool = False
    acked: bool = False
    file_lost: bool = False

    def phase_ends(self) -> tuple[datetime, datetime, datetime] | None:
        """When Enqueued, Preprocessing and Processing end; None while the job is disabled."""
        if self.started_at is None:
            return None
        enqueued, preprocessing, processing = self.durations
        end_enqueued = self.started_at + timedelta(seconds=enqueued)
        end_pre = end_enqueued + timedelta(seconds=preprocessing)
        return end_enqueued, end_pre, end_pre + timedelta(seconds=processing)


class AckResult(enum.StrEnum):
    """What an ack did."""

    ACKED = "acked"
    UNKNOWN = "unknown"
    STALE = "stale"


class MessageStore:
    """Thread-safe store of import and export messages."""

    def __init__(self, evaluate: Callable[[Job, str, str, Path | None], Outcome]) -> None:
        self._lock = threading.Lock()
        self._messages: dict[str, _Stored] = {}
        self._exports: dict[str, list[str]] = {}
        self._evaluate = evaluate
        self.forced = ForcedOutcomes()

    # -- imports ----------------------------------------------------------------------------

    def add_import(
        self,
        job: Job,
        *,
        entity: str,
        company: str,
        external_id: str | None,
        body_path: Path,
        body_size: int,
        now: datetime,
        durations: tuple[float, float, float],
    ) -> str:
        """Record an enqueued file; answer its message id."""
        stored = _Stored(
            message_id=str(uuid.uuid4()),
            job=job,
            entity=entity,
            company=company,
            external_id=external_id,
            body_path=body_path,
            body_size=body_size,
            enqueued_at=now,
            started_at=now if job.enabled else None,
            durations=durations,
            execution_suffix=secrets.token_hex(16).upper(),
        )
        with self._lock:
            self._messages[stored.message_id] = stored
        return stored.message_id

    def start_pending(self, activity_id: str, now: datetime) -> None:
        """The job was enabled: messages waiting for it start their lifecycle now."""
        with self._lock:
            for stored in self._messages.values():
                if stored.job.activity_id == activity_id and stored.started_at is None:
                    stored.started_at = now

    def status(self, message_id: str, now: datetime) -> str | None:
        """The message's status now, None for an unknown id."""
        with self._lock:
            stored = self._messages.get(message_id)
        if stored is None:
            return None
        if stored.is_export:
            return self._export_status(stored).value
        phase = self._phase(stored, now)
        if phase is not None:
            return phase.value
        return self._outcome(stored).status

    def execution_id(self, message_id: str, now: datetime) -> str | None:
        """The DMF execution id once pre-processing began, the zero GUID before; None: unknown."""
        with self._lock:
            stored = self._messages.get(message_id)
        if stored is None:
            return None
        return self._started_execution(stored, now) or ZERO_GUID

    def find_execution(self, execution_id: str, now: datetime) -> tuple[str, Outcome | None] | None:
        """(status, outcome when terminal) of the message an execution id belongs to."""
        with self._lock:
            candidates = list(self._messages.values())
        for stored in candidates:
            if stored.is_export or not execution_id.endswith(stored.execution_suffix):
                continue
            if self._started_execution(stored, now) != execution_id:
                continue
            phase = self._phase(stored, now)
            if phase is not None:
                return phase.value, None
            outcome = self._outcome(stored)
            return outcome.status, outcome
        return None

    def get(self, message_id: str, now: datetime) -> Message | None:
        """One message as it is now, None for an unknown id."""
        with self._lock:
            stored = self._messages.get(message_id)
        return None if stored is None else self._snapshot_of(stored, now)

    def snapshot(self, now: datetime) -> dict[str, Message]:
        """All messages as they are now."""
        with self._lock:
            ids = list(self._messages)
        return {mid: message for mid in ids if (message := self.get(mid, now)) is not None}

    def force(self, key: str, outcome: Outcome) -> None:
        """Force the outcome of a message id, or of every later-finishing message of a job."""
        with self._lock:
            stored = self._messages.get(key)
            if stored is not None:
                self.forced.by_message[key] = outcome
                stored.outcome = None
            else:
                self.forced.by_activity[key] = outcome

    # -- exports ----------------------------------------------------------------------------

    def add_export(self, job: Job, body_path: Path, body_size: int, now: datetime) -> str:
        """Put an exported file on a job's queue; answer its correlation (message) id."""
        stored = _Stored(
            message_id=str(uuid.uuid4()),
            job=job,
            entity=job.entity,
            company=job.company,
            external_id=None,
            body_path=body_path,
            body_size=body_size,
            enqueued_at=now,
            is_export=True,
        )
        with self._lock:
            self._messages[stored.message_id] = stored
            self._exports.setdefault(job.activity_id, []).append(stored.message_id)
        return stored.message_id

    def dequeue(
        self, activity_id: str, now: datetime, redelivery_seconds: float
    ) -> tuple[Message, str, datetime | None] | None:
        """Next visible export of a job: (message, pop receipt, previous dequeue time)."""
        with self._lock:
            for message_id in self._exports.get(activity_id, []):
                stored = self._messages[message_id]
                if stored.acked:
                    continue
                last = stored.last_dequeued_at
                if last is not None and now < last + timedelta(seconds=redelivery_seconds):
                    continue
                stored.last_dequeued_at = now
                stored.pop_receipt = secrets.token_urlsafe(24)
                return self._snapshot_of(stored, now), stored.pop_receipt, last
        return None

    def export_file(self, correlation_id: str) -> Path | None:
        """The file of an export and mark it downloaded; None for an unknown id, or one whose
        file was lost."""
        with self._lock:
            stored = self._messages.get(correlation_id)
            if stored is None or not stored.is_export or stored.file_lost:
                return None
            stored.downloaded = True
            return stored.body_path

    def lose_export_file(self, correlation_id: str) -> None:
        """From now on the export's download answers 404, as when F&O cleaned its file up;
        the message is still dequeued."""
        with self._lock:
            self._messages[correlation_id].file_lost = True

    def ack(self, activity_id: str, correlation_id: str, pop_receipt: str) -> AckResult:
        """Acknowledge an export; a stale pop receipt (re-delivered since) is refused."""
        with self._lock:
            stored = self._messages.get(correlation_id)
            if stored is None or not stored.is_export or stored.job.activity_id != activity_id:
                return AckResult.UNKNOWN
            if stored.acked:
                return AckResult.ACKED
            if pop_receipt != stored.pop_receipt:
                return AckResult.STALE
            stored.acked = True
            return AckResult.ACKED

    # -- internals --------------------------------------------------------------------------

    def clear(self) -> list[Path]:
        """Forget every message and forced outcome; answer the files to delete."""
        with self._lock:
            paths = [s.body_path for s in self._messages.values() if s.body_path is not None]
            self._messages.clear()
            self._exports.clear()
            self.forced = ForcedOutcomes()
        return paths

    @staticmethod
    def _phase(stored: _Stored, now: datetime) -> MessageState | None:
        """The non-terminal state now, None once processing has ended."""
        ends = stored.phase_ends()
        if ends is None or now < ends[0]:
            return MessageState.ENQUEUED
        if now < ends[1]:
            return MessageState.PREPROCESSING
        if now < ends[2]:
            return MessageState.PROCESSING
        return None

    @staticmethod
    def _export_status(stored: _Stored) -> MessageState:
        if stored.acked:
            return MessageState.ACKED
        if stored.downloaded:
            return MessageState.DOWNLOADED
        if stored.last_dequeued_at is not None:
            return MessageState.DEQUEUED
        return MessageState.ENQUEUED

    def _outcome(self, stored: _Stored) -> Outcome:
        with self._lock:
            forced = self.forced.by_message.get(stored.message_id)
            if forced is not None:
                return forced
            if stored.outcome is not None:
                return stored.outcome
            forced = self.forced.by_activity.get(stored.job.activity_id)
        # Parse outside the lock: a big file must not stall other requests.
        outcome = forced or self._evaluate(
            stored.job, stored.entity, stored.company, stored.body_path
        )
        with self._lock:
            if stored.outcome is None:
                stored.outcome = outcome
            return stored.outcome

    @staticmethod
    def _started_execution(stored: _Stored, now: datetime) -> str | None:
        """The execution id, once pre-processing has begun (its start is in the id)."""
        ends = stored.phase_ends()
        if stored.is_export or ends is None or now < ends[0]:
            return None
        return f"{stored.job.data_project}-{ends[0]:%Y-%m-%dT%H:%M:%S}-{stored.execution_suffix}"

    def _snapshot_of(self, stored: _Stored, now: datetime) -> Message:
        """A snapshot; for an import this may evaluate the file, so never call it locked."""
        errors: tuple[ExecutionErrorRecord, ...] = ()
        phase = None if stored.is_export else self._phase(stored, now)
        if stored.is_export:
            state = self._export_status(stored).value
        elif phase is not None:
            state = phase.value
        else:
            outcome = self._outcome(stored)
            state, errors = outcome.status, outcome.errors
        return Message(
            message_id=stored.message_id,
            activity_id=stored.job.activity_id,
            entity=stored.entity,
            company=stored.company,
            external_id=stored.external_id,
            state=state,
            execution_id=self._started_execution(stored, now),
            errors=errors,
            body_path=str(stored.body_path) if stored.body_path else None,
            body_size=stored.body_size,
            enqueued_at=stored.enqueued_at,
        )
