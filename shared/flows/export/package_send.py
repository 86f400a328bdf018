"""ExportToPackage for one scheduled run, sent at most once after its record says so.

The record is ``Scheduled`` (written with our execution id before anything is sent). Then:

1. *Sent before and proven not taken* (``send_attempts`` > 0): GetExecutionSummaryStatus asks
   about our execution id first; when F&O knows it (a gateway's 503 can hide a call F&O
   took) the run is followed, never sent again; when that call fails, the run stays
   ``Scheduled``, unsent, and is asked about again at the next tick (until
   ``MAX_PENDING_AGE``).
2. **Record Requested**, conditional on the record as read. *Stop here*: the next tick
   follows the execution id (it never sends a ``Requested`` run); F&O never heard of it,
   so it reads "not found" / ``Unknown`` until ``MAX_PENDING_AGE`` after the slot was
   claimed, and the run ends ``ExportFailed`` saying the export may not have started and was
   not sent again.
3. **ExportToPackage**, one attempt.
   - answered: ``Executing`` (F&O's execution id kept when it is not ours: the one followed);
   - no answer after the body left (a client timeout), a 5xx other than 503, a 2xx we cannot
     read: stays ``Requested``, followed by its execution id, never sent again;
   - refused in a way that proves F&O did not take it (401, 403, 404, 408, 429, 503; no
     connection before the body left): back to ``Scheduled`` with ``send_attempts`` + 1,
     sent again at the next tick (after step 1), until ``MAX_PENDING_AGE``;
   - "already exists": F&O has that execution id: followed;
   - any other refusal (400: the project, the company): ``ExportFailed`` with F&O's text.
   *Stop before that write*: as 2.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from shared.clients.d365 import (
    NOT_TAKEN_STATUSES,
    D365Client,
    D365ConnectionError,
    D365CredentialError,
    D365Error,
    D365HttpError,
    ExecutionSummaryStatus,
    RetryPolicy,
)
from shared.config.package_exports import PackageExportRoute
from shared.flows.export.events import error_text, tell_failed
from shared.tracking import PackageExportRecord, PackageExportState, PackageExportStore

__all__ = ["PackageSender", "is_known"]

_LOGGER = logging.getLogger(__name__)
# One attempt from here: only the caller decides whether F&O may be asked again.
_ONCE = RetryPolicy(max_attempts=1)


def is_known(status: ExecutionSummaryStatus | None) -> bool:
    """True when GetExecutionSummaryStatus shows F&O has the execution (``Unknown``, or "not
    found", does not)."""
    return status is not None and status is not ExecutionSummaryStatus.UNKNOWN


class PackageSender:
    """Sends ExportToPackage for scheduled runs, at most once each.

    :param store: the package export records.
    :param client: the F&O client.
    :keyword max_age: how long after its slot was claimed a run may still be sent
        (``MAX_PENDING_AGE``).
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self,
        store: PackageExportStore,
        client: D365Client,
        *,
        max_age: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._client = client
        self._max_age = max_age
        self._clock = clock

    def send(self, route: PackageExportRoute, record: PackageExportRecord) -> PackageExportRecord:
        """Send ExportToPackage for a ``Scheduled`` run; the record as written after it."""
        known, unsure = self._known(record) if record.send_attempts else (False, None)
        if known:
            return self._store.change(
                record,
                PackageExportState.EXECUTING,
                reason="F&O has the execution of an earlier attempt: followed, not sent again",
            )
        aged = self._clock() - record.created_at > self._max_age
        if unsure is not None and not aged:
            return self._store.change(
                record,
                PackageExportState.SCHEDULED,
                reason="not sent: F&O could not say whether it has the execution",
                error=f"{unsure}; asked again at the next tick",
            )
        if aged:
            return self._fail(
                record,
                f"not sent: F&O did not take ExportToPackage within MAX_PENDING_AGE "
                f"({record.send_attempts} attempts); last: {record.error}",
            )
        record = self._store.change(
            record,
            PackageExportState.REQUESTED,
            reason="ExportToPackage sent; from here on it is followed, never sent again",
            requested_at=self._clock(),
        )
        try:
            answered = self._client.export_to_package(
                route.definition_group,
                record.execution_id,
                record.execution_id,
                re_execute=route.re_execute,
                legal_entity_id=route.legal_entity,
                retry=_ONCE,
            )
        except D365Error as exc:
            return self._refused(record, exc)
        ours = answered == record.execution_id
        return self._store.change(
            record,
            PackageExportState.EXECUTING,
            reason="F&O took the export" + ("" if ours else f" as execution {answered}"),
            fno_execution_id=None if ours else answered,
            error=None,
        )

    def _known(self, record: PackageExportRecord) -> tuple[bool, str | None]:
        """Whether F&O has the run's execution; when it cannot say, why (neither sent nor
        followed then: an earlier attempt F&O proved it did not take is no reason to stop
        sending, and sending blind could export twice)."""
        try:
            status = self._client.get_execution_summary_status(record.followed_id).status
        except D365Error as exc:
            return False, f"status not read: {error_text(exc)}"
        return is_known(status), None

    def _refused(self, record: PackageExportRecord, exc: D365Error) -> PackageExportRecord:
        text = error_text(exc)
        if _not_taken(exc):
            _LOGGER.warning(
                "export not taken execution_id=%s route=%s: %s",
                record.execution_id,
                record.route,
                text,
            )
            return self._store.change(
                record,
                PackageExportState.SCHEDULED,
                reason=f"F&O did not take ExportToPackage ({text}); sent again at the next tick",
                send_attempts=record.send_attempts + 1,
                error=text,
            )
        if isinstance(exc, D365HttpError) and exc.status_code < 500:
            if "already exists" in (exc.fno_message or "").lower():
                return self._store.change(
                    record,
                    PackageExportState.EXECUTING,
                    reason=f"F&O has this execution id already ({text}): followed",
                )
            return self._fail(record, f"F&O refused ExportToPackage: {text}")
        return self._store.change(
            record,
            PackageExportState.REQUESTED,
            reason=(
                f"no answer F&O can be held to ({text}); followed by execution id "
                f"{record.execution_id}, never sent again"
            ),
            error=text,
        )

    def _fail(self, record: PackageExportRecord, reason: str) -> PackageExportRecord:
        failed = self._store.failed(record, reason)
        tell_failed(failed, reason, gave_up=True)
        return failed


def _not_taken(exc: D365Error) -> bool:
    """True when the failure proves F&O did not take the call (no token: nothing was sent)."""
    if isinstance(exc, D365CredentialError):
        return True
    if isinstance(exc, D365ConnectionError):
        return not exc.sent_body
    return isinstance(exc, D365HttpError) and exc.status_code in NOT_TAKEN_STATUSES
