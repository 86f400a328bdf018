"""An ordered route's files sent one at a time per company, in the order of their blobs.

A route with ``"order"`` puts each file of one company in a *line* (``<route>/<company>``).
Its place is its blob's creation time, then its name (the same on every instance). A file is
claimed ``Waiting`` (its record, its schedule entry due when it has settled, and its row
among the line's waiting files, in one transaction) and is sent only when it gets its *turn*:

- the line's head (the file that had the last turn) has *passed*: ``"upload"``: F&O took it
  (it has a message id, or an execution id F&O answered about); ``"final"``: it ended
  ``Processed``. A file that never reached F&O because its blob was overwritten or deleted
  (``Rejected``) passes too;
- it is the first waiting file, and ``ORDER_SETTLE`` has passed since its blob was created
  (so an older file Event Grid delivers a little late still goes first).

The turn is one transaction: the head row, conditional on its ETag as read (of two workers,
one wins; the other's write fails whole), the file's record ``Waiting`` -> ``Received`` with
its claim lease and schedule entry, and the delete of its waiting row. From there the file
is an ordinary claimed file (:mod:`shared.flows.intake`): if the worker dies before or while
sending, recovery takes it over when the lease ends, and F&O gets it at most once. Who hands
the turn on: the worker that sent the head (``"upload"``), the poll that saw the head end
(``"final"``), and, for every waiting file, the poller when its entry comes due (after a
crash, a release, a settle window): nobody's help is needed.

A head that fails (any other final state; ``"upload"``: ended before F&O took it) *blocks*
the line when the route's ``on_failure`` is ``"stop"`` (the default): its ``file_finished``
event says so (``line_blocked``), and the waiting files name it in ``behind``. An operator
resubmits it (the new version takes its place at the head: it inherits its place in the
line and goes first) or releases the line past it (:mod:`shared.flows.release`).

A file that arrives after a newer file of its line already had its turn (later than the
settle window) is not dropped or held for ever: it is sent next, ahead of the files still
waiting, recorded with ``late_after`` (the newer file) and logged as a ``line_late``
warning. F&O then receives it out of order, and the record and the log say so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any

from azure.storage.blob import BlobProperties

from shared import telemetry
from shared.config import API_PACKAGE, ON_FAILURE_STOP, ORDER_UPLOAD, ImportRoute
from shared.flows.policies import EnqueuePolicy
from shared.tracking import (
    IMPORT_CALL_STATUS,
    ConcurrencyError,
    LineHead,
    TrackedFile,
    TrackingState,
    TrackingStore,
    line_id,
    order_of,
)

__all__ = ["OrderedLines", "Verdict", "blocked_note", "blocks_line", "verdict_of"]

_LOGGER = logging.getLogger(__name__)
_HANDED_TO_FNO = frozenset(
    {
        TrackingState.ENQUEUED,
        TrackingState.PREPROCESSING,
        TrackingState.PROCESSING,
        TrackingState.IMPORTING,
    }
)


class Verdict(Enum):
    """What a line's head means for the files behind it."""

    PASSED = "passed"
    BUSY = "busy"
    BLOCKED = "blocked"


def verdict_of(head: TrackedFile | None) -> Verdict:
    """Whether the file behind ``head`` may have its turn."""
    if head is None or head.released_at is not None:
        return Verdict.PASSED
    if head.state in (TrackingState.WAITING, TrackingState.RECEIVED):
        return Verdict.BUSY
    if head.line_mode == ORDER_UPLOAD and _taken_by_fno(head):
        return Verdict.PASSED
    if not head.state.is_terminal:
        return Verdict.BUSY
    if head.state in (TrackingState.PROCESSED, TrackingState.REJECTED) or not head.line_stops:
        return Verdict.PASSED
    return Verdict.BLOCKED


def _taken_by_fno(head: TrackedFile) -> bool:
    """True once F&O took the file (``"upload"`` order): it has a message id or an execution
    id. A package import's execution id is written before ImportFromPackage is called (and
    cleared if F&O refuses the call): it counts once a poll saw F&O answer about it."""
    if head.api == API_PACKAGE and head.state is TrackingState.IMPORTING:
        return head.d365_status != IMPORT_CALL_STATUS
    return bool(head.message_id or head.execution_id or head.state in _HANDED_TO_FNO)


def blocks_line(record: TrackedFile) -> bool:
    """True while ``record`` holds its line: a failed file the line stops for, not released,
    and not resubmitted (its copy takes its place)."""
    return bool(record.line) and not record.resubmitted_as and verdict_of(record) is Verdict.BLOCKED


def blocked_note(record: TrackedFile) -> str | None:
    """What a final file's ``file_finished`` event says when it blocks its line; else None."""
    if not record.state.is_terminal or not blocks_line(record):
        return None
    return (
        f"line {record.line} is blocked by {record.blob} ({record.state.value}); resubmit it "
        f"or release the line: POST /api/messages/{record.record_id}/release"
    )


