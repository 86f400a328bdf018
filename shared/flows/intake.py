"""A delivered blob version taken in: claimed once, or taken over when its worker died.

The claim (record, blob-path index and poll-schedule entry due when the claim's lease ends,
in one transaction) makes duplicate and concurrent deliveries find the record and stop. A
claim whose lease ended before F&O took the file is taken over by the next delivery of the
same version or by the poller; one whose send had started ends "outcome unknown" (see
:mod:`shared.flows.enqueue`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from azure.storage.blob import BlobClient, BlobProperties

from shared import telemetry
from shared.config import API_PACKAGE, RouteMatch
from shared.flows.line import OrderedLines
from shared.flows.outcomes import Outcomes, outcome_unknown
from shared.flows.policies import EnqueuePolicy
from shared.flows.source_blob import fingerprint, resubmit_fields
from shared.tracking import (
    ClaimResult,
    ConcurrencyError,
    TrackedFile,
    TrackingState,
    TrackingStore,
)

__all__ = ["Claims", "Dispatch", "Intake"]

_LOGGER = logging.getLogger(__name__)

Dispatch = Callable[[BlobClient, TrackedFile, Mapping[str, str] | None], TrackedFile]
"""Sends a claimed file by its route's API (``metadata``: the blob's, when known)."""


class Intake(Protocol):
    """What takes blob versions in (the enqueuer), as the poller and resubmit call it."""

    def handle(self, blob: BlobClient) -> TrackedFile | None:
        """Process one delivery of a blob version; None when the blob no longer exists."""
        ...

    def recover(self, record: TrackedFile) -> TrackedFile:
        """Go on with a file whose claim lease ended before F&O took it, or that waits in an
        ordered line."""
        ...

    def advance(self, record: TrackedFile) -> None:
        """Hand the turn of ``record``'s ordered line on, when ``record`` has passed."""
        ...


class Claims:
    """Claims blob versions, and takes over the claims their workers abandoned.

    :param store: the tracking store.
    :param outcomes: the final writes.
    :keyword policy: the claim lease and the age limit.
    :keyword clock: the time source (UTC).
    :keyword dispatch: sends a claimed file.
    :keyword lines: the ordered lines (a file of an ordered route is claimed ``Waiting``).
    """

    def __init__(
        self,
        store: TrackingStore,
        outcomes: Outcomes,
        *,
        policy: EnqueuePolicy,
        clock: Callable[[], datetime],
        dispatch: Dispatch,
        lines: OrderedLines,
    ) -> None:
        self._store = store
        self._lines = lines
        self._outcomes = outcomes
        self._policy = policy
        self._clock = clock
        self._dispatch = dispatch

    def claim(
        self, props: BlobProperties, match: RouteMatch, fields: Mapping[str, Any]
    ) -> ClaimResult:
        """Claim the version for its route; ``fields``: further fields of its record.

        :raises AzureError: storage failed; a redelivery retries.
        """
        now = self._clock()
        lease_end: datetime | None = now + self._policy.claim_lease
        placing: dict[str, Any] = {"schedule_at": lease_end}
        resubmitted = resubmit_fields(props)
        if match.route.order:
            placing = self._lines.claim_fields(
                match.route, match.company, props, resubmitted.get("resubmit_of")
            )
            lease_end = None
        claim = self._store.claim(
            props.name,
            props.etag,
            modified_at=props.last_modified,
            received_at=now,
            route=match.route.name,
            activity_id=match.route.activity_id,
            entity=match.route.entity,
            company=match.company,
            size=props.size,
            fingerprint=fingerprint(props),
            lease_until=lease_end,
            **placing,
            **fields,
            **resubmitted,
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
        return claim

    def resume(self, blob: BlobClient, record: TrackedFile) -> TrackedFile | None:
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
            return self._outcomes.finish(
                record, **outcome_unknown(record, "the worker stopped while sending it")
            )
        # A file of an ordered line counts from its turn: it may have waited long for it.
        if now - (record.turn_at or record.received_at) > self._policy.max_pending_age:
            return self._outcomes.finish(
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
