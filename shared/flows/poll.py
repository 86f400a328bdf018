"""One timer tick: follow the messages that are due until F&O has processed them.

A tick first takes the poll lease, a row in the status table written with its ETag, so two
ticks (two instances, or an overrun) never walk the schedule at once; record writes are
conditional on their ETags as well. It reads only the due part of the schedule (never the
finished history) and polls with bounded concurrency. Each message's poll times back off from
``POLL_INTERVAL_MIN`` to ``POLL_INTERVAL_MAX`` and are derived from its anchor, so a poll that
changes nothing writes nothing (see :meth:`PollPolicy.is_due`); past ``MAX_PENDING_AGE`` it is
``TimedOut``. One message's failure never stops the others, and the tick stops starting new
work when its time budget is spent; what it did not reach is anchored due for the next tick.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError
from opentelemetry import context as otel_context

from shared import telemetry
from shared.clients.d365 import D365Client, D365Error, D365HttpError, MessageStatus
from shared.config import Settings
from shared.flows.enqueue import Enqueuer, default_backoff
from shared.flows.package import PackageImporter
from shared.flows.source_blob import Archiver, is_permanent
from shared.tracking import (
    BATCH_SIZE,
    UNSCHEDULE,
    Backoff,
    ConcurrencyError,
    PendingEntry,
    TrackedFile,
    TrackingState,
    TrackingStore,
    utcnow,
)

__all__ = ["Outcome", "PollPolicy", "Poller", "TickReport"]

_LOGGER = logging.getLogger(__name__)

_STATE_OF_STATUS = {
    MessageStatus.ENQUEUED: TrackingState.ENQUEUED,
    MessageStatus.PREPROCESSING: TrackingState.PREPROCESSING,
    MessageStatus.PROCESSING: TrackingState.PROCESSING,
    MessageStatus.PROCESSED: TrackingState.PROCESSED,
    MessageStatus.PROCESSED_WITH_ERRORS: TrackingState.PROCESSED_WITH_ERRORS,
    MessageStatus.PRE_PROCESSING_ERROR: TrackingState.PRE_PROCESSING_ERROR,
    MessageStatus.POST_PROCESSING_FAILED: TrackingState.POST_PROCESSING_FAILED,
}


class Outcome(StrEnum):
    """What one poll of one message did."""

    POLLED = "polled"
    FINISHED = "finished"
    RECOVERED = "recovered"
    SKIPPED = "skipped"
    FAILED = "failed"
    DEFERRED = "deferred"


@dataclass(frozen=True)
class PollPolicy:
    """Concurrency, budget and back-off of the poller.

    :ivar archive_attempts: archive tries before the file is left where it is, with the reason.
    """

    concurrency: int = Settings.poll_concurrency
    tick_budget: timedelta = Settings.poll_tick_budget
    backoff: Backoff = field(default_factory=default_backoff)
    max_pending_age: timedelta = Settings.max_pending_age
    lease_margin: timedelta = timedelta(minutes=2)
    archive_attempts: int = 8


@dataclass(frozen=True)
class _Result:
    """What polling one entry did, and its next schedule entry (None when it left the schedule)."""

    outcome: Outcome
    next_entry: PendingEntry | None = None


@dataclass(frozen=True)
class TickReport:
    """What a tick did: counts per outcome and its duration."""

    due: int
    counts: dict[str, int]
    seconds: float

    def __str__(self) -> str:
        parts = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        return f"due={self.due} {parts} seconds={self.seconds:.2f}"


class Poller:
    """Polls F&O for every due message and records the outcome.

    :param store: the tracking store.
    :param client: the F&O client.
    :param enqueuer: finishes abandoned claims that come due.
    :param archiver: files finished blobs away.
    :keyword policy: concurrency, budget and back-off.
    :keyword clock: the time source (UTC).
    :keyword packages: follows package imports (``Importing`` records) by execution id.
    """

    def __init__(
        self,
        store: TrackingStore,
        client: D365Client,
        enqueuer: Enqueuer,
        archiver: Archiver,
        *,
        policy: PollPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        packages: PackageImporter | None = None,
    ) -> None:
        self._packages = packages
        self._store = store
        self._client = client
        self._enqueuer = enqueuer
        self._archiver = archiver
        self._policy = policy or PollPolicy()
        self._clock = clock
        self._process = f"{socket.gethostname()}:{os.getpid()}"

    @property
    def policy(self) -> PollPolicy:
        """The concurrency, budget and back-off in force."""
        return self._policy

    def tick(self) -> TickReport:
        """Poll every due message once, within the time budget; skip if another tick runs.

        A poll that changes nothing writes nothing: an entry's later poll times follow from
        its anchor and back-off, and the tick records only its watermark (its start) once it
        has polled everything due. Changes, failures and deferred entries are written as new
        anchors.
        """
        started = time.monotonic()
        budget = self._policy.tick_budget
        lease = self._store.schedule.lease.acquire(
            # One holder per tick: two ticks of one process exclude each other too.
            f"{self._process}:{uuid.uuid4().hex[:12]}",
            until=self._clock() + budget + self._policy.lease_margin,
        )
        if lease is None:
            _LOGGER.info(
                "poll tick skipped: another tick holds the poll lease",
                extra=telemetry.log_ids(event="poll_tick", skipped=True),
            )
            seconds = time.monotonic() - started
            telemetry.record_tick(due=0, seconds=seconds, skipped=True)
            return TickReport(0, {"lease_held_elsewhere": 1}, seconds)
        watermark = None
        try:
            now = self._clock()
            counts = self._walk(now, lease.watermark, started + budget.total_seconds())
            # Every due entry was polled, or anchored again (deferred, failed).
            watermark = now
        finally:
            self._store.schedule.lease.release(lease, watermark=watermark)
        report = TickReport(sum(counts.values()), dict(counts), time.monotonic() - started)
        _LOGGER.info(
            "poll tick %s",
            report,
            extra=telemetry.log_ids(event="poll_tick", due=report.due, seconds=report.seconds),
        )
        telemetry.record_tick(due=report.due, seconds=report.seconds, skipped=False)
        self._record_backlog()
        return report

    def _record_backlog(self) -> None:
        """Set the pending gauges (one scan of the schedule), only when telemetry is on."""
        if not telemetry.enabled():
            return
        try:
            count, oldest = self._store.schedule.backlog()
        except AzureError as exc:
            _LOGGER.warning("pending backlog not measured: %s", _storage_reason(exc))
            return
        telemetry.record_backlog(count, oldest, self._clock())

    def _walk(self, now: datetime, watermark: datetime | None, deadline: float) -> Counter[str]:
        backoff = self._policy.backoff
        candidates = self._store.schedule.due(now)
        # Each entry as of this poll: poll_count counts the polls made before it.
        entries = [
            replace(e, poll_count=backoff.progress(e, watermark)[0])
            for e in candidates
            if backoff.is_due(e, watermark, now)
        ]
        counts: Counter[str] = Counter()
        # The pool's threads do not inherit the tick's span; each poll is a child of it.
        parent = otel_context.get_current()

        def work(entry: PendingEntry) -> _Result:
            if time.monotonic() > deadline:
                # Written as a new anchor due now, so the next tick takes it first.
                return _Result(Outcome.DEFERRED, replace(entry, due_at=self._clock()))
            token = otel_context.attach(parent)
            try:
                with telemetry.span(
                    "poll message",
                    blob=entry.blob,
                    message_id=entry.message_id,
                    record_id=entry.record_id,
                ) as current:
                    result = self._poll_entry(entry)
                    current.set_attribute("outcome", result.outcome.value)
                    return result
            finally:
                otel_context.detach(token)

        writes: list[PendingEntry] = []
        workers = max(1, min(self._policy.concurrency, len(entries)))
        with ThreadPoolExecutor(workers, thread_name_prefix="poll") as pool:
            for result in pool.map(work, entries):
                counts[result.outcome.value] += 1
                if result.next_entry is not None:
                    writes.append(result.next_entry)
                if len(writes) >= BATCH_SIZE:
                    self._reschedule(writes)
                    writes = []
        self._reschedule(writes)
        return counts

    def _reschedule(self, entries: list[PendingEntry]) -> None:
        """New anchors for entries; when they cannot be written, the old ones still hold, so
        those entries are simply due again."""
        try:
            self._store.schedule.reschedule(entries)
        except AzureError as exc:
            _LOGGER.warning(
                "schedule not rewritten for %d entries: %s",
                len(entries),
                exc,
                extra=telemetry.log_ids(event="schedule_not_rewritten"),
            )

    # -- one entry ---------------------------------------------------------------------------

    def _poll_entry(self, entry: PendingEntry) -> _Result:
        try:
            return self._poll(entry)
        except ConcurrencyError:
            _LOGGER.info(
                "record changed by another worker blob=%s", entry.blob, extra=_entry_ids(entry)
            )
            return _Result(Outcome.SKIPPED)
        except Exception:
            # Anchored again with back-off, so a later tick retries it; the others go on.
            _LOGGER.exception(
                "poll failed blob=%s message_id=%s",
                entry.blob,
                entry.message_id,
                extra=_entry_ids(entry),
            )
            polls = entry.poll_count + 1
            due = self._clock() + self._policy.backoff.next_interval(polls)
            return _Result(Outcome.FAILED, replace(entry, due_at=due, poll_count=polls))

    def _record(self, entry: PendingEntry) -> TrackedFile | None:
        """The entry's record if it still needs polling; else the entry leaves the schedule.

        A final record whose blob was not filed away yet (an archive to retry, or a stop right
        after the final write) is filed away now.
        """
        record = self._store.get(entry.record_row_key)
        if record is not None and record.state.is_terminal and record.archive_pending:
            self._file_away(record)
            return None
        if record is None or record.state.is_terminal:
            if record is None:
                _LOGGER.error(
                    "schedule entry without a record blob=%s", entry.blob, extra=_entry_ids(entry)
                )
            # Only if unchanged: a writer that scheduled it again meanwhile wins.
            self._store.schedule.remove(entry)
            return None
        return record

    def _when_tracked(
        self, entry: PendingEntry, action: Callable[[TrackedFile], _Result]
    ) -> _Result:
        record = self._record(entry)
        return _Result(Outcome.SKIPPED) if record is None else action(record)

    def _poll(self, entry: PendingEntry) -> _Result:
        if entry.state is TrackingState.IMPORTING:
            return self._when_tracked(entry, lambda record: self._follow_import(record, entry))
        return self._poll_message(entry)

    def _poll_message(self, entry: PendingEntry) -> _Result:
        if entry.state is TrackingState.RECEIVED or not entry.message_id:
            return self._when_tracked(entry, self._recover)
        if self._clock() - entry.since > self._policy.max_pending_age:
            return self._when_tracked(entry, lambda record: self._time_out(record, entry))
        try:
            result = self._client.get_message_status(entry.message_id)
        except D365Error as exc:
            return self._retry_later(entry, exc)
        status = result.status
        if status is None:
            _LOGGER.warning(
                "unknown F&O status %r blob=%s message_id=%s",
                result.raw,
                entry.blob,
                entry.message_id,
                extra=_entry_ids(entry, d365_status=result.raw),
            )
        elif status.is_terminal:
            return self._when_tracked(
                entry, lambda record: self._terminal(record, entry, status, result.raw)
            )
        state = _STATE_OF_STATUS.get(status, entry.state) if status else entry.state
        if state is entry.state and result.raw == entry.d365_status:
            return _Result(Outcome.POLLED)
        return self._when_tracked(
            entry, lambda record: self._progressed(record, entry, state, result.raw)
        )

    def _progressed(
        self, record: TrackedFile, entry: PendingEntry, state: TrackingState, raw: str
    ) -> _Result:
        self._reanchor(record, entry, state=state, d365_status=raw, last_error=None)
        _LOGGER.info(
            "status blob=%s message_id=%s d365_status=%s",
            entry.blob,
            entry.message_id,
            raw,
            extra=_entry_ids(entry, state=state.value, d365_status=raw),
        )
        return _Result(Outcome.POLLED)

    def _follow_import(self, record: TrackedFile, entry: PendingEntry) -> _Result:
        """One look at a package import's execution (see shared.flows.package, step 6)."""
        if self._clock() - entry.since > self._policy.max_pending_age:
            return self._time_out(record, entry)
        if self._packages is None:
            return _Result(Outcome.SKIPPED)
        try:
            result = self._packages.follow(record)
        except (D365Error, AzureError) as exc:
            return self._retry_later(entry, exc)
        if result.final is not None:
            self._complete(record, entry, **result.final)
            return _Result(Outcome.FINISHED)
        if result.raw != record.d365_status:
            self._reanchor(record, entry, d365_status=result.raw)
        return _Result(Outcome.POLLED)

    def _recover(self, record: TrackedFile) -> _Result:
        self._enqueuer.recover(record)
        return _Result(Outcome.RECOVERED)

    def _time_out(self, record: TrackedFile, entry: PendingEntry) -> _Result:
        self._complete(
            record,
            entry,
            state=TrackingState.TIMED_OUT,
            last_error=(
                f"F&O reported no final status within {self._policy.max_pending_age} "
                f"(last status {entry.d365_status!r}); check the message in F&O and the "
                "job's batch processing; MAX_PENDING_AGE sets this limit"
                if record.api is None
                else f"F&O reported no final status of execution {record.execution_id} within "
                f"{self._policy.max_pending_age} (last status {record.d365_status!r}); the "
                "import may never have started (a stop before ImportFromPackage) or may still "
                "run: look for that execution id in Data management > Job history; "
                "MAX_PENDING_AGE sets this limit"
            ),
        )
        return _Result(Outcome.FINISHED)

    def _terminal(
        self, record: TrackedFile, entry: PendingEntry, status: MessageStatus, raw: str
    ) -> _Result:
        message_id = record.message_id or ""
        try:
            execution_id = self._client.get_execution_id(message_id)
            errors_fields: dict[str, Any] = {}
            if execution_id:
                errors = self._client.get_execution_errors(execution_id)
                errors_fields = self._store.store_errors(record, errors.errors, errors.raw)
        except D365Error as exc:
            return self._retry_later(entry, exc)
        # F&O may report a final status a moment before it hands out the execution id: poll
        # once more before finishing without row-level errors. A file that failed
        # pre-processing may never get an execution.
        first_sighting = (entry.d365_status or "").lower() != raw.lower()
        waiting_for_id = status is not MessageStatus.PRE_PROCESSING_ERROR and first_sighting
        if execution_id is None and waiting_for_id:
            _LOGGER.info(
                "final status without execution id yet blob=%s message_id=%s",
                record.blob,
                message_id,
                extra=_entry_ids(entry, d365_status=raw),
            )
            self._reanchor(record, entry, d365_status=raw)
            return _Result(Outcome.POLLED)
        self._complete(
            record,
            entry,
            state=_STATE_OF_STATUS[status],
            d365_status=raw,
            execution_id=execution_id,
            **errors_fields,
        )
        return _Result(Outcome.FINISHED)

    # -- writes ---------------------------------------------------------------------------------

    def _reanchor(
        self,
        record: TrackedFile,
        entry: PendingEntry,
        *,
        delay: timedelta | None = None,
        **changes: Any,
    ) -> None:
        """Write the record's changes and its next poll (a new anchor) in one transaction."""
        polls = entry.poll_count + 1
        due = self._clock() + (delay or self._policy.backoff.next_interval(polls))
        self._store.update(record, poll_count=polls, schedule_at=due, **changes)

    def _complete(self, record: TrackedFile, entry: PendingEntry, **changes: Any) -> None:
        # Still scheduled, due now: a stop before the archive is finished by the next tick.
        record = self._store.update(
            record,
            poll_count=entry.poll_count + 1,
            archive_pending=True,
            schedule_at=self._clock(),
            **changes,
        )
        _LOGGER.info(
            "finished blob=%s message_id=%s execution_id=%s state=%s errors=%d",
            record.blob,
            record.message_id,
            record.execution_id,
            record.state.value,
            record.error_count,
            extra=telemetry.record_ids(
                record,
                event="file_finished",
                error_count=record.error_count,
                # The distinct messages (of the row's preview) for the workbook's top errors.
                row_errors=json.dumps(sorted({e.message[:200] for e in record.errors})[:20]),
            ),
        )
        telemetry.record_outcome(record.state.value, record.route)
        self._file_away(record)

    def _file_away(self, record: TrackedFile) -> None:
        """Archive (or stamp) a final record's blob, then take it off the schedule.

        A failure a retry can cure is retried with back-off, up to ``archive_attempts``; any
        other ends the archiving with its reason in ``archive_error`` (the file stays put).
        """
        attempts = record.archive_attempts + 1
        try:
            result = self._archiver.finish(record)
        except AzureError as exc:
            permanent = isinstance(exc, HttpResponseError) and is_permanent(exc)
            why = _storage_reason(exc)
            if permanent or attempts >= self._policy.archive_attempts:
                self._archive_done(
                    record,
                    attempts,
                    None,
                    f"not archived: {why}; it stays in "
                    f"{self._archiver.inbound_container}/{record.blob}",
                )
                return
            self._archive_later(record, attempts, f"not archived yet ({why}); retried")
            return
        if result.retry:
            if attempts >= self._policy.archive_attempts:
                self._archive_done(
                    record,
                    attempts,
                    None,
                    "not archived: the copy did not "
                    f"complete; it stays in {self._archiver.inbound_container}/"
                    f"{record.blob}",
                )
            else:
                self._archive_later(record, attempts, "not archived yet (copy in progress)")
            return
        self._archive_done(record, attempts, result.archived_to, result.note)

    def _archive_done(
        self, record: TrackedFile, attempts: int, archived_to: str | None, note: str | None
    ) -> None:
        self._store.update(
            record,
            archived_to=archived_to,
            archive_pending=False,
            archive_attempts=attempts,
            archive_error=note,
            schedule_at=UNSCHEDULE,
        )
        if note:
            _LOGGER.warning(
                "archive ended blob=%s: %s",
                record.blob,
                note,
                extra=telemetry.record_ids(record),
            )

    def _archive_later(self, record: TrackedFile, attempts: int, note: str) -> None:
        due = self._clock() + self._policy.backoff.next_interval(attempts)
        self._store.update(record, archive_attempts=attempts, archive_error=note, schedule_at=due)
        _LOGGER.warning(
            "archive retried blob=%s: %s",
            record.blob,
            note,
            extra=telemetry.record_ids(record),
        )

    def _retry_later(self, entry: PendingEntry, exc: D365Error | AzureError) -> _Result:
        retry_after = exc.retry_after if isinstance(exc, D365HttpError) else None
        delay = self._policy.backoff.next_interval(entry.poll_count + 1)
        if retry_after:
            delay = max(delay, timedelta(seconds=retry_after))
        _LOGGER.warning(
            "poll failed, retry in %ss blob=%s message_id=%s: %s",
            int(delay.total_seconds()),
            entry.blob,
            entry.message_id,
            exc,
            extra=_entry_ids(entry),
        )
        record = self._record(entry)
        if record is None:
            return _Result(Outcome.SKIPPED)
        self._reanchor(record, entry, delay=delay, last_error=str(exc))
        return _Result(Outcome.FAILED)


def _entry_ids(entry: PendingEntry, **more: Any) -> dict[str, Any]:
    """A schedule entry's correlation ids as log-record attributes."""
    return telemetry.log_ids(
        **{
            "blob": entry.blob,
            "record_id": entry.record_id,
            "message_id": entry.message_id,
            "state": entry.state.value,
            **more,
        }
    )


def _storage_reason(exc: AzureError) -> str:
    if isinstance(exc, HttpResponseError):
        code = getattr(exc, "error_code", None) or exc.reason
        return f"storage answered {exc.status_code} {code}"
    return f"storage unreachable ({type(exc).__name__})"