class OrderedLines:
    """Puts the files of ordered routes in their lines and hands each line's turn on.

    :param store: the tracking store.
    :keyword policy: the settle window and the claim lease.
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self,
        store: TrackingStore,
        *,
        policy: EnqueuePolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock

    def claim_fields(
        self,
        route: ImportRoute,
        company: str | None,
        props: BlobProperties,
        resubmit_of: str | None,
    ) -> dict[str, Any]:
        """The claim of a file of an ordered route: ``Waiting`` in its line, its schedule
        entry due once it has settled. A resubmitted copy of a file of the same line takes
        that file's place (its creation time)."""
        line = line_id(route.name, company)
        created = props.creation_time or props.last_modified
        settled = created + self._policy.order_settle
        original = self._store.get(resubmit_of) if resubmit_of else None
        if original is not None and original.line == line and original.line_created:
            created, settled = original.line_created, self._clock()
        return {
            "state": TrackingState.WAITING,
            "line": line,
            "line_mode": route.order,
            "line_stops": route.on_failure == ON_FAILURE_STOP,
            "line_created": created,
            "schedule_at": max(settled, self._clock()),
            "join_line": True,
        }

    def next_turn(self, line: str, *, checking: TrackedFile | None = None) -> TrackedFile | None:
        """Give the line's turn to its next file when the head has passed: that file's record,
        now ``Received`` under a claim lease, for the caller to send; None when no file may go.

        ``checking``: a waiting file whose record says what it waits behind (updated when
        that changed).

        :raises AzureError: storage failed; nothing was written, the next look retries.
        """
        head = self._store.lines.head(line)
        current = self._store.get(head.head) if head.head else None
        if head.head and current is None:
            # Deleted by hand (or by a retention that reached it): nothing left to wait for.
            _LOGGER.warning(
                "line head lost line=%s: the record of %s is gone; the line goes on past it",
                line,
                head.head_blob,
                extra=telemetry.log_ids(event="line_head_lost", line=line, blob=head.head_blob),
            )
        verdict = verdict_of(current)
        if verdict is Verdict.PASSED:
            return self._first_waiting(head, current)
        successor = self._successor(current, checking) if verdict is Verdict.BLOCKED else None
        if successor is not None:
            return self._take_turn(head, current, successor)
        # A line just blocked tells every waiting file at once; else each as it is looked at
        # (a busy or blocked line costs a look no read of its waiting files).
        behind = [checking] if checking is not None else []
        if checking is None and verdict is Verdict.BLOCKED:
            waiting = self._store.lines.waiting(line)
            behind = [self._store.get(waiter.record_row_key) for waiter in waiting]
        for record in behind:
            if record is not None and record.state is TrackingState.WAITING:
                self._note_behind(record, current, verdict)
        return None

    def _first_waiting(self, head: LineHead, current: TrackedFile | None) -> TrackedFile | None:
        """The turn for the first file waiting, once it has settled."""
        waiting = self._store.lines.waiting(head.line)
        if not waiting:
            return None
        record = self._store.get(waiting[0].record_row_key)
        if record is None or record.state is not TrackingState.WAITING:
            self._store.lines.drop(head.line, waiting[0])  # its turn was taken: a stale row
            return None
        created = record.line_created or record.received_at
        if record.resubmit_of is None and self._clock() < created + self._policy.order_settle:
            return None  # its schedule entry comes due once it has settled
        return self._take_turn(head, current, record)

    def _successor(
        self, current: TrackedFile | None, checking: TrackedFile | None
    ) -> TrackedFile | None:
        """A blocked head's resubmitted copy, waiting in the line: it takes the head's place."""
        assert current is not None
        if checking is not None and checking.resubmit_of == current.row_key:
            return checking if checking.state is TrackingState.WAITING else None
        if not current.resubmitted_as:
            return None
        copy = self._store.get(current.resubmitted_as)
        if copy is None or copy.state is not TrackingState.WAITING or copy.line != current.line:
            return None
        return copy

    def _take_turn(
        self, head: LineHead, current: TrackedFile | None, record: TrackedFile
    ) -> TrackedFile | None:
        now = self._clock()
        lease_end = now + self._policy.claim_lease
        late = (
            current is not None
            and record.resubmit_of is None
            and order_of(record) < order_of(current)
        )
        try:
            taken = self._store.update(
                record,
                state=TrackingState.RECEIVED,
                lease_until=lease_end,
                schedule_at=lease_end,
                turn_at=now,
                behind=None,
                last_error=None,
                late_after=current.row_key if late and current else None,
                rows=[self._store.lines.leave(record)],
                guard=self._store.lines.take_turn(head, record),
            )
        except ConcurrencyError:
            _LOGGER.info(
                "line turn taken by another worker line=%s blob=%s",
                record.line,
                record.blob,
                extra=telemetry.record_ids(record),
            )
            return None
        _LOGGER.info(
            "line turn line=%s blob=%s after=%s",
            record.line,
            record.blob,
            head.head_blob,
            extra=telemetry.record_ids(taken, event="line_turn", line=record.line),
        )
        if late and current is not None:
            _LOGGER.warning(
                "line late: %s arrived after %s of line %s was sent; sent now, out of order",
                record.blob,
                current.blob,
                record.line,
                extra=telemetry.record_ids(
                    taken, event="line_late", line=record.line, late_after=current.blob
                ),
            )
        return taken

    def _note_behind(
        self, record: TrackedFile, current: TrackedFile | None, verdict: Verdict
    ) -> None:
        """Write what a waiting file waits behind, when that changed."""
        behind = current.row_key if current is not None else None
        note = None
        if verdict is Verdict.BLOCKED and current is not None:
            note = (
                f"waiting behind {current.blob} ({current.state.value}), which blocks line "
                f"{record.line}: resubmit it or release the line (POST "
                f"/api/messages/{current.record_id}/release)"
            )
        if (record.behind, record.last_error) == (behind, note):
            return
        try:
            self._store.update(record, behind=behind, last_error=note)
        except ConcurrencyError:
            return  # its turn came meanwhile
