"""The storage account's system topic, locally: blob versions a listing finds become
``BlobCreated`` events, delivered to one webhook subscription with Event Grid's retries."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from azure.storage.blob import ContainerClient

from devtools.blob_listing import ContainerListing
from devtools.event_grid._delivery import EventGridError, WebhookClient, endpoint_for_logs
from devtools.event_grid._events import blob_created_event, container_subject, storage_topic
from devtools.event_grid._subscription import NOT_RETRIED, Subscription
from devtools.lifecycle import Service

_LOGGER = logging.getLogger(__name__)


@dataclass
class _Pending:
    """A batch waiting for its next delivery attempt."""

    events: list[dict[str, Any]]
    first_attempt: float
    attempts: int = 0
    due: float = 0.0


@dataclass(frozen=True)
class DeadLetter:
    """Events Event Grid gave up on (in Azure, a blob in the dead-letter container)."""

    events: tuple[dict[str, Any], ...]
    reason: str
    attempts: int
    last_status: int | None


@dataclass
class _Counts:
    delivered: int = 0
    dead_lettered: list[DeadLetter] = field(default_factory=list)


class EventGridPublisher(Service):
    """Publishes the ``BlobCreated`` events of one container to one webhook subscription.

    Event Grid's storage system topic raises ``BlobCreated`` when a blob's content is written
    (not for metadata writes); locally a listing every ``interval`` seconds finds those versions
    (:mod:`devtools.blob_listing`). Each event goes through the subscription's filter, is posted
    in batches of ``max_events_per_batch``, and is retried and dead-lettered by Event Grid's
    rules (:mod:`._subscription`). ``start()`` makes the validation handshake first, as creating
    the subscription does.

    :param container: the container whose blobs the topic reports; create it with
        :data:`devtools.storage_options.STORAGE_OPTIONS`, so a failed listing is retried in
        seconds, not after the SDK's 15 s.
    :param subscription: the webhook subscription.
    :keyword interval: seconds between listings; None: only :meth:`publish_new` publishes.
    :keyword fire_existing: also publish the blobs present at start.
    :keyword session: a ``requests.Session`` for the deliveries.
    :keyword clock: monotonic seconds, for the retry schedule.
    :raises ValueError: the subscription's subject filter names another container.
    """

    def __init__(
        self,
        container: ContainerClient,
        subscription: Subscription,
        *,
        interval: float | None = 1.0,
        fire_existing: bool = False,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._container = container
        self._subscription = subscription
        self._interval = interval
        self._fire_existing = fire_existing
        self._clock = clock
        self._topic = storage_topic(container.account_name or "devstoreaccount1")
        self._listing = ContainerListing(container, _listing_prefix(container, subscription))
        self._webhook = WebhookClient(subscription, session=session)
        self._pending: list[_Pending] = []
        self._counts = _Counts()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def topic(self) -> str:
        """The storage account's resource id, every event's ``topic``."""
        return self._topic

    @property
    def dead_lettered(self) -> tuple[DeadLetter, ...]:
        """The batches given up on so far."""
        return tuple(self._counts.dead_lettered)

    def start(self) -> None:
        """Validate the webhook, take the baseline listing, start the listing loop.

        :raises EventGridError: the webhook failed the validation handshake.
        """
        try:
            self._webhook.validate(self._topic)
        except EventGridError:
            self._webhook.close()
            raise
        if not self._fire_existing:
            self._listing.take_baseline()
        if self._interval is not None:
            self._thread = threading.Thread(
                target=self._loop, name="event-grid-publisher", daemon=True
            )
            self._thread.start()
        _LOGGER.info(
            "event grid publisher started container=%s subscription=%s endpoint=%s",
            self._container.container_name,
            self._subscription.name,
            endpoint_for_logs(self._subscription.endpoint),
        )

    def stop(self) -> None:
        """Stop the loop and close the session (idempotent)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self._webhook.close()

    def new_events(self) -> list[dict[str, Any]]:
        """The ``BlobCreated`` events of the versions written since the last listing that the
        subscription's filter lets through (nothing is delivered)."""
        events = [
            blob_created_event(
                version,
                container=self._container.container_name,
                url=self._container.get_blob_client(version.name).url,
                topic=self._topic,
            )
            for version in self._listing.take_new()
        ]
        return [event for event in events if self._subscription.matches(event)]

    def publish_new(self) -> int:
        """List, deliver the new events, and retry the batches that are due.

        :returns: how many events the webhook acknowledged in this call.
        """
        with self._lock:
            before = self._counts.delivered
            self._deliver(self.new_events())
            self._retry_due()
            return self._counts.delivered - before

    def deliver(self, events: Sequence[dict[str, Any]]) -> int:
        """Deliver ``events`` (real-shaped ones a test built) in batches, as Event Grid would.

        :returns: how many the webhook acknowledged now (the rest are retried or dead-lettered).
        """
        with self._lock:
            before = self._counts.delivered
            self._deliver(list(events))
            return self._counts.delivered - before

    def _loop(self) -> None:
        while not self._stopping.wait(self._interval or 0):
            self.publish_new()

    def _deliver(self, events: list[dict[str, Any]]) -> None:
        size = self._subscription.max_events_per_batch
        for start in range(0, len(events), size):
            self._attempt(_Pending(events[start : start + size], self._clock()))

    def _retry_due(self) -> None:
        now = self._clock()
        due = [p for p in self._pending if p.due <= now]
        self._pending = [p for p in self._pending if p.due > now]
        for pending in due:
            self._attempt(pending)

    def _attempt(self, pending: _Pending) -> None:
        result = self._webhook.deliver(pending.events, delivery_count=pending.attempts)
        pending.attempts += 1
        subjects = ",".join(str(e.get("subject", "")) for e in pending.events)
        _LOGGER.info(
            "event grid delivery subscription=%s events=%s attempt=%s status=%s subjects=%s",
            self._subscription.name,
            len(pending.events),
            pending.attempts,
            result.status if result.status is not None else result.error,
            subjects,
        )
        if result.delivered:
            self._counts.delivered += len(pending.events)
            return
        age = self._clock() - pending.first_attempt
        if result.status in NOT_RETRIED:
            reason = f"the webhook answered {result.status}, which Event Grid does not retry"
        elif pending.attempts >= self._subscription.max_delivery_attempts:
            reason = f"{pending.attempts} delivery attempts (maxDeliveryAttempts)"
        elif age >= self._subscription.event_time_to_live.total_seconds():
            reason = "the event's time to live ran out"
        else:
            pending.due = self._clock() + self._subscription.retry_delay(pending.attempts)
            self._pending.append(pending)
            return
        letter = DeadLetter(tuple(pending.events), reason, pending.attempts, result.status)
        self._counts.dead_lettered.append(letter)
        _LOGGER.error(
            "event grid dead-lettered subscription=%s events=%s reason=%s subjects=%s",
            self._subscription.name,
            len(pending.events),
            reason,
            subjects,
        )


def _listing_prefix(container: ContainerClient, subscription: Subscription) -> str:
    """The blob-name prefix to list, so the listing holds every blob the subject filter passes.

    A listing's prefix is case-sensitive: for a case-insensitive filter only its leading part
    without letters is used.

    :raises ValueError: the filter names another container.
    """
    own = container_subject(container.container_name)
    wanted = subscription.subject_begins_with
    if own.casefold().startswith(wanted.casefold()):
        return ""  # the whole container, or more
    if not wanted.casefold().startswith(own.casefold() + "blobs/"):
        raise ValueError(
            f"the subscription's subject filter {wanted!r} is not about the blobs of container "
            f"{container.container_name!r}, the one this publisher lists"
        )
    blobs = wanted[len(own) + len("blobs/") :]
    if subscription.subject_case_sensitive:
        return blobs
    uncased = next((i for i, c in enumerate(blobs) if c.lower() != c.upper()), len(blobs))
    return blobs[:uncased]
