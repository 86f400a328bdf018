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
the DMF package API instead of step 2-3 (:mod:`shared.flows.package`). Files of an ordered
route (``"order"``) are claimed ``Waiting`` and sent when their line gives them the turn
(:mod:`shared.flows.line`).

The rooms it composes: :mod:`.admission` (may the file go), :mod:`.intake` (claim, resume),
:mod:`.send` (the enqueue), :mod:`.package.send` (the package path), :mod:`.outcomes` (the
final writes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import BlobClient

from shared import telemetry
from shared.clients.d365 import D365Client
from shared.clients.storage import storage_reason
from shared.config import API_PACKAGE, ImportRoutes, RoutingError
from shared.flows.admission import Admission
from shared.flows.archive import InboundContainer
from shared.flows.intake import Claims
from shared.flows.line import OrderedLines
from shared.flows.outcomes import Outcomes
from shared.flows.package.importer import PackageImporter
from shared.flows.package.send import PackageSender
from shared.flows.policies import EnqueuePolicy
from shared.flows.send import Sender
from shared.flows.source_blob import is_own_stamp, stamped_record_key
from shared.tracking import TrackedFile, TrackingState, TrackingStore, utcnow

__all__ = ["Enqueuer"]

_LOGGER = logging.getLogger(__name__)
# Turns one call hands on and sends in a row; the poller hands on the rest.
_TURNS_PER_CALL = 20


class Enqueuer:
    """Sends blob versions to F&O exactly once and records what happened.

    :param store: the tracking store.
    :param client: the F&O client.
    :param routes: the route table.
    :param inbound: gives access to the inbound container (for recovery by the poller).
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
        inbound: InboundContainer,
        *,
        policy: EnqueuePolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        packages: PackageImporter | None = None,
    ) -> None:
        self._store = store
        self._inbound = inbound
        policy = policy or EnqueuePolicy()
        outcomes = Outcomes(store, inbound, retry=policy.retry, clock=clock)
        self._admission = Admission(store, routes, policy=policy, clock=clock)
        self._lines = OrderedLines(store, policy=policy, clock=clock)
        self._claims = Claims(
            store, outcomes, policy=policy, clock=clock, dispatch=self._dispatch, lines=self._lines
        )
        self._packages = PackageSender(
            store, routes, inbound, outcomes, packages, policy=policy, clock=clock
        )
        self._sender = Sender(
            store, client, routes, outcomes, self._packages, policy=policy, clock=clock
        )

    def handle(self, blob: BlobClient) -> TrackedFile | None:
        """Process one delivery of a blob version (the blob trigger's whole job).

        :returns: the version's record, or None when the blob no longer exists.
        :raises AzureError: storage failed before the file was claimed; a redelivery retries.
        """
        # Our own client on the same blob (the trigger watches INBOUND_CONTAINER): our
        # retries, timeouts and connection pool rather than the binding's defaults.
        blob = self._inbound.source(blob.blob_name)
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
            match = self._admission.check(props)
        except RoutingError as exc:
            return self._admission.reject(blob, props, exc)
        claim = self._claims.claim(
            props, match, self._admission.claim_fields(match.route, props.size)
        )
        if claim.created and claim.record.state is TrackingState.WAITING:
            return self._waiting(claim.record)
        if claim.created:
            return self._dispatch(blob, claim.record, props.metadata)
        return self._claims.resume(blob, claim.record)

    def recover(self, record: TrackedFile) -> TrackedFile:
        """Go on with a file whose claim lease ended before F&O took it, or that waits in an
        ordered line (called by the poller)."""
        if record.state is TrackingState.WAITING:
            return self._waiting(record)
        if record.state is not TrackingState.RECEIVED:
            return record
        return self._claims.resume(self._inbound.source(record.blob), record) or record

    def advance(self, record: TrackedFile) -> None:
        """Hand the turn of ``record``'s ordered line on (called when ``record`` changed)."""
        if not record.line:
            return
        try:
            self._take_turns(record.line)
        except AzureError as exc:
            # Nothing lost: the waiting files' schedule entries bring the turn on.
            _LOGGER.warning(
                "line %s not handed on now: %s",
                record.line,
                storage_reason(exc),
                extra=telemetry.record_ids(record),
            )

    def _waiting(self, record: TrackedFile) -> TrackedFile:
        """A waiting file's line, its turn handed on when due; the record as it is then."""
        self._take_turns(record.line or "", checking=record)
        return self._store.get(record.row_key) or record

    def _take_turns(self, line: str, *, checking: TrackedFile | None = None) -> None:
        """Send the files of ``line`` whose turn has come, one after the other (bounded);
        ``checking``: a waiting file, told what it waits behind."""
        for _ in range(_TURNS_PER_CALL):
            taken = self._lines.next_turn(line, checking=checking)
            checking = None  # what it waits behind is noted once
            if taken is None:
                return
            self._send(self._inbound.source(taken.blob), taken, None)

    def _dispatch(
        self, blob: BlobClient, record: TrackedFile, metadata: Mapping[str, str] | None
    ) -> TrackedFile:
        """Send a claimed file by its route's API; then its line's next files, if any."""
        sent = self._send(blob, record, metadata)
        if sent.line:
            self._take_turns(sent.line)
        return sent

    def _send(
        self, blob: BlobClient, record: TrackedFile, metadata: Mapping[str, str] | None
    ) -> TrackedFile:
        if record.api == API_PACKAGE:
            return self._packages.send(blob, record)
        return self._sender.send(blob, record, metadata)
