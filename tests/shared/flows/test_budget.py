"""The enqueuer under the F&O budget: the permit comes before the mark that a send begins, and
a file given no permit goes back to the schedule, unsent and not "outcome unknown"."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from shared.clients.d365 import CallPriority, D365Client, LocalBudget, RetryPolicy
from shared.flows.enqueue import Enqueuer
from shared.flows.policies import EnqueuePolicy
from shared.tracking import TrackedFile, TrackingState
from tests.e2e.test_enqueue import VALID
from tests.shared.conftest import FAST, Domain

PATH = "customers/USMF/file.xml"


def _enqueuer(domain: Domain, budget: LocalBudget, *, wait: float = 20.0) -> Enqueuer:
    settings = domain.context.settings
    client = D365Client(
        settings.d365.base_url,
        domain.context.credential,
        retry=RetryPolicy(backoff_base=0.01, backoff_max=0.05, default_retry_after=0.01),
        sas_hosts=settings.d365.sas_hosts,
        budget=budget,
        budget_wait=wait,
    )
    return Enqueuer(
        domain.context.store,
        client,
        settings.routes,
        domain.context.inbound,
        policy=EnqueuePolicy(
            claim_lease=timedelta(minutes=10),
            answer_timeout=timedelta(seconds=30),
            first_poll_delay=timedelta(seconds=1),
            retry=FAST,
            max_pending_age=timedelta(hours=1),
        ),
        clock=domain.clock,
    )


def test_a_send_waiting_for_a_permit_has_not_marked_its_record(domain: Domain) -> None:
    """A worker that dies while it waits for a permit must leave a file that is simply sent
    later: no ``send_started_at``, which recovery would take for a send cut short."""
    budget = LocalBudget(1, 1_000_000)
    assert budget.acquire(CallPriority.TRANSFER, timeout=0)  # the only slot, held
    enqueuer = _enqueuer(domain, budget)
    blob = domain.upload(PATH, VALID)
    results: list[TrackedFile | None] = []
    sender = threading.Thread(
        target=lambda: results.append(
            enqueuer.handle(domain.context.blob_service.get_blob_client("d365-inbound", blob))
        )
    )
    sender.start()
    time.sleep(1.0)
    waiting = domain.latest(blob)
    assert waiting.state is TrackingState.RECEIVED
    assert waiting.send_started_at is None
    budget.release(CallPriority.TRANSFER)
    sender.join(30)
    (record,) = results
    assert record is not None
    assert record.state is TrackingState.ENQUEUED
    assert domain.enqueues() == 1


def test_a_file_given_no_permit_goes_back_to_the_schedule_unsent(domain: Domain) -> None:
    budget = LocalBudget(8, 1_000_000)
    budget.throttled(40)
    enqueuer = _enqueuer(domain, budget)
    blob = domain.upload(PATH, VALID)

    record = enqueuer.handle(domain.context.blob_service.get_blob_client("d365-inbound", blob))

    assert record is not None
    assert record.state is TrackingState.RECEIVED
    assert record.send_started_at is None
    assert record.last_error is not None
    assert "was not sent: F&O throttles the client's call budget" in record.last_error
    assert record.lease_until is not None
    # honour_retry_after: not before F&O's Retry-After, whatever the back-off says.
    assert record.lease_until - domain.clock() > timedelta(seconds=35)
    assert domain.enqueues() == 0
    assert domain.tick_until_final(blob).state is TrackingState.PROCESSED
    assert domain.enqueues() == 1
