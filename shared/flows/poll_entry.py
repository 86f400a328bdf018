"""One poll of one schedule entry, written as its record's next state.

A poll that changes nothing writes nothing (the entry's next poll time follows from its
anchor); a change, a failure or a final status is written with the record's next poll (a new
anchor) in one transaction; past ``MAX_PENDING_AGE`` the file is ``TimedOut``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from azure.core.exceptions import AzureError

from shared import telemetry
from shared.clients.d365 import D365Client, D365Error, MessageStatus, honour_retry_after
from shared.flows.filing import Filing
from shared.flows.intake import Intake
from shared.flows.line import blocked_note
from shared.flows.package.follow import ImportFollower
from shared.flows.policies import PollPolicy
from shared.tracking import (
    IMPORT_CALL_STATUS,
    ConcurrencyError,
    PendingEntry,
    TrackedFile,
    TrackingState,
    TrackingStore,
)

__all__ = ["EntryPoller", "EntryResult", "Outcome"]

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
class EntryResult:
    """What polling one entry did, and its next schedule entry (None when it left the schedule)."""

    outcome: Outcome
    next_entry: PendingEntry | None = None


class EntryPoller:
    """Polls one due entry: F&O's status of its message or package import, or its recovery.

    :param store: the tracking store.
    :param client: the F&O client.
    :param intake: finishes abandoned claims that come due.
    :param filing: files finished blobs away.
    :keyword policy: back-off and age limit.
    :keyword clock: the time source (UTC).
    :keyword packages: follows package imports (``Importing`` records) by execution id.
    """

    def __init__(
        self,
        store: TrackingStore,
        client: D365Client,
        intake: Intake,
        filing: Filing,
        *,
        policy: PollPolicy,
        clock: Callable[[], datetime],
        packages: ImportFollower | None,
    ) -> None:
        self._store = store
        self._client = client
        self._intake = intake
        self._filing = filing
        self._policy = policy
        self._clock = clock
        self._packages = packages

    def poll(self, entry: PendingEntry) -> EntryResult:
        """Poll ``entry`` once; a failure is anchored again with back-off, never raised."""
        try:
            return self._poll(entry)
        except ConcurrencyError:
            _LOGGER.info(
                "record changed by another worker blob=%s",
                entry.blob,
                extra=telemetry.record_ids(entry),
            )
            return EntryResult(Outcome.SKIPPED)
        except Exception:
            # Anchored again with back-off, so a later tick retries it; the others go on.
            _LOGGER.exception(
                "poll failed blob=%s message_id=%s",
                entry.blob,
                entry.message_id,
                extra=telemetry.record_ids(entry),
            )
            polls = entry.poll_count + 1
            due = self._clock() + self._policy.backoff.next_interval(polls)
            return EntryResult(Outcome.FAILED, replace(entry, due_at=due, poll_count=polls))

    def _record(self, entry: PendingEntry) -> TrackedFile | None:
        """The entry's record if it still needs polling; else the entry leaves the schedule.

        A final record whose blob was not filed away yet (an archive to retry, or a stop right
        after the final write) is filed away now.
        """
        record = self._store.get(entry.record_row_key)
        if record is not None and record.state.is_terminal and record.archive_pending:
            self._filing.file_away(record)
            return None
        if record is None or record.state.is_terminal:
            if record is None:
                _LOGGER.error(
                    "schedule entry without a record blob=%s",
                    entry.blob,
                    extra=telemetry.record_ids(entry),
                )
            # Only if unchanged: a writer that scheduled it again meanwhile wins.
            self._store.schedule.remove(entry)
            return None
        return record

    def _when_tracked(
        self, entry: PendingEntry, action: Callable[[TrackedFile], EntryResult]
    ) -> EntryResult:
        record = self._record(entry)
        return EntryResult(Outcome.SKIPPED) if record is None else action(record)

    def _poll(self, entry: PendingEntry) -> EntryResult:
        if entry.state is TrackingState.IMPORTING:
            return self._when_tracked(entry, lambda record: self._follow_import(record, entry))
        return self._poll_message(entry)

    def _poll_message(self, entry: PendingEntry) -> EntryResult:
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
                extra=telemetry.record_ids(entry, d365_status=result.raw),
            )
        elif status.is_terminal:
            return self._when_tracked(
                entry, lambda record: self._terminal(record, entry, status, result.raw)
            )
        state = _STATE_OF_STATUS.get(status, entry.state) if status else entry.state
        if state is entry.state and result.raw == entry.d365_status:
            return EntryResult(Outcome.POLLED)
        return self._when_tracked(
            entry, lambda record: self._progressed(record, entry, state, result.raw)
        )

    def _progressed(
        self, record: TrackedFile, entry: PendingEntry, state: TrackingState, raw: str
    ) -> EntryResult:
        self._reanchor(record, entry, state=state, d365_status=raw, last_error=None)
        _LOGGER.info(
            "status blob=%s message_id=%s d365_status=%s",
            entry.blob,
            entry.message_id,
            raw,
            extra=telemetry.record_ids(entry, state=state.value, d365_status=raw),
        )
        return EntryResult(Outcome.POLLED)

    def _follow_import(self, record: TrackedFile, entry: PendingEntry) -> EntryResult:
        """One look at a package import's execution (see shared.flows.package, step 6)."""
        if self._clock() - entry.since > self._policy.max_pending_age:
            return self._time_out(record, entry)
        if self._packages is None:
            return EntryResult(Outcome.SKIPPED)
        try:
            result = self._packages.follow(record)
        except (D365Error, AzureError) as exc:
            return self._retry_later(entry, exc)
        if result.final is not None:
            self._complete(record, entry, **result.final)
            return EntryResult(Outcome.FINISHED)
        if result.raw != record.d365_status:
            self._reanchor(record, entry, d365_status=result.raw)
            if record.line and record.d365_status == IMPORT_CALL_STATUS:
                # F&O answered about the import: an "upload" line's next file may go now.
                self._intake.advance(record)
        return EntryResult(Outcome.POLLED)

    def _recover(self, record: TrackedFile) -> EntryResult:
        self._intake.recover(record)
        return EntryResult(Outcome.RECOVERED)

    def _time_out(self, record: TrackedFile, entry: PendingEntry) -> EntryResult:
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
        return EntryResult(Outcome.FINISHED)

    def _terminal(
        self, record: TrackedFile, entry: PendingEntry, status: MessageStatus, raw: str
    ) -> EntryResult:
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
                extra=telemetry.record_ids(entry, d365_status=raw),
            )
            self._reanchor(record, entry, d365_status=raw)
            return EntryResult(Outcome.POLLED)
        self._complete(
            record,
            entry,
            state=_STATE_OF_STATUS[status],
            d365_status=raw,
            execution_id=execution_id,
            **errors_fields,
        )
        return EntryResult(Outcome.FINISHED)

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
                line_blocked=blocked_note(record),
            ),
        )
        telemetry.record_outcome(record.state.value, record.route)
        self._filing.file_away(record)
        # The file's line hands its turn on now, not when the next file's entry comes due.
        self._intake.advance(record)

    def _retry_later(self, entry: PendingEntry, exc: D365Error | AzureError) -> EntryResult:
        delay = honour_retry_after(self._policy.backoff.next_interval(entry.poll_count + 1), exc)
        _LOGGER.warning(
            "poll failed, retry in %ss blob=%s message_id=%s: %s",
            int(delay.total_seconds()),
            entry.blob,
            entry.message_id,
            exc,
            extra=telemetry.record_ids(entry),
        )
        record = self._record(entry)
        if record is None:
            return EntryResult(Outcome.SKIPPED)
        self._reanchor(record, entry, delay=delay, last_error=str(exc))
        return EntryResult(Outcome.FAILED)
