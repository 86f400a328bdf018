"""The writes that settle a file's fate: its final state, or its return to the schedule."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from azure.core.exceptions import AzureError

from shared import telemetry
from shared.clients.d365 import external_id_header, honour_retry_after
from shared.clients.storage import storage_reason
from shared.config import RejectReason
from shared.flows.archive import InboundContainer
from shared.flows.line import blocked_note
from shared.flows.source_blob import stamp
from shared.tracking import (
    UNSCHEDULE,
    Backoff,
    ConcurrencyError,
    FailureKind,
    TrackedFile,
    TrackingState,
    TrackingStore,
)

__all__ = ["Outcomes", "outcome_unknown"]

_LOGGER = logging.getLogger(__name__)
_WRITE_TRIES = 5
_WRITE_PAUSE_SECONDS = 0.5


def outcome_unknown(record: TrackedFile, why: str) -> dict[str, Any]:
    """The final fields of a file F&O may or may not have (never re-sent): ``EnqueueFailed``
    with the failure kind ``OutcomeUnknown``, and a text that says where to look in F&O."""
    return {
        "state": TrackingState.ENQUEUE_FAILED,
        "failure": FailureKind.OUTCOME_UNKNOWN,
        "last_error": (
            f"outcome unknown: F&O may or may not have the file, as {why}. It was not re-sent, "
            "to avoid importing it twice. Look in F&O (Data management > the recurring job's "
            f"message list) for external identifier {external_id_header(record.blob)!r}; "
            "upload the file again to re-send it."
        ),
    }


class Outcomes:
    """Writes a file's final state, or its return to the schedule when F&O did not take it.

    :param store: the tracking store.
    :param inbound: gives the inbound container (the final state is stamped on the blob).
    :keyword retry: back-off between sends F&O did not take.
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self,
        store: TrackingStore,
        inbound: InboundContainer,
        *,
        retry: Backoff,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._inbound = inbound
        self._retry = retry
        self._clock = clock

    def finish(
        self,
        record: TrackedFile,
        *,
        stamp_blob: bool = True,
        must_land: bool = False,
        **changes: Any,
    ) -> TrackedFile:
        """Write the final state, log it and stamp the blob.

        :keyword must_land: the outcome is known only to this worker: retried over storage
            failures and a record changed meanwhile (a final state written meanwhile stands).
        """
        final = {"lease_until": None, "schedule_at": UNSCHEDULE, **changes}
        if must_land:
            written = self.persist(record, over_final=False, **final)
            if written.state is not changes["state"]:
                return written  # recovery finished it meanwhile; its outcome stands
            record = written
        else:
            record = self._store.update(record, **final)
        _LOGGER.info(
            "finished blob=%s record=%s state=%s",
            record.blob,
            record.record_id,
            record.state.value,
            extra=telemetry.record_ids(
                record, event="file_finished", line_blocked=blocked_note(record)
            ),
        )
        telemetry.record_outcome(record.state.value, record.route)
        if stamp_blob:
            stamp(self._inbound.source(record.blob), record, etag=record.blob_etag)
        return record

    def blob_changed(self, record: TrackedFile) -> TrackedFile:
        """The claimed version was overwritten or deleted before it was sent: ``Rejected``."""
        # A conditional read of a deleted blob may answer 412 as well as 404.
        overwritten = self._inbound.source(record.blob).exists()
        return self.finish(
            record,
            state=TrackingState.REJECTED,
            reject_reason=(RejectReason.SUPERSEDED if overwritten else RejectReason.DELETED).value,
            last_error="the blob was overwritten before it was sent; the new version is "
            "tracked on its own"
            if overwritten
            else "the blob was deleted before it was sent",
            stamp_blob=False,
        )

    def retry_later(self, record: TrackedFile, exc: Exception, **more: Any) -> TrackedFile:
        """F&O did not take the file: send it again after a back-off, from the poll schedule.

        This write is the proof that nothing reached F&O, so it is retried on its own.
        ``more``: further changes (the package path's return to ``Received``).
        """
        # A file whose first sending mark failed has 0 attempts: its wait is the first one.
        attempt = max(record.enqueue_attempts - 1, 0)
        wait = honour_retry_after(self._retry.next_interval(attempt), exc)
        retry_at = self._clock() + wait
        _LOGGER.warning(
            "enqueue not accepted, retry at %s blob=%s record=%s: %s",
            retry_at.isoformat(),
            record.blob,
            record.record_id,
            exc,
            extra=telemetry.record_ids(record),
        )
        return self.persist(
            record,
            over_final=False,
            send_started_at=None,
            lease_until=retry_at,
            last_error=f"not taken by F&O yet, retried at {retry_at:%H:%M:%S}Z: {_reason(exc)}",
            schedule_at=retry_at,
            **more,
        )

    def persist(self, record: TrackedFile, *, over_final: bool, **changes: Any) -> TrackedFile:
        """A write that must land (it holds what only this worker knows): retried over
        storage failures and over a record changed meanwhile (re-read, written again).

        :keyword over_final: write even over a final state recovery wrote meanwhile (F&O's
            message id must win). Otherwise a final state stands: once the operator has
            been told the outcome, reopening the file could import it twice.
        """
        failure: Exception | None = None
        for attempt in range(_WRITE_TRIES):
            try:
                return self._store.update(record, **changes)
            except ConcurrencyError as exc:
                failure = exc
                record = self._store.get(record.row_key) or record
                if record.state.is_terminal and not over_final:
                    return record
            except AzureError as exc:
                failure = exc
                time.sleep(_WRITE_PAUSE_SECONDS * 2**attempt)
            _LOGGER.warning(
                "record write retried blob=%s: %s",
                record.blob,
                failure,
                extra=telemetry.record_ids(record),
            )
        _LOGGER.error(
            "record write failed blob=%s record=%s message_id=%s changes=%s",
            record.blob,
            record.record_id,
            changes.get("message_id"),
            sorted(changes),
            extra=telemetry.record_ids(record, message_id=changes.get("message_id")),
        )
        assert failure is not None
        raise failure


def _reason(exc: Exception) -> str:
    """What a record may say of a failure: a storage error's status and code, never its URL
    (a SAS connection string puts its signature in every request's URL)."""
    return storage_reason(exc) if isinstance(exc, AzureError) else str(exc)
