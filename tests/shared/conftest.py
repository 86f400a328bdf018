"""The domain objects of the app, wired on Azurite and the emulator with storage fault hooks
and a clock the test can move."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from devtools.azurite import Azurite
from devtools.d365_emulator import Emulator
from shared.clients.d365 import D365Client, RetryPolicy
from shared.config import Settings
from shared.context import AppContext, build_context
from shared.flows.enqueue import Enqueuer
from shared.flows.policies import EnqueuePolicy, PollPolicy
from shared.flows.poll import Poller
from shared.tracking import Backoff, PendingEntry, TrackedFile, TrackingStore, utcnow
from tests.e2e.conftest import INBOUND, app_environment
from tests.faults import StorageFaults

FAST = Backoff(timedelta(seconds=1), timedelta(seconds=2))
_END_OF_TIME = datetime(9999, 12, 31, tzinfo=UTC)


def scheduled(store: TrackingStore, record_id: str) -> PendingEntry | None:
    """The record's poll-schedule entry, read as the poller reads them (every entry due by
    the end of time); None when the record is not on the schedule."""
    return next((e for e in store.schedule.due(_END_OF_TIME) if e.record_id == record_id), None)


@dataclass
class Clock:
    """Now, moved on by the test."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, delta: timedelta) -> None:
        """Move now on by ``delta``."""
        self.offset += delta


@dataclass
class Domain:
    """Enqueuer and poller of one test, and what they run on."""

    context: AppContext
    enqueuer: Enqueuer
    poller: Poller
    faults: StorageFaults
    clock: Clock
    inbound: ContainerClient
    folder: str
    d365: Emulator
    poll_policy: PollPolicy

    def upload(self, path: str, data: bytes, **kwargs: object) -> str:
        """Upload under this test's folder; returns the blob path."""
        name = f"{self.folder}/{path}"
        self.inbound.upload_blob(name, data, overwrite=True, **kwargs)
        return name

    def deliver(self, blob: str) -> TrackedFile | None:
        """One blob-trigger delivery, through the clients with fault hooks."""
        client = self.context.blob_service.get_blob_client(INBOUND, blob)
        return self.enqueuer.handle(client)

    def latest(self, blob: str) -> TrackedFile:
        """The latest record of ``blob`` (asserting it exists)."""
        record = self.context.store.latest_for_blob(blob)
        assert record is not None, blob
        return record

    def enqueues(self) -> int:
        """Enqueue calls F&O took."""
        return sum(1 for r in self.d365.requests if r.operation == "enqueue" and r.status == 200)

    def tick_until_final(self, blob: str, *, ticks: int = 30) -> TrackedFile:
        """Move the clock and tick until the record of ``blob`` is final."""
        for _ in range(ticks):
            record = self.latest(blob)
            if record.state.is_terminal and not record.archive_pending:
                return record
            self.clock.advance(timedelta(seconds=3))
            self.poller.tick()
        raise AssertionError(f"not final: {self.latest(blob)!r}")


@pytest.fixture
def domain(
    d365: Emulator,
    azurite: Azurite,
    unique_name: str,
    request: pytest.FixtureRequest,
) -> Iterator[Domain]:
    """The domain of one test: policies from the marker ``policy`` (kwargs) when present."""
    d365.knobs.enqueued_seconds = 0
    d365.knobs.preprocessing_seconds = 0
    d365.knobs.processing_seconds = 0
    inbound = BlobServiceClient.from_connection_string(
        azurite.connection_string
    ).get_container_client(INBOUND)
    if not inbound.exists():
        inbound.create_container()
    faults = StorageFaults()
    settings = Settings.from_env(app_environment(d365, azurite, unique_name, unique_name))
    clock = Clock()
    context = build_context(
        settings,
        storage_options={
            **faults.options(),
            "retry_backoff_factor": 0.01,
            "initial_backoff": 0,
            "increment_base": 0,
            "random_jitter_range": 0,
        },
        clock=clock,
    )
    # F&O retries without the seconds of back-off a real environment deserves.
    client = D365Client(
        settings.d365.base_url,
        context.credential,
        retry=RetryPolicy(backoff_base=0.01, backoff_max=0.05, default_retry_after=0.01),
        sas_hosts=settings.d365.sas_hosts,
    )
    marker = request.node.get_closest_marker("policy")
    overrides = dict(marker.kwargs) if marker else {}
    enqueuer = Enqueuer(
        context.store,
        client,
        settings.routes,
        context.inbound,
        policy=EnqueuePolicy(
            claim_lease=overrides.pop("claim_lease", timedelta(minutes=10)),
            answer_timeout=overrides.pop("answer_timeout", timedelta(seconds=30)),
            first_poll_delay=timedelta(seconds=1),
            retry=FAST,
            max_pending_age=overrides.pop("max_pending_age", timedelta(hours=1)),
            order_settle=overrides.pop("order_settle", timedelta(0)),
        ),
        clock=clock,
    )
    poll_policy = PollPolicy(backoff=FAST, lease_margin=timedelta(seconds=5), **overrides)
    poller = Poller(
        context.store, client, enqueuer, context.inbound, policy=poll_policy, clock=clock
    )
    yield Domain(context, enqueuer, poller, faults, clock, inbound, unique_name, d365, poll_policy)
    client.close()
    context.close()
