"""One timer tick: follow the messages that are due until F&O has processed them.

A tick first takes the poll lease, a row in the status table written with its ETag, so two
ticks (two instances, or an overrun) never walk the schedule at once; it holds it for a short
span renewed while it runs (:mod:`shared.flows.lease_renewer`), so a tick that dies stops
polling for less than a minute; record writes are
conditional on their ETags as well. It reads only the due part of the schedule (never the
finished history) and polls with bounded concurrency. Each message's poll times back off from
``POLL_INTERVAL_MIN`` to ``POLL_INTERVAL_MAX`` and are derived from its anchor, so a poll that
changes nothing writes nothing (see :meth:`PollPolicy.is_due`); past ``MAX_PENDING_AGE`` it is
``TimedOut``. One message's failure never stops the others, and the tick stops starting new
work when its time budget is spent; what it did not reach is anchored due for the next tick.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime

from azure.core.exceptions import AzureError
from opentelemetry import context as otel_context

from shared import telemetry
from shared.clients.d365 import D365Client
from shared.clients.storage import storage_reason
from shared.flows.archive import InboundContainer
from shared.flows.filing import Filing
from shared.flows.intake import Intake
from shared.flows.lease_renewer import LeaseRenewer
from shared.flows.package.follow import ImportFollower
from shared.flows.policies import PollPolicy
from shared.flows.poll_entry import EntryPoller, EntryResult, Outcome
from shared.tracking import BATCH_SIZE, PendingEntry, TrackingStore, utcnow

__all__ = ["Poller", "TickReport"]

_LOGGER = logging.getLogger(__name__)


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
    :param inbound: the inbound container, which files finished blobs away.
    :keyword policy: concurrency, budget and back-off.
    :keyword clock: the time source (UTC).
    :keyword packages: follows package imports (``Importing`` records) by execution id.
    """

    def __init__(
        self,
        store: TrackingStore,
        client: D365Client,
        enqueuer: Intake,
        inbound: InboundContainer,
        *,
        policy: PollPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        packages: ImportFollower | None = None,
    ) -> None:
        self._store = store
        self._policy = policy or PollPolicy()
        self._clock = clock
        self._process = f"{socket.gethostname()}:{os.getpid()}"
        filing = Filing(store, inbound, policy=self._policy, clock=clock)
        self._entries = EntryPoller(
            store,
            client,
            enqueuer,
            filing,
            policy=self._policy,
            clock=clock,
            packages=packages,
        )

    def tick(self) -> TickReport:
        """Poll every due message once, within the time budget; skip if another tick runs.

        A poll that changes nothing writes nothing: an entry's later poll times follow from
        its anchor and back-off, and the tick records only its watermark (its start) once it
        has polled everything due. Changes, failures and deferred entries are written as new
        anchors.
        """
        started = time.monotonic()
        budget = self._policy.tick_budget
        now = self._clock()
        # The longest a live tick may need: its budget, then a call in flight.
        limit = now + budget + self._policy.lease_margin
        lease = self._store.schedule.lease.acquire(
            # One holder per tick: two ticks of one process exclude each other too.
            f"{self._process}:{uuid.uuid4().hex[:12]}",
            until=min(now + self._policy.lease_span, limit),
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
        keeper = LeaseRenewer(
            self._store.schedule.lease,
            lease,
            span=self._policy.lease_span,
            every=self._policy.lease_renew_every,
            limit=limit,
            clock=self._clock,
        )
        try:
            with keeper:
                now = self._clock()
                deadline = started + budget.total_seconds()
                counts = self._walk(
                    now, lease.watermark, lambda: keeper.lost or time.monotonic() > deadline
                )
            # Every due entry was polled, or anchored again (deferred, failed).
            watermark = None if keeper.lost else now
        finally:
            self._store.schedule.lease.release(keeper.held, watermark=watermark)
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
            _LOGGER.warning("pending backlog not measured: %s", storage_reason(exc))
            return
        telemetry.record_backlog(count, oldest, self._clock())

    def _walk(
        self, now: datetime, watermark: datetime | None, stop: Callable[[], bool]
    ) -> Counter[str]:
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

        def work(entry: PendingEntry) -> EntryResult:
            if stop():
                # Written as a new anchor due now, so the next tick takes it first.
                return EntryResult(Outcome.DEFERRED, replace(entry, due_at=self._clock()))
            token = otel_context.attach(parent)
            try:
                with telemetry.span(
                    "poll message",
                    blob=entry.blob,
                    message_id=entry.message_id,
                    record_id=entry.record_id,
                ) as current:
                    result = self._entries.poll(entry)
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
