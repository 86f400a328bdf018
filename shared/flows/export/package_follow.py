"""A package export followed to its end: F&O's status, then its package into the container.

Each tick asks GetExecutionSummaryStatus once for a run that is ``Requested`` or
``Executing`` (a long execution never holds a tick). A record write happens only when
something changed; each is conditional on the record as read.

- ``NotRun`` / ``Executing``: ``Executing`` (a ``Requested`` run F&O knows is taken).
- "not found", ``Unknown``, an answer that failed: asked again at the next tick, until
  ``MAX_PENDING_AGE`` after the slot was claimed: then ``ExportFailed`` (a ``Requested`` run
  F&O never knew: "may not have started; not sent again").
- ``Failed`` / ``Canceled``: ``ExportFailed`` with F&O's status and the execution's errors
  (GetExecutionErrors' text, best effort).
- ``Succeeded`` / ``PartiallySucceeded`` (RIS downloads both; a partial one keeps its
  errors): GetExportedPackageUrl, which F&O answers empty until the package is written:
  asked again at the next tick. Then the package is streamed from its SAS URL (checked as
  every URL F&O hands out) into staged blocks of the target blob, committed only if it does
  not exist (metadata ``d365_message_id`` = the execution id); with ``unzip``, into a
  temporary file first, then each member into its own blob within the ``ZIP_*`` limits (a
  package they refuse is kept unopened as ``<folder><execution id>.zip``: ``ExportFailed``).
  The route's lease is renewed as the bytes arrive (:class:`shared.tracking.LeaseKeeper`),
  so a download longer than the lease is not taken up by a second instance; one that lost
  the lease (its renewals failed until it ran out) stops and leaves the run to the holder.
  **Record Delivered** (final). *Stop before it*: the next tick downloads again and finds
  its own commit by the metadata (an unzip's members likewise); nothing is sent to F&O.
  A download or storage failure is recorded and retried at the next tick, until
  ``MAX_PENDING_AGE``; a URL the client refuses ends the run at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import AzureError
from azure.storage.blob import ContainerClient

from shared import telemetry
from shared.clients.d365 import (
    D365Client,
    D365Error,
    D365UntrustedUrlError,
    ExecutionSummaryStatus,
    ExecutionSummaryStatusResult,
)
from shared.clients.storage import MESSAGE_ID_METADATA
from shared.config.package_exports import PackageExportRoute
from shared.flows.export.events import error_text, tell_failed
from shared.flows.export.failures import kept_reason
from shared.flows.export.kept import KeptWriter, no_keep
from shared.flows.export.models import ExportPolicy
from shared.flows.export.unzip import PackageWriter, Written
from shared.tracking import (
    ConcurrencyError,
    PackageExportRecord,
    PackageExportState,
    PackageExportStore,
)

__all__ = ["PackageFollower"]

_LOGGER = logging.getLogger(__name__)
_FAILED = (ExecutionSummaryStatus.FAILED, ExecutionSummaryStatus.CANCELED)
_SUCCEEDED = (ExecutionSummaryStatus.SUCCEEDED, ExecutionSummaryStatus.PARTIALLY_SUCCEEDED)


class PackageFollower:
    """Follows package export runs to a final state, their packages into blob storage.

    :param store: the package export records.
    :param client: the F&O client.
    :param policy: block sizes and zip limits.
    :keyword max_age: how long after its slot was claimed a run may stay unfinished
        (``MAX_PENDING_AGE``).
    :keyword clock: the time source (UTC).
    :keyword temp_dir: where an unzip route keeps the package while reading it.
    """

    def __init__(
        self,
        store: PackageExportStore,
        client: D365Client,
        policy: ExportPolicy,
        *,
        max_age: timedelta,
        clock: Callable[[], datetime],
        temp_dir: str | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._policy = policy
        self._max_age = max_age
        self._clock = clock
        self._packages = PackageWriter(policy, temp_dir=temp_dir)

    def follow(
        self,
        route: PackageExportRoute,
        container: ContainerClient,
        record: PackageExportRecord,
        *,
        keep: Callable[[], None] = no_keep,
    ) -> PackageExportRecord:
        """One look at a ``Requested`` or ``Executing`` run; the record as it is after.
        ``keep`` is called as the package's bytes are written: it keeps the route's lease
        running through a download longer than the lease.

        :raises ConcurrencyError: another tick took the run (its record, or the route's
            lease while the package was downloading): left to it.
        """
        try:
            answer = self._client.get_execution_summary_status(record.followed_id)
        except D365Error as exc:
            return self._pending(record, record.state, None, f"status not read: {error_text(exc)}")
        status = answer.status
        if status in _FAILED:
            return self._failed(record, answer)
        if status in _SUCCEEDED:
            return self._succeeded(route, container, record, answer, keep)
        known = status is not None and status is not ExecutionSummaryStatus.UNKNOWN
        state = PackageExportState.EXECUTING if known else record.state
        return self._pending(record, state, answer.raw or None, None)

    def _pending(
        self,
        record: PackageExportRecord,
        state: PackageExportState,
        status: str | None,
        error: str | None,
    ) -> PackageExportRecord:
        """Not final yet: written only when something changed; ended at the age limit."""
        if self._clock() - record.created_at > self._max_age:
            never = record.state is PackageExportState.REQUESTED and state is record.state
            why = (
                "F&O never knew execution "
                f"{record.followed_id}: the export may not have started; not sent again "
                "(ExportToPackage goes at most once per slot)"
                if never
                else f"not final within MAX_PENDING_AGE; F&O's last status: {record.d365_status}"
            )
            return self._fail(record, f"timed out: {why}" + (f"; {error}" if error else ""))
        status = status or record.d365_status
        if (state, status, error) == (record.state, record.d365_status, record.error):
            return record
        reason = f"F&O: {status}" if status else error
        return self._store.change(record, state, reason=reason, d365_status=status, error=error)

    def _failed(
        self, record: PackageExportRecord, answer: ExecutionSummaryStatusResult
    ) -> PackageExportRecord:
        errors = self._errors(record)
        first = errors[:500] if errors else "GetExecutionErrors named no error"
        reason = f"F&O ended the export {answer.raw}: {first}"
        return self._fail(record, reason, d365_status=answer.raw, fno_errors=errors)

    def _errors(self, record: PackageExportRecord) -> str | None:
        """The execution's errors as F&O wrote them; a note when they cannot be had."""
        try:
            found = self._client.get_execution_errors(record.followed_id)
        except D365Error as exc:
            return f"(the execution's errors could not be read: {error_text(exc)})"
        if found.errors:
            return "; ".join(error.message for error in found.errors)
        return found.raw or None

    def _succeeded(
        self,
        route: PackageExportRoute,
        container: ContainerClient,
        record: PackageExportRecord,
        answer: ExecutionSummaryStatusResult,
        keep: Callable[[], None],
    ) -> PackageExportRecord:
        partial = answer.status is ExecutionSummaryStatus.PARTIALLY_SUCCEEDED
        try:
            url = self._client.get_exported_package_url(record.followed_id)
        except D365Error as exc:
            return self._pending(
                record, record.state, answer.raw, f"package URL not read: {error_text(exc)}"
            )
        if url is None:
            return self._pending(
                record,
                PackageExportState.EXECUTING,
                answer.raw,
                "F&O has no package URL yet; asked again at the next tick",
            )
        fno_errors = self._errors(record) if partial else None
        try:
            written = self._write(route, container, record, url, keep)
        except D365UntrustedUrlError as exc:
            return self._fail(record, f"package not downloaded: {error_text(exc)}")
        except ConcurrencyError:
            raise  # the lease was lost: the run is the other holder's, not a failure
        except Exception as exc:  # any (storage, F&O, disk): retried at the next tick
            text = f"package not written: {error_text(exc)}; tried again at the next tick"
            tell_failed(record, text, cause="storage" if isinstance(exc, AzureError) else "message")
            return self._pending(record, PackageExportState.EXECUTING, answer.raw, text)
        if written.refused is not None:
            reason = kept_reason(written.refused, record.container, written.blobs, acked=False)
            return self._fail(record, reason, blobs=written.blobs, d365_status=answer.raw)
        done = self._store.downloaded(
            record,
            written.blobs,
            written.size,
            reason=f"F&O: {answer.raw}; {len(written.blobs)} blob(s), {written.size:,} bytes",
            d365_status=answer.raw,
            fno_errors=fno_errors,
        )
        _LOGGER.info(
            "package exported execution_id=%s route=%s blobs=%d bytes=%d",
            record.execution_id,
            record.route,
            len(written.blobs),
            written.size,
            extra=telemetry.record_ids(done, event="export_downloaded", kind=done.kind),
        )
        telemetry.record_export(done.state.value, done.route, kind=done.kind)
        return done

    def _write(
        self,
        route: PackageExportRoute,
        container: ContainerClient,
        record: PackageExportRecord,
        url: str,
        keep: Callable[[], None],
    ) -> Written:
        metadata = {
            MESSAGE_ID_METADATA: record.execution_id,
            "d365_execution_id": record.followed_id,
            "d365_definition_group": route.definition_group,
            "d365_legal_entity": route.legal_entity,
            "d365_scheduled_for": record.scheduled_for.astimezone(UTC).isoformat(),
            "d365_export_route": route.name,
        }
        chunk = self._policy.block_size
        if route.unzip:
            return self._packages.write(
                container,
                lambda package: self._client.download_package(
                    url, KeptWriter(package, keep), chunk_size=chunk
                ),
                folder=record.target,
                key=record.execution_id,
                source=f"the exported package of execution {record.execution_id}",
                metadata=metadata,
                committed=[],
                keep=keep,
            )
        with self._policy.block_writer(container.get_blob_client(record.target)) as writer:
            self._client.download_package(url, KeptWriter(writer, keep), chunk_size=chunk)
            writer.commit(metadata)
            return Written((record.target,), writer.size)

    def _fail(
        self,
        record: PackageExportRecord,
        reason: str,
        *,
        blobs: tuple[str, ...] = (),
        **changes: str | None,
    ) -> PackageExportRecord:
        failed = self._store.failed(record, reason, blobs=blobs, **changes)
        tell_failed(failed, reason, gave_up=True)
        return failed
