"""One blob version to its recurring data job: route, claim, stream to F&O, track.

Exactly once, and what happens when a worker dies on the way:

1. The version (path + ETag) is *claimed*: its record, its blob-path index and its
   poll-schedule entry (due when the claim's lease ends) are created in one transaction.
   Duplicate and concurrent deliveries find the record and stop.
2. Before the first byte goes to F&O the record gets ``send_started_at``. When that write
   fails, nothing was sent: a mark that landed all the same (its answer lost) is cleared.
3. F&O's message id is written to the record together with its message-id index and its new
   schedule entry (one transaction).

Recovery, by the next delivery of the same version or by the poller when the lease ends:

- died between 1 and 2 (nothing sent): the file is sent now (it was never sent before);
- died between 2 and 3 (sent, answer lost): F&O may hold the file, and the API cannot look a
  message up by anything but its id. Re-sending could import it twice, so the record becomes
  ``EnqueueFailed`` with the reason "outcome unknown" and the external identifier to look for
  in F&O; a person re-uploads the file to send it again.

A failure that proves F&O did not take the file (throttled, unavailable, no token, refused
credentials or permissions, an unknown job, no connection, an upload cut short) is recorded in
``last_error`` and the send is retried from the poll schedule with back-off, until
``MAX_PENDING_AGE``. A send is cut short when it would outlive its lease, so recovery never
judges a send that is still running.

Files of a package route (``"api": "package"``, or an enqueue route's ``on_too_large``) take
the DMF package API instead of step 2-3: upload (with the same deadline as a send), the
package-import lease, ``Importing`` with our execution id written before ImportFromPackage;
each step's failure and its recovery are in :mod:`shared.flows.package`.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobProperties

from shared import telemetry
from shared.clients.d365 import (
    NOT_TAKEN_STATUSES,
    D365Client,
    D365ConnectionError,
    D365CredentialError,
    D365Error,
    D365HttpError,
    D365PayloadTooLargeError,
    D365ResponseError,
    D365UntrustedUrlError,
    EnqueueResult,
    RetryPolicy,
    external_id_header,
)
from shared.config import D365Settings, Settings
from shared.config.routes import (
    API_PACKAGE,
    ImportRoute,
    ImportRoutes,
    RejectReason,
    RouteMatch,
    RoutingError,
)
from shared.errors import AppError, safe_text
from shared.flows.package import (
    PACKAGE_MAX_BYTES,
    ImportVerdict,
    LeaseHeldError,
    PackageError,
    PackageImporter,
    TemplateChangedError,
    TemplateError,
    classify_import_failure,
    execution_id_for,
)
from shared.flows.source_blob import (
    Archiver,
    fingerprint,
    is_own_stamp,
    resubmit_fields,
    stamp,
    stamped_record_key,
)
from shared.tracking import (
    UNSCHEDULE,
    Backoff,
    ConcurrencyError,
    TrackedFile,
    TrackingState,
    TrackingStore,
    quoted_etag,
    utcnow,
)
from shared.zips import ZipRefusedError

__all__ = [
    "DELETED",
    "SUPERSEDED",
    "EnqueuePolicy",
    "Enqueuer",
    "SendDeadlineError",
    "default_backoff",
]

_LOGGER = logging.getLogger(__name__)
SUPERSEDED = "Superseded"
DELETED = "Deleted"
_GATEWAY_STATUSES = frozenset({502, 504})
# The SAS PUT of a package: only these (and 5xx) may pass; a 400 / 403 / 413 will not.
_UPLOAD_TRANSIENT_STATUSES = frozenset({408, 429})
_UPLOAD_OPERATION = "upload_package"
_ONE_ATTEMPT = RetryPolicy(max_attempts=1)
_WRITE_TRIES = 5
_WRITE_PAUSE_SECONDS = 0.5


class SendDeadlineError(AppError):
    """The upload would have outlived the claim's lease; it was cut short before its end,
    so F&O cannot have taken the file."""


class _UnexpectedError(AppError):
    """An error no step foresaw, before F&O was asked to import: shown by its type (and its
    text only when it is one of ours), never by a text that may hold a URL or a value."""

    def __init__(self, cause: Exception) -> None:
        self.shown = _shown_error(cause)
        super().__init__(
            f"the package upload failed unexpectedly ({self.shown}); F&O imported nothing. If "
            "it happens again, report it with the app's log of this file"
        )


def _shown_error(exc: Exception) -> str:
    """:func:`shared.errors.safe_text`, with the module of a type that is not a builtin
    (``struct.error`` says more than ``error``)."""
    kind = type(exc)
    if isinstance(exc, AppError) or kind.__module__ == "builtins":
        return safe_text(exc)
    return f"{kind.__module__}.{kind.__qualname__}"


def _outcome_unknown(record: TrackedFile, why: str) -> str:
    return (
        f"outcome unknown: F&O may or may not have the file, as {why}. It was not re-sent, to "
        "avoid importing it twice. Look in F&O (Data management > the recurring job's message "
        f"list) for external identifier {external_id_header(record.blob)!r}; upload the file "
        "again to re-send it."
    )


def default_backoff() -> Backoff:
    """The poll and retry back-off of the default settings."""
    return Backoff(Settings.poll_interval_min, Settings.poll_interval_max)


@dataclass(frozen=True)
class EnqueuePolicy:
    """Timing and limits of the enqueue step.

    :ivar claim_lease: how long a worker owns a claimed file before recovery may judge it.
    :ivar answer_timeout: the longest wait for F&O's answer once the upload ended (its read
        timeout): an upload must end this long before the lease does.
    :ivar retry: back-off between sends F&O did not take.
    :ivar max_pending_age: a file not taken by F&O by then ends ``EnqueueFailed``.
    :ivar package_max_bytes: the largest file of the package path (a package route without
        ``max_bytes``, or an ``on_too_large`` file); see
        :data:`shared.flows.package.PACKAGE_MAX_BYTES`.

    The defaults are the settings' (:class:`shared.config.Settings`), defined there once.
    """

    claim_lease: timedelta = Settings.claim_lease
    answer_timeout: timedelta = D365Settings.http_timeout
    first_poll_delay: timedelta = Settings.poll_interval_min
    default_max_bytes: int = Settings.max_file_bytes
    retry: Backoff = field(default_factory=default_backoff)
    max_pending_age: timedelta = Settings.max_pending_age
    package_max_bytes: int = PACKAGE_MAX_BYTES


class _DeadlineStream:
    """A blob download that refuses to go on past a deadline, so an upload stops before its
    body is complete (an incomplete request is never a message in F&O)."""

    def __init__(self, stream: Any, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, size: int = -1, /) -> bytes:
        if time.monotonic() > self._deadline:
            raise SendDeadlineError(
                "the upload was stopped before its end: it would have outlived the claim's "
                "lease (CLAIM_LEASE); raise CLAIM_LEASE for files this large or this slow"
            )
        return self._stream.read(size)


class Enqueuer:
    """Sends blob versions to F&O exactly once and records what happened.

    :param store: the tracking store.
    :param client: the F&O client.
    :param routes: the route table.
    :param archiver: gives access to the inbound container (for recovery by the poller).
    :keyword policy: leases, first poll delay, size limit, retries.
    :keyword clock: the time source (UTC).
    :keyword packages: the package path, for package routes and ``on_too_large``; without
        it such files end ``EnqueueFailed`` saying the package path is not set up.
    """

    def __init__(
        self,
        store: TrackingStore,
        client: D365Client,
        routes: ImportRoutes,
        archiver: Archiver,
        *,
        policy: EnqueuePolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        packages: PackageImporter | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._routes = routes
        self._archiver = archiver
        self._policy = policy or EnqueuePolicy()
        self._clock = clock
        self._packages = packages

    def handle(self, blob: BlobClient) -> TrackedFile | None:
        """Process one delivery of a blob version (the blob trigger's whole job).

        :returns: the version's record, or None when the blob no longer exists.
        :raises AzureError: storage failed before the file was claimed; a redelivery retries.
        """
        # Our own client on the same blob (the trigger watches INBOUND_CONTAINER): our
        # retries, timeouts and connection pool rather than the binding's defaults.
        blob = self._archiver.source(blob.blob_name)
        try:
            props = blob.get_blob_properties()
        except ResourceNotFoundError:
            _LOGGER.warning(
                "blob gone before it could be read blob=%s",
                blob.blob_name,
                extra=telemetry.log_ids(blob=blob.blob_name),
            )
            return None
        stamped = stamped_record_key(props)
        if stamped:
            own = self._store.get(stamped)
            if is_own_stamp(props, own):
                _LOGGER.debug("own metadata write, nothing to do blob=%s", props.name)
                return own
        try:
            match = self._check(props)
        except RoutingError as exc:
            return self._reject(blob, props, exc)
        now = self._clock()
        lease_end = now + self._policy.claim_lease
        claim = self._store.claim(
            props.name,
            props.etag,
            modified_at=props.last_modified,
            received_at=now,
            schedule_at=lease_end,
            route=match.route.name,
            activity_id=match.route.activity_id,
            entity=match.route.entity,
            company=match.company,
            size=props.size,
            fingerprint=fingerprint(props),
            lease_until=lease_end,
            **self._package_fields(match.route, props.size),
            **resubmit_fields(props),
        )
        record = claim.record
        telemetry.annotate(blob=record.blob, record_id=record.record_id, route=record.route)
        if claim.created:
            _LOGGER.info(
                "claimed blob=%s etag=%s record=%s route=%s",
                record.blob,
                record.blob_etag,
                record.record_id,
                record.route,
                extra=telemetry.record_ids(record),
            )
            return self._dispatch(blob, record, props.metadata)
        return self._resume(blob, record)

    def recover(self, record: TrackedFile) -> TrackedFile:
        """Go on with a file whose claim lease ended before F&O took it (called by the poller)."""
        if record.state is not TrackingState.RECEIVED:
            return record
        return self._resume(self._archiver.source(record.blob), record) or record

    # -- steps ----------------------------------------------------------------------------

    def _check(self, props: BlobProperties) -> RouteMatch:
        match = self._routes.resolve(props.name)
        if props.size == 0:
            raise RoutingError(
                RejectReason.EMPTY_FILE,
                props.name,
                f"{props.name!r} is empty (0 bytes); F&O would import nothing. Upload the "
                "file again with its content.",
            )
        problem = self._size_problem(match.route, props.name, props.size)
        if problem:
            raise RoutingError(RejectReason.TOO_LARGE, props.name, problem)
        return match

    def _size_problem(self, route: ImportRoute, name: str, size: int) -> str | None:
        """Why a file is too large for its route's API, None when it is not.

        An enqueue route's limit is ``max_bytes`` (else MAX_FILE_BYTES); a file over it of an
        ``on_too_large`` route, and any file of a package route, has the package path's own
        limit: a package route's ``max_bytes``, else ``package_max_bytes`` (50,000 blocks).
        """
        enqueue_limit = route.max_bytes or self._policy.default_max_bytes
        if not route.uses_package_api:
            if size <= enqueue_limit:
                return None
            if not route.on_too_large:
                return (
                    f"{name!r} is {size:,} bytes, over the {enqueue_limit:,}-byte limit of "
                    f"route {route.name!r}. F&O's enqueue endpoint refuses large files "
                    "(413); split the file, or import it through the data management package "
                    "API; or raise max_bytes on the route if your environment accepts it."
                )
        own_limit = route.max_bytes if route.uses_package_api else None
        limit = own_limit or self._policy.package_max_bytes
        if size <= limit:
            return None
        why = (
            "its max_bytes; raise max_bytes on the route, or split the data into smaller packages"
            if own_limit
            else "a package goes to F&O's storage in at most 50,000 blocks of 4 MiB; split the "
            "data into smaller packages"
        )
        return (
            f"{name!r} is {size:,} bytes, over the {limit:,}-byte limit of the data management "
            f"package API on route {route.name!r} ({why})."
        )

    def _reject(self, blob: BlobClient, props: BlobProperties, exc: RoutingError) -> TrackedFile:
        now = self._clock()
        claim = self._store.claim(
            props.name,
            props.etag,
            modified_at=props.last_modified,
            received_at=now,
            state=TrackingState.REJECTED,
            size=props.size,
            reject_reason=exc.reason.value,
            last_error=str(exc),
            completed_at=now,
            fingerprint=fingerprint(props),
            **resubmit_fields(props),
        )
        record = claim.record
        if claim.created:
            _LOGGER.warning(
                "rejected blob=%s reason=%s record=%s: %s",
                props.name,
                exc.reason.value,
                record.record_id,
                exc,
                extra=telemetry.record_ids(record, event="file_finished"),
            )
            telemetry.record_outcome(record.state.value, record.route)
            stamp(blob, record, etag=props.etag, metadata=props.metadata)
        return record

    def _resume(self, blob: BlobClient, record: TrackedFile) -> TrackedFile | None:
        """Another delivery, or the poller, found a claim: take it over only if abandoned."""
        now = self._clock()
        if record.state is not TrackingState.RECEIVED:
            _LOGGER.info(
                "duplicate delivery blob=%s state=%s message_id=%s",
                record.blob,
                record.state.value,
                record.message_id,
                extra=telemetry.record_ids(record),
            )
            return record
        if record.lease_until and record.lease_until > now:
            # Its schedule entry comes due when the lease ends; nothing to write.
            _LOGGER.info(
                "claim held, or its retry not due yet blob=%s",
                record.blob,
                extra=telemetry.record_ids(record),
            )
            return record
        if record.send_started_at is not None and record.api != API_PACKAGE:
            return self._finish(
                record,
                state=TrackingState.ENQUEUE_FAILED,
                last_error=_outcome_unknown(record, "the worker stopped while sending it"),
            )
        if now - record.received_at > self._policy.max_pending_age:
            return self._finish(
                record,
                state=TrackingState.ENQUEUE_FAILED,
                last_error=(
                    f"F&O did not take the file within {self._policy.max_pending_age} "
                    f"(MAX_PENDING_AGE); last error: {record.last_error or 'none'}. It was "
                    "never received by F&O: fix the cause and upload it again."
                ),
            )
        lease_end = now + self._policy.claim_lease
        try:
            taken = self._store.update(record, lease_until=lease_end, schedule_at=lease_end)
        except ConcurrencyError:
            return None
        _LOGGER.info(
            "resuming claim blob=%s record=%s",
            record.blob,
            record.record_id,
            extra=telemetry.record_ids(record),
        )
        return self._dispatch(blob, taken, None)

    def _dispatch(
        self, blob: BlobClient, record: TrackedFile, metadata: Mapping[str, str] | None
    ) -> TrackedFile:
        """Send a claimed file by its route's API."""
        if record.api == API_PACKAGE:
            return self._send_package(blob, record)
        return self._send(blob, record, metadata)

    def _send(
        self, blob: BlobClient, record: TrackedFile, metadata: Mapping[str, str] | None
    ) -> TrackedFile:
        """Send the claimed version. ``blob`` is our own client on it (streamed in small
        ranges, see shared.clients.storage.STREAM_CHUNK); ``metadata`` its metadata when known."""
        try:
            record = self._store.update(
                record,
                send_started_at=self._clock(),
                enqueue_attempts=record.enqueue_attempts + 1,
            )
        except AzureError as exc:
            return self._unmark(record, exc)
        etag = record.blob_etag
        deadline = self._send_deadline(record)

        def open_body() -> BinaryIO:
            # The claimed version only: an overwrite meanwhile is its own delivery.
            downloader: Any = blob.download_blob(
                etag=quoted_etag(etag), match_condition=MatchConditions.IfNotModified
            )
            stream: Any = _DeadlineStream(downloader, deadline)
            return stream

        started = time.monotonic()
        try:
            result = self._client.enqueue(
                record.activity_id or "",
                open_body,
                length=record.size,
                entity=record.entity,
                company=record.company,
                external_id=record.blob,
                # One attempt per send: each is bracketed by send_started_at and its outcome,
                # so a worker that dies while waiting to retry never leaves "outcome unknown".
                retry=_ONE_ATTEMPT,
            )
        except (AzureError, D365Error, SendDeadlineError) as exc:
            telemetry.record_enqueue(
                route=record.route, seconds=time.monotonic() - started, size=None, ok=False
            )
            return self._send_failed(record, exc)
        telemetry.record_enqueue(
            route=record.route, seconds=time.monotonic() - started, size=record.size, ok=True
        )
        _LOGGER.info(
            "enqueued blob=%s message_id=%s activity=%s bytes=%s",
            record.blob,
            result.message_id,
            record.activity_id,
            record.size,
            extra=telemetry.record_ids(
                record, message_id=result.message_id, state=TrackingState.ENQUEUED.value
            ),
        )
        telemetry.annotate(message_id=result.message_id)
        telemetry.record_outcome(TrackingState.ENQUEUED.value, record.route)
        record = self._record_enqueued(record, result)
        stamp(blob, record, etag=etag, metadata=metadata)
        return record

    def _unmark(self, record: TrackedFile, exc: AzureError) -> TrackedFile:
        """The mark that a send begins failed, so nothing was sent; yet it may have landed
        with its answer lost, and a mark left behind is judged a send cut short ("outcome
        unknown", never re-sent). Clear it and retry later, only while the claim is still this
        worker's: its lease, still running (a recovery that took it over wrote its own lease,
        and one may take it over once it ends).

        :raises AzureError: the record could not be read back.
        """
        current = self._store.get(record.row_key)
        if (
            current is None
            or current.state is not TrackingState.RECEIVED
            or current.lease_until != record.lease_until
            or current.lease_until is None
            or current.lease_until <= self._clock()
        ):
            return current or record
        return self._retry_later(current, exc)

    def _send_deadline(self, record: TrackedFile) -> float:
        """When (``time.monotonic``) an upload must stop for its answer to come within the
        claim's lease: recovery then never judges an upload that still runs."""
        lease_left = (record.lease_until or self._clock()) - self._clock()
        return time.monotonic() + (lease_left - self._policy.answer_timeout).total_seconds()

    def _send_failed(
        self, record: TrackedFile, exc: AzureError | D365Error | SendDeadlineError
    ) -> TrackedFile:
        """Record why a send failed: retried later when F&O provably did not take the file.

        Final: the blob changed or went, F&O refused the file, or F&O may have it (a 2xx we
        cannot read, a connection lost after the body was sent), which is never re-sent.
        """
        if isinstance(exc, ResourceModifiedError | ResourceNotFoundError):
            # A conditional read of a deleted blob may answer 412 as well as 404.
            overwritten = self._archiver.source(record.blob).exists()
            return self._finish(
                record,
                state=TrackingState.REJECTED,
                reject_reason=SUPERSEDED if overwritten else DELETED,
                last_error="the blob was overwritten before it was sent; the new version is "
                "tracked on its own"
                if overwritten
                else "the blob was deleted before it was sent",
                stamp_blob=False,
            )
        if _ambiguous(exc):
            _LOGGER.error(
                "enqueue outcome unknown blob=%s: %s",
                record.blob,
                exc,
                extra=telemetry.record_ids(record),
            )
            return self._finish(
                record,
                state=TrackingState.ENQUEUE_FAILED,
                last_error=_outcome_unknown(record, f"the call ended with: {exc}"),
            )
        if _not_taken(exc):
            return self._retry_later(record, exc)
        route = self._routes.get(record.route or "")
        if isinstance(exc, D365PayloadTooLargeError) and route is not None and route.on_too_large:
            return self._switch_to_package(record, route, exc)
        _LOGGER.error(
            "enqueue failed blob=%s record=%s: %s",
            record.blob,
            record.record_id,
            exc,
            extra=telemetry.record_ids(record),
        )
        return self._finish(record, state=TrackingState.ENQUEUE_FAILED, last_error=str(exc))

    def _retry_later(self, record: TrackedFile, exc: Exception, **more: Any) -> TrackedFile:
        """F&O did not take the file: send it again after a back-off, from the poll schedule.

        This write is the proof that nothing reached F&O, so it is retried on its own.
        ``more``: further changes (the package path's return to ``Received``).
        """
        wait = self._policy.retry.next_interval(record.enqueue_attempts - 1)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            wait = max(wait, timedelta(seconds=retry_after))
        retry_at = self._clock() + wait
        _LOGGER.warning(
            "enqueue not accepted, retry at %s blob=%s record=%s: %s",
            retry_at.isoformat(),
            record.blob,
            record.record_id,
            exc,
            extra=telemetry.record_ids(record),
        )
        return self._persist(
            record,
            over_final=False,
            send_started_at=None,
            lease_until=retry_at,
            last_error=f"not taken by F&O yet, retried at {retry_at:%H:%M:%S}Z: {exc}",
            schedule_at=retry_at,
            **more,
        )

    def _record_enqueued(self, record: TrackedFile, result: EnqueueResult) -> TrackedFile:
        """Write F&O's message id, even over an "outcome unknown" written meanwhile: F&O has
        the file, so the record must say so."""
        return self._persist(
            record,
            over_final=True,
            state=TrackingState.ENQUEUED,
            message_id=result.message_id,
            raw_message_id=result.raw_message_id,
            d365_status=TrackingState.ENQUEUED.value,
            enqueued_at=self._clock(),
            completed_at=None,
            lease_until=None,
            last_error=None,
            reject_reason=None,
            poll_count=0,
            schedule_at=self._clock() + self._policy.first_poll_delay,
            index_message=True,
        )

    def _persist(self, record: TrackedFile, *, over_final: bool, **changes: Any) -> TrackedFile:
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

    # -- the package API (see shared.flows.package) ---------------------------------------

    def _package_fields(self, route: ImportRoute, size: int) -> dict[str, Any]:
        """Claim fields of a file that takes the package path from the start."""
        if route.uses_package_api:
            return {"api": API_PACKAGE, "definition_group": route.definition_group}
        limit = route.max_bytes or self._policy.default_max_bytes
        if route.on_too_large and size > limit:
            return {
                "api": API_PACKAGE,
                "definition_group": route.definition_group,
                "api_note": (
                    f"{size:,} bytes, over the route's {limit:,}-byte enqueue limit: imported "
                    f"through the package API into {route.definition_group!r} (on_too_large)"
                ),
            }
        return {}

    def _switch_to_package(
        self, record: TrackedFile, route: ImportRoute, exc: D365HttpError
    ) -> TrackedFile:
        """F&O refused the enqueue with 413 (so it has nothing): take the package path."""
        record = self._persist(
            record,
            over_final=False,
            api=API_PACKAGE,
            definition_group=route.definition_group,
            send_started_at=None,
            api_note=(
                f"F&O refused the enqueue as too large (HTTP {exc.status_code}): imported "
                f"through the package API into {route.definition_group!r} (on_too_large)"
            ),
        )
        if record.state.is_terminal:
            return record
        return self._send_package(self._archiver.source(record.blob), record)

    def _send_package(self, blob: BlobClient, record: TrackedFile) -> TrackedFile:
        """Check the import lease is free, upload (cut short like `_send` when it would
        outlive the claim's lease), take the import lease, write ``Importing`` with our
        execution id, call ImportFromPackage once. Every step's failure is in
        shared.flows.package's docstring."""
        route = self._routes.get(record.route or "")
        if self._packages is None or route is None or not route.definition_group:
            return self._finish(
                record,
                state=TrackingState.ENQUEUE_FAILED,
                last_error=(
                    f"route {record.route!r} takes the package API, but it is not set up here "
                    "(the route is gone, or has no definition_group); fix D365_ROUTES and "
                    "upload the file again"
                ),
            )
        record = self._store.update(record, enqueue_attempts=record.enqueue_attempts + 1)
        deadline = self._send_deadline(record)
        try:
            self._packages.check_lease()
            upload = self._packages.upload(
                blob, record, route, guard=lambda stream: _DeadlineStream(stream, deadline)
            )
            lease = self._packages.acquire_lease()
        except (
            AzureError,
            D365Error,
            TemplateError,
            TemplateChangedError,
            PackageError,
            ZipRefusedError,
            LeaseHeldError,
            SendDeadlineError,
            # Left after the importer's own checks: a package stream that ended early.
            ValueError,
        ) as exc:
            return self._upload_failed(record, exc)
        except Exception as exc:
            # Last resort, before F&O was asked to import: a defect nobody foresaw must not
            # leave the file Received without a cause and end "last error: none".
            unexpected = _UnexpectedError(exc)
            where = traceback.extract_tb(exc.__traceback__)[-1]
            _LOGGER.error(
                "package upload failed unexpectedly blob=%s record=%s: %s at %s:%s",
                record.blob,
                record.record_id,
                unexpected.shown,
                where.filename,
                where.lineno,
                extra=telemetry.record_ids(record),
            )
            return self._retry_later(record, unexpected)
        try:
            # Conditional on the claim as read: a recovery that took the file over meanwhile
            # wins, and this worker stops before calling F&O.
            importing = self._store.update(
                record,
                state=TrackingState.IMPORTING,
                execution_id=execution_id_for(record),
                package_entities=upload.entities,
                d365_status="ImportFromPackage",
                enqueued_at=self._clock(),
                lease_until=None,
                last_error=None,
                poll_count=0,
                schedule_at=self._clock() + self._packages.policy.first_poll_delay,
            )
        except ConcurrencyError:
            self._packages.release_lease(lease)
            _LOGGER.warning(
                "claim taken over by recovery before ImportFromPackage; stopping blob=%s",
                record.blob,
                extra=telemetry.record_ids(record),
            )
            return self._store.get(record.row_key) or record
        except BaseException:
            self._packages.release_lease(lease)
            raise
        return self._import(importing, upload, route, lease)

    def _upload_failed(self, record: TrackedFile, exc: Exception) -> TrackedFile:
        """A failure before ImportFromPackage (F&O imported nothing): retried later unless
        waiting will not cure it; then the file ends ``EnqueueFailed`` with the fix."""
        if isinstance(exc, ResourceModifiedError | ResourceNotFoundError):
            return self._send_failed(record, exc)
        if not _upload_refused(exc):
            return self._retry_later(record, exc)
        _LOGGER.error(
            "package upload refused blob=%s record=%s: %s",
            record.blob,
            record.record_id,
            exc,
            extra=telemetry.record_ids(record),
        )
        if isinstance(exc, ZipRefusedError):
            cause = f"{exc}; F&O imported nothing: {exc.fix}"
        elif isinstance(exc, TemplateError | PackageError):
            cause = f"{exc}"
        else:
            cause = f"the package upload was refused, so F&O imported nothing: {exc} Fix the cause"
        return self._finish(
            record,
            state=TrackingState.ENQUEUE_FAILED,
            last_error=f"{cause}; then resubmit the file (or upload it again).",
        )

    def _import(
        self, record: TrackedFile, upload: Any, route: ImportRoute, lease: Any
    ) -> TrackedFile:
        assert self._packages is not None
        if record.enqueue_attempts > 1:
            try:
                known = self._packages.is_known(record)
            except D365Error as exc:
                self._packages.release_lease(lease)
                return self._retry_later(
                    record, exc, state=TrackingState.RECEIVED, execution_id=None
                )
            if known:
                # An earlier attempt's refusal hid an import F&O took: follow it, never re-send.
                self._packages.release_lease(lease)
                _LOGGER.warning(
                    "ImportFromPackage not called again: F&O knows execution_id=%s blob=%s",
                    record.execution_id,
                    record.blob,
                    extra=telemetry.record_ids(record),
                )
                return record
        try:
            answered = self._packages.import_package(upload, record, route)
        except D365Error as exc:
            # Without an answer F&O may still be in that call: its lease runs out on its own.
            if not isinstance(exc, D365ConnectionError):
                self._packages.release_lease(lease)
            return self._import_failed(record, exc, classify_import_failure(exc))
        self._packages.release_lease(lease)
        if answered != record.execution_id:
            record = self._follow_answered_execution(record, answered)
        _LOGGER.info(
            "package import started blob=%s execution_id=%s project=%s",
            record.blob,
            record.execution_id,
            route.definition_group,
            extra=telemetry.record_ids(record, state=TrackingState.IMPORTING.value),
        )
        telemetry.record_outcome(TrackingState.IMPORTING.value, record.route)
        return record

    def _follow_answered_execution(self, record: TrackedFile, answered: str) -> TrackedFile:
        """F&O answered ImportFromPackage with another execution id than the one sent: the
        import runs under F&O's, so that is the one followed; ours is kept beside it. If this
        write never lands, the record follows ours, which F&O does not know, and ends
        ``TimedOut`` at the age limit saying the import may not have started (never twice)."""
        sent = record.execution_id
        _LOGGER.warning(
            "ImportFromPackage answered execution_id=%s for sent %s; following F&O's blob=%s",
            answered,
            sent,
            record.blob,
            extra=telemetry.record_ids(record, execution_id=answered),
        )
        return self._persist(
            record, over_final=False, execution_id=answered, sent_execution_id=sent
        )

    def _import_failed(self, record: TrackedFile, exc: D365Error, verdict: str) -> TrackedFile:
        if verdict == ImportVerdict.FOLLOW:
            _LOGGER.warning(
                "ImportFromPackage gave no clear answer; following execution_id=%s blob=%s: %s",
                record.execution_id,
                record.blob,
                exc,
                extra=telemetry.record_ids(record),
            )
            return self._persist(
                record,
                over_final=False,
                last_error=(
                    f"ImportFromPackage gave no clear answer ({exc}); F&O may be importing: "
                    f"followed by execution id {record.execution_id}, not re-sent"
                ),
            )
        if verdict == ImportVerdict.RETRY:
            # F&O did not take it: back to Received, sent again after a back-off.
            return self._retry_later(record, exc, state=TrackingState.RECEIVED, execution_id=None)
        _LOGGER.error(
            "ImportFromPackage refused blob=%s: %s",
            record.blob,
            exc,
            extra=telemetry.record_ids(record),
        )
        # Must land: the poller may have re-anchored the Importing record during the call.
        return self._finish(
            record,
            must_land=True,
            state=TrackingState.IMPORT_FAILED,
            d365_status="ImportFromPackage refused",
            last_error=str(exc),
        )

    # -- outcomes -------------------------------------------------------------------------------

    def _finish(
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
            written = self._persist(record, over_final=False, **final)
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
            extra=telemetry.record_ids(record, event="file_finished"),
        )
        telemetry.record_outcome(record.state.value, record.route)
        if stamp_blob:
            stamp(self._archiver.source(record.blob), record, etag=record.blob_etag)
        return record


def _ambiguous(exc: Exception) -> bool:
    """F&O may have the file: a 2xx we cannot read, a connection lost after the body was
    sent, or a gateway's 502/504 (the environment behind it may have taken the file)."""
    if isinstance(exc, D365ResponseError):
        return True
    if isinstance(exc, D365ConnectionError):
        return exc.sent_body
    return isinstance(exc, D365HttpError) and exc.status_code in _GATEWAY_STATUSES


def _upload_refused(exc: Exception) -> bool:
    """A package upload-stage failure that waiting will not cure: the template, the package
    (an unreadable manifest, too large for a block blob), a zip the limits refuse, a BlobUrl
    the client refused to call, or a 4xx of the SAS PUT (400, 403, 413...) or of
    GetAzureWriteUrl (but for the enqueue's not-taken statuses: credentials and permissions
    get fixed)."""
    if isinstance(exc, TemplateError | PackageError | ZipRefusedError | D365UntrustedUrlError):
        return True
    if not isinstance(exc, D365HttpError) or exc.status_code >= 500:
        return False
    if exc.operation == _UPLOAD_OPERATION:
        return exc.status_code not in _UPLOAD_TRANSIENT_STATUSES
    return exc.status_code not in NOT_TAKEN_STATUSES


def _not_taken(exc: Exception) -> bool:
    """The failure proves F&O did not take the file."""
    if isinstance(exc, SendDeadlineError | AzureError | D365CredentialError):
        return True
    if isinstance(exc, D365ConnectionError):
        return not exc.sent_body
    return isinstance(exc, D365HttpError) and exc.status_code in NOT_TAKEN_STATUSES
