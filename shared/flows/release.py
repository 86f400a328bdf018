"""An ordered line released past the failed file that blocks it, once per request.

The release is written on the blocking file's record (``released_at``, ``released_by``: the
:class:`~shared.tracking.Actor`, ``release_request``: the request id), ETag-conditional, so of
two concurrent requests one writes and the other reads it. From then on the file counts as
passed (:func:`shared.flows.line.verdict_of`), and the line's next file gets its turn: at once
(this call hands it on), or, if this process dies first, when that file's schedule entry
comes due. A retry with the same request id answers as the first call did; another request
id meets 409 naming who released it. Only the head of a line, final and blocking it, can be
released: a file still on its way, one that passed, or one resubmitted (its copy takes its
place) is refused with 409.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from shared import telemetry
from shared.errors import AppError
from shared.flows.intake import Intake
from shared.flows.line import Verdict, verdict_of
from shared.tracking import (
    Actor,
    AuditEntry,
    AuditOutcome,
    AuditStore,
    ConcurrencyError,
    TrackedFile,
    TrackingStore,
    utcnow,
)

__all__ = ["RELEASE_ACTION", "ReleaseError", "Releaser"]

_LOGGER = logging.getLogger(__name__)
_ATTEMPTS = 4
RELEASE_ACTION = "release"
"""The audit trail's name of this action."""


class ReleaseError(AppError):
    """A release that cannot be done (now); ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Releaser:
    """Releases ordered lines past the files that block them.

    :param store: the tracking store.
    :param enqueuer: hands the line's turn on to its next file.
    :param audit: where each request is recorded (who asked, when, how it ended).
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self,
        store: TrackingStore,
        enqueuer: Intake,
        audit: AuditStore,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._enqueuer = enqueuer
        self._audit = audit
        self._clock = clock

    def release(self, record_key: str, *, request_id: str, actor: Actor) -> TrackedFile:
        """Release the line of record ``record_key`` past it, once per ``request_id``.

        The audit row is written before the record (outcome ``requested``) and marked done
        after it, so a release that took effect always has its row; a retry of the request
        finds that row again (whoever sends it) and finishes it.

        :keyword actor: who asks; recorded on the record and in the audit row.
        :returns: the record, with the release written on it.
        :raises ReleaseError: 404 unknown record; 409 not a line's blocking head, or
            released by another request. A refusal once the audit row was written (by this
            call or an earlier attempt of the request) is that row's outcome; one before
            writes no row.
        """
        entry: AuditEntry | None = None
        try:
            for _ in range(_ATTEMPTS):
                record = self._store.get(record_key)
                if record is None:
                    raise ReleaseError(404, f"no tracked file has record key {record_key}")
                if record.released_at is not None:
                    answered = _answer(record, request_id)
                    self._done(entry or self._entry(answered, request_id, actor))
                    return answered
                self._check_releasable(record)
                entry = entry or self._entry(record, request_id, actor)
                try:
                    released = self._store.update(
                        record,
                        released_at=self._clock(),
                        released_by=entry.actor,  # a retry keeps who first asked
                        release_request=request_id,
                    )
                except ConcurrencyError:
                    continue  # read again: another request, or the file changed
                self._released(released, entry.actor, request_id)
                self._done(entry)
                return released
            raise ReleaseError(409, f"record {record_key} kept changing; retry the request")
        except ReleaseError as exc:
            # An earlier attempt of this request may have written its row, then died: a
            # refusal now (another request released the line meanwhile) is that row's end.
            entry = entry or self._audit.find(
                RELEASE_ACTION, targets=(record_key,), request_id=request_id
            )
            if entry is not None:
                self._audit.complete(entry, AuditOutcome.REFUSED, detail=str(exc))
            raise

    def _entry(self, record: TrackedFile, request_id: str, actor: Actor) -> AuditEntry:
        """The request's audit row: written before the record, found again on a retry."""
        return self._audit.record(
            RELEASE_ACTION,
            actor=actor,
            request_id=request_id,
            targets=(record.row_key,),
            subject=record.blob,
        )

    def _done(self, entry: AuditEntry) -> None:
        self._audit.complete(entry, AuditOutcome.DONE)

    def _released(self, released: TrackedFile, actor: Actor, request_id: str) -> None:
        """Log the release, then hand the line's turn on."""
        _LOGGER.warning(
            "line released line=%s past blob=%s by=%s request=%s",
            released.line,
            released.blob,
            actor.name,
            request_id,
            extra=telemetry.record_ids(released, event="line_released", line=released.line),
        )
        # Its failure is logged there; the next file's schedule entry brings its turn then.
        self._enqueuer.advance(released)

    def _check_releasable(self, record: TrackedFile) -> None:
        if not record.line:
            raise ReleaseError(
                409, f"{record.blob} is not a file of an ordered route: it blocks no line"
            )
        if record.resubmitted_as:
            raise ReleaseError(
                409,
                f"{record.blob} was resubmitted as record {record.resubmitted_as}, which takes "
                "its place in the line; release that one if it fails too",
            )
        verdict = verdict_of(record)
        if verdict is Verdict.BUSY:
            raise ReleaseError(
                409,
                f"{record.blob} is {record.state.value}, still on its way: the line waits for "
                "it; release it only once it has failed",
            )
        head = self._store.lines.head(record.line)
        if verdict is Verdict.PASSED or head.head != record.row_key:
            raise ReleaseError(
                409,
                f"{record.blob} ({record.state.value}) does not block line {record.line}"
                + (f"; the line's head is {head.head_blob}" if head.head_blob else ""),
            )


def _answer(record: TrackedFile, request_id: str) -> TrackedFile:
    """The record for the request that released it; 409 for any other."""
    if record.release_request == request_id:
        return record
    by = record.released_by.name if record.released_by else "someone"
    raise ReleaseError(
        409,
        f"line {record.line} was already released past {record.blob} by {by} at "
        f"{record.released_at:%Y-%m-%d %H:%M:%S}Z (another request)",
    )
