"""A claimed file to F&O's enqueue endpoint, with F&O's answer recorded even when it is lost.

A failure that proves F&O did not take the file goes back to the schedule (see
:mod:`shared.flows.failures`); one that leaves it unknown whether F&O has the file ends
``EnqueueFailed`` as "outcome unknown", never re-sent; F&O's refusal as too large of an
``on_too_large`` route's file takes the package path (:mod:`shared.flows.package.send`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, BinaryIO

from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient

from shared import telemetry
from shared.clients.d365 import (
    D365Client,
    D365Error,
    D365PayloadTooLargeError,
    EnqueueResult,
)
from shared.clients.storage import download_version
from shared.config import ImportRoutes
from shared.flows.deadline import DeadlineStream, SendDeadlineError, send_deadline
from shared.flows.failures import ambiguous, not_taken
from shared.flows.outcomes import Outcomes, outcome_unknown
from shared.flows.package.send import PackageSender
from shared.flows.policies import ONE_ATTEMPT, EnqueuePolicy
from shared.flows.source_blob import stamp
from shared.tracking import TrackedFile, TrackingState, TrackingStore

__all__ = ["Sender"]

_LOGGER = logging.getLogger(__name__)


class Sender:
    """Sends a claimed version to F&O's enqueue endpoint, one attempt per send.

    :param store: the tracking store.
    :param client: the F&O client.
    :param routes: the route table (a route's ``on_too_large``).
    :param outcomes: the final writes.
    :param packages: the package path, for an ``on_too_large`` file F&O refused as too large.
    :keyword policy: the answer timeout and the first poll delay.
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self,
        store: TrackingStore,
        client: D365Client,
        routes: ImportRoutes,
        outcomes: Outcomes,
        packages: PackageSender,
        *,
        policy: EnqueuePolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._client = client
        self._routes = routes
        self._outcomes = outcomes
        self._packages = packages
        self._policy = policy
        self._clock = clock

    def send(
        self, blob: BlobClient, record: TrackedFile, metadata: Mapping[str, str] | None
    ) -> TrackedFile:
        """Send the claimed version. ``blob`` is our own client on it (streamed in small
        ranges, see shared.clients.storage.STREAM_CHUNK); ``metadata`` its metadata when known.

        The F&O budget's permit comes first: a wait for it between the mark that a send
        begins and the send would leave a worker dying meanwhile "outcome unknown".
        """
        try:
            with self._client.reserved("enqueue"):
                return self._send(blob, record, metadata)
        except D365Error as exc:  # no permit: nothing marked, nothing sent
            return self._send_failed(record, exc)

    def _send(
        self, blob: BlobClient, record: TrackedFile, metadata: Mapping[str, str] | None
    ) -> TrackedFile:
        try:
            record = self._store.update(
                record,
                send_started_at=self._clock(),
                enqueue_attempts=record.enqueue_attempts + 1,
            )
        except AzureError as exc:
            return self._unmark(record, exc)
        etag = record.blob_etag
        deadline = send_deadline(
            record, answer_timeout=self._policy.answer_timeout, clock=self._clock
        )

        def open_body() -> BinaryIO:
            # The claimed version only: an overwrite meanwhile is its own delivery.
            downloader: Any = download_version(blob, etag)
            stream: Any = DeadlineStream(downloader, deadline)
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
                retry=ONE_ATTEMPT,
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
        return self._outcomes.retry_later(current, exc)

    def _send_failed(
        self, record: TrackedFile, exc: AzureError | D365Error | SendDeadlineError
    ) -> TrackedFile:
        """Record why a send failed: retried later when F&O provably did not take the file.

        Final: the blob changed or went, F&O refused the file, or F&O may have it (a 2xx we
        cannot read, a connection lost after the body was sent), which is never re-sent.
        """
        if isinstance(exc, ResourceModifiedError | ResourceNotFoundError):
            return self._outcomes.blob_changed(record)
        if ambiguous(exc):
            _LOGGER.error(
                "enqueue outcome unknown blob=%s: %s",
                record.blob,
                exc,
                extra=telemetry.record_ids(record),
            )
            return self._outcomes.finish(
                record, **outcome_unknown(record, f"the call ended with: {exc}")
            )
        if not_taken(exc):
            return self._outcomes.retry_later(record, exc)
        route = self._routes.get(record.route or "")
        if isinstance(exc, D365PayloadTooLargeError) and route is not None and route.on_too_large:
            return self._packages.switch_to_package(record, route, exc)
        _LOGGER.error(
            "enqueue failed blob=%s record=%s: %s",
            record.blob,
            record.record_id,
            exc,
            extra=telemetry.record_ids(record),
        )
        return self._outcomes.finish(
            record, state=TrackingState.ENQUEUE_FAILED, last_error=str(exc)
        )

    def _record_enqueued(self, record: TrackedFile, result: EnqueueResult) -> TrackedFile:
        """Write F&O's message id, even over an "outcome unknown" written meanwhile: F&O has
        the file, so the record must say so."""
        return self._outcomes.persist(
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
