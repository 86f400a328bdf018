"""One blob version to its recurring data job: route, claim, stream to F&O, track.

Exactly once, and what happens when a worker dies on the way:

1. The version (path + ETag) is *claimed* in the status table (create-or-409). Duplicate and
   concurrent deliveries find the claim and stop. The claim carries a lease
   (``CLAIM_LEASE``) and a poll-schedule entry due when the lease ends.
2. Before the first byte goes to F&O the record gets ``send_started_at``.
3. F&O's message id is written to the record, indexed, and scheduled for polling.

Recovery, by the next delivery of the same version or by the poller when the lease ends:

- died between 1 and 2 (nothing sent): the file is sent now (it was never sent before);
- died between 2 and 3 (sent, answer lost): F&O may hold the file, and the API cannot look a
  message up by anything but its id. Re-sending could import it twice, so the record becomes
  ``EnqueueFailed`` with the reason "outcome unknown" and the external identifier to look for
  in F&O; a person re-uploads the file to send it again.

A failure that proves F&O did not take the file (throttled or unavailable after the retry
budget, no connection, no token) releases the lease and re-raises, so the host's blob-trigger
retries (then the poison queue) and the poller both get another go at it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobProperties

from shared.d365 import (
    D365Client,
    D365ConnectionError,
    D365CredentialError,
    D365Error,
    D365ResponseError,
    D365ServerError,
    D365ThrottledError,
)
from shared.routing import RejectReason, RouteMatch, RouteTable, RoutingError
from shared.source_blob import (
    RECORD_KEY,
    Archiver,
    fingerprint,
    is_own_stamp,
    quoted,
    stamp,
    streaming_client,
)
from shared.tracking import (
    ConcurrencyError,
    TrackedFile,
    TrackingState,
    TrackingStore,
    utcnow,
)

_LOGGER = logging.getLogger(__name__)
SUPERSEDED = "Superseded"
DELETED = "Deleted"


def _outcome_unknown(record: TrackedFile, why: str) -> str:
    return (
        f"outcome unknown: F&O may or may not have the file, as {why}. It was not re-sent, to "
        "avoid importing it twice. Look in F&O (Data management > the recurring job's message "
        f"list) for external identifier {record.blob!r}; upload the file again to re-send it."
    )


@dataclass(frozen=True)
class EnqueuePolicy:
    """Timing and limits of the enqueue step."""

    claim_lease: timedelta = timedelta(minutes=10)
    first_poll_delay: timedelta = timedelta(seconds=30)
    default_max_bytes: int = 48 * 1024 * 1024


class Enqueuer:
    """Sends blob versions to F&O exactly once and records what happened.

    :param store: the tracking store.
    :param client: the F&O client.
    :param routes: the route table.
    :param archiver: gives access to the inbound container (for recovery by the poller).
    :keyword policy: leases, first poll delay, default size limit.
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self,
        store: TrackingStore,
        client: D365Client,
        routes: RouteTable,
        archiver: Archiver,
        *,
        policy: EnqueuePolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._client = client
        self._routes = routes
        self._archiver = archiver
        self._policy = policy or EnqueuePolicy()
        self._clock = clock

    def handle(self, blob: BlobClient) -> TrackedFile | None:
        """Process one delivery of a blob version (the blob trigger's whole job).

        :returns: the version's record, or None when the blob no longer exists.
        :raises D365Error: F&O did not take the file and a retry may succeed.
        """
        try:
            props = blob.get_blob_properties()
        except ResourceNotFoundError:
            _LOGGER.warning("blob gone before it could be read blob=%s", blob.blob_name)
            return None
        stamped = props.metadata.get(RECORD_KEY)
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
        claim = self._store.claim(
            props.name,
            props.etag,
            received_at=now,
            route=match.route.name,
            activity_id=match.route.activity_id,
            entity=match.route.entity,
            company=match.company,
            size=props.size,
            fingerprint=fingerprint(props),
            lease_until=now + self._policy.claim_lease,
        )
        record = claim.record
        if claim.created:
            self._store.schedule(record, now + self._policy.claim_lease)
            _LOGGER.info(
                "claimed blob=%s etag=%s record=%s route=%s",
                record.blob,
                record.blob_etag,
                record.record_id,
                record.route,
            )
            return self._send(blob, record)
        return self._resume(blob, record)

    def recover(self, record: TrackedFile) -> TrackedFile:
        """Finish a claim whose lease ended without an enqueue (called by the poller).

        A record already past ``Received`` whose index or schedule write was lost (the worker
        stopped after F&O answered) gets them written again, so it is followed.
        """
        if record.state is not TrackingState.RECEIVED and record.message_id:
            self._store.link_message(record)
            self._store.schedule(record, self._clock())
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
        limit = match.route.max_bytes or self._policy.default_max_bytes
        if props.size > limit:
            raise RoutingError(
                RejectReason.TOO_LARGE,
                props.name,
                f"{props.name!r} is {props.size:,} bytes, over the {limit:,}-byte limit of "
                f"route {match.route.name!r}. F&O's enqueue endpoint refuses large files "
                "(413); split the file, or import it through the data management package "
                "API; or raise max_bytes on the route if your environment accepts it.",
            )
        return match

    def _reject(self, blob: BlobClient, props: BlobProperties, exc: RoutingError) -> TrackedFile:
        now = self._clock()
        claim = self._store.claim(
            props.name,
            props.etag,
            received_at=now,
            state=TrackingState.REJECTED,
            size=props.size,
            reject_reason=exc.reason.value,
            last_error=str(exc),
            completed_at=now,
            fingerprint=fingerprint(props),
        )
        record = claim.record
        if claim.created:
            _LOGGER.warning(
                "rejected blob=%s reason=%s record=%s: %s",
                props.name,
                exc.reason.value,
                record.record_id,
                exc,
            )
            record = self._stamp(blob, record, props.etag)
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
            )
            return record
        if record.lease_until and record.lease_until > now:
            # The claim's schedule entry comes due when the lease ends; nothing to write.
            _LOGGER.info("claim held by another worker blob=%s", record.blob)
            return record
        if record.send_started_at is not None:
            return self._finish(
                record,
                state=TrackingState.ENQUEUE_FAILED,
                last_error=_outcome_unknown(record, "the worker stopped while sending it"),
            )
        try:
            taken = self._store.update(record, lease_until=now + self._policy.claim_lease)
        except ConcurrencyError:
            return None
        _LOGGER.info("resuming abandoned claim blob=%s record=%s", record.blob, record.record_id)
        self._store.schedule(taken, now + self._policy.claim_lease)
        return self._send(blob, taken)

    def _send(self, blob: BlobClient, record: TrackedFile) -> TrackedFile:
        now = self._clock()
        record = self._store.update(
            record,
            send_started_at=now,
            enqueue_attempts=record.enqueue_attempts + 1,
            lease_until=now + self._policy.claim_lease,
        )
        etag = record.blob_etag
        source = streaming_client(blob)

        def open_body() -> BinaryIO:
            # The claimed version only: an overwrite meanwhile is its own delivery.
            downloader: Any = source.download_blob(
                etag=quoted(etag), match_condition=MatchConditions.IfNotModified
            )
            return downloader

        try:
            result = self._client.enqueue(
                record.activity_id or "",
                open_body,
                length=record.size,
                entity=record.entity,
                company=record.company,
                external_id=record.blob,
            )
        except (AzureError, D365Error) as exc:
            return self._send_failed(record, exc)
        _LOGGER.info(
            "enqueued blob=%s message_id=%s activity=%s bytes=%s",
            record.blob,
            result.message_id,
            record.activity_id,
            record.size,
        )
        first_poll = self._clock() + self._policy.first_poll_delay
        record = self._record_enqueued(record, result.message_id, result.raw_message_id)
        self._store.link_message(record)
        self._store.schedule(record, first_poll)
        return self._stamp(blob, record, record.blob_etag)

    def _send_failed(self, record: TrackedFile, exc: AzureError | D365Error) -> TrackedFile:
        """Record why a send failed; re-raise when a later delivery may well succeed.

        Re-raised (after releasing the claim): the blob could not be read, F&O throttled or
        was unavailable, no token, no connection. Final: the blob changed or went, F&O
        refused the file, or F&O may have it (a 2xx we cannot read, a connection lost after
        the body was sent), which is not re-sent.
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
        if isinstance(exc, D365ResponseError) or (
            isinstance(exc, D365ConnectionError) and exc.sent_body
        ):
            _LOGGER.error("enqueue outcome unknown blob=%s: %s", record.blob, exc)
            return self._finish(
                record,
                state=TrackingState.ENQUEUE_FAILED,
                last_error=_outcome_unknown(record, f"the call ended with: {exc}"),
            )
        not_taken = (AzureError, D365ThrottledError, D365CredentialError, D365ConnectionError)
        if isinstance(exc, not_taken) or (
            isinstance(exc, D365ServerError) and exc.status_code == 503
        ):
            self._release(record, exc)
            raise exc
        _LOGGER.error("enqueue failed blob=%s record=%s: %s", record.blob, record.record_id, exc)
        return self._finish(record, state=TrackingState.ENQUEUE_FAILED, last_error=str(exc))

    def _record_enqueued(self, record: TrackedFile, message_id: str, raw: str) -> TrackedFile:
        """Write F&O's message id, even over an "outcome unknown" written meanwhile: F&O has
        the file, so the record must say so."""
        for _ in range(3):
            try:
                return self._store.update(
                    record,
                    state=TrackingState.ENQUEUED,
                    message_id=message_id,
                    raw_message_id=raw,
                    d365_status=TrackingState.ENQUEUED.value,
                    enqueued_at=self._clock(),
                    completed_at=None,
                    lease_until=None,
                    last_error=None,
                )
            except ConcurrencyError:
                _LOGGER.warning(
                    "record changed while F&O took the file; writing its message id anyway "
                    "blob=%s message_id=%s",
                    record.blob,
                    message_id,
                )
                record = self._store.get(record.row_key) or record
        raise ConcurrencyError(f"record {record.record_id} keeps changing")

    # -- outcomes -------------------------------------------------------------------------------

    def _finish(
        self,
        record: TrackedFile,
        *,
        stamp_blob: bool = True,
        **changes: Any,
    ) -> TrackedFile:
        record = self._store.update(record, lease_until=None, **changes)
        self._store.unschedule(record.record_id)
        if stamp_blob:
            record = self._stamp(self._archiver.source(record.blob), record, record.blob_etag)
        return record

    def _release(self, record: TrackedFile, exc: Exception) -> None:
        """F&O did not take the file: let the next delivery or the poller send it."""
        _LOGGER.warning(
            "enqueue not accepted, will retry blob=%s record=%s: %s",
            record.blob,
            record.record_id,
            exc,
        )
        try:
            self._store.update(
                record, send_started_at=None, lease_until=self._clock(), last_error=str(exc)
            )
        except ConcurrencyError:
            _LOGGER.warning("record changed while releasing blob=%s", record.blob)

    def _stamp(self, blob: BlobClient, record: TrackedFile, etag: str) -> TrackedFile:
        new_etag = stamp(blob, record, etag=etag)
        if new_etag is None:
            return record
        return self._store.update(record, stamped_etag=new_etag)
