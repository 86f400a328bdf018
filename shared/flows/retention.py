"""Entry point: one retention run, deleting every kind of row past its retention in one budget.

A run takes the retention lease (one run at a time across instances), then deletes each
kind's expired rows (:class:`RetentionStep`) in batch transactions, at a bounded pace, until
its budget is spent; what is left waits for the next run. Blobs of deleted rows go last, by
their purge rows (:mod:`shared.tracking._purge`), which the next run finishes when a run
dies first. The oldest record kept is written on the lease row for the health check.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared import telemetry
from shared.config.retention import RetentionSettings
from shared.tracking import AuditStore, ExportRetention, LeaseHeld, RecordRetention, utcnow

__all__ = [
    "BUSY_SHARE",
    "ROWS_PER_SECOND",
    "Retention",
    "RetentionReport",
    "RetentionStep",
    "steps_for",
]

_LOGGER = logging.getLogger(__name__)

ROWS_PER_SECOND = 500.0
"""The deletions' pace: a quarter of an Azure table partition's 2,000 entities a second, so
polls, enqueues and the console keep the rest of the one partition everything lives in."""
BUSY_SHARE = 0.25
"""The share of the time a run keeps a transaction in flight at most: when the store slows
down (busy, or slow on a large partition, as Azurite is), the deletions slow down with it."""


@dataclass(frozen=True)
class RetentionStep:
    """One kind of row and its retention: ``delete(cutoff, deadline=...)`` deletes the rows
    older than ``cutoff`` until ``deadline`` (``time.monotonic()``) and answers how many."""

    kind: str
    days: int | None
    delete: Callable[..., int]


def steps_for(
    settings: RetentionSettings,
    records: RecordRetention,
    exports: ExportRetention,
    audit: AuditStore,
) -> list[RetentionStep]:
    """The kinds of rows a run deletes, in this order, with their retention."""
    return [
        RetentionStep("records", settings.records_days, records.delete_older_than),
        RetentionStep("exports", settings.exports_days, exports.delete_older_than),
        RetentionStep("audit", settings.audit_days, audit.delete_older_than),
    ]


@dataclass(frozen=True)
class RetentionReport:
    """What a run did: rows deleted per kind, blobs deleted, whether it got through."""

    deleted: dict[str, int] = field(default_factory=dict)
    blobs: int = 0
    seconds: float = 0.0
    finished: bool = True
    skipped: bool = False
    oldest_record: datetime | None = None

    def __str__(self) -> str:
        kinds = " ".join(f"{kind}={count}" for kind, count in self.deleted.items())
        oldest = self.oldest_record.isoformat() if self.oldest_record else "none"
        return (
            f"{kinds} blobs={self.blobs} finished={self.finished} oldest_record={oldest} "
            f"seconds={self.seconds:.2f}"
        )


class Retention:
    """Deletes what has passed its retention, one run at a time.

    :param records: the files' records (with the retention lease and the purge rows).
    :param exports: the export records.
    :param steps: the kinds of rows to delete (:func:`steps_for`).
    :keyword budget: a run starts no new batch after this.
    :keyword lease_span: how long a run holds the lease at most (its budget and a margin).
    :keyword clock: the time source (UTC) of the cut-offs.
    """

    def __init__(
        self,
        records: RecordRetention,
        exports: ExportRetention,
        steps: Sequence[RetentionStep],
        *,
        budget: timedelta,
        lease_span: timedelta,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._records = records
        self._exports = exports
        self._steps = tuple(steps)
        self._budget = budget
        self._lease_span = lease_span
        self._clock = clock
        self._process = f"{socket.gethostname()}:{os.getpid()}"

    def run(self) -> RetentionReport:
        """Delete the expired rows of every step, then their blobs, within the budget; skip
        when another run holds the lease."""
        started = time.monotonic()
        now = self._clock()
        lease = self._records.lease.acquire(
            f"{self._process}:{uuid.uuid4().hex[:12]}", until=now + self._lease_span
        )
        if lease is None:
            _LOGGER.info(
                "retention run skipped: another run holds the retention lease",
                extra=telemetry.log_ids(event="retention_run", skipped=True),
            )
            return RetentionReport(skipped=True)
        deadline = started + self._budget.total_seconds()
        oldest = lease.watermark
        try:
            blobs = self._purge(deadline)  # what a run that died left
            deleted = {
                step.kind: step.delete(now - timedelta(days=step.days), deadline=deadline)
                for step in self._steps
                if step.days is not None
            }
            blobs += self._purge(deadline)
            oldest = self._oldest(lease, deleted)
        finally:
            self._records.lease.release(lease, watermark=oldest)
        report = RetentionReport(
            deleted, blobs, time.monotonic() - started, time.monotonic() <= deadline, False, oldest
        )
        _LOGGER.info(
            "retention run %s",
            report,
            extra=telemetry.log_ids(
                event="retention_run",
                rows=sum(deleted.values()),
                blobs=blobs,
                seconds=report.seconds,
            ),
        )
        for kind, count in deleted.items():
            telemetry.record_retention(kind=kind, rows=count)
        return report

    def last_run(self) -> LeaseHeld | None:
        """The retention lease as the last run left it: when it ended (``until``) and the
        oldest record kept (``watermark``); None before the first run."""
        return self._records.lease.last()

    def _purge(self, deadline: float) -> int:
        return self._records.purge.finish(deadline=deadline) + self._exports.purge.finish(
            deadline=deadline
        )

    def _oldest(self, lease: LeaseHeld, deleted: dict[str, int]) -> datetime | None:
        # Only a run deletes records, and a new record is never older than the oldest kept:
        # a run that deleted none keeps the last run's answer.
        if lease.watermark is not None and not deleted.get("records"):
            return lease.watermark
        return self._records.oldest_record()
