"""The enqueuer, each failure injected at its exact step (issue 7's findings 1, 2, 5, 7-11).

Real Azurite, the real emulator; the storage calls fail through the SDK clients' own hooks.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.tracking import UNSCHEDULE, TrackingState
from tests.e2e.test_enqueue import VALID
from tests.shared.conftest import Domain, scheduled

PATH = "customers/USMF/file.xml"


def test_an_accepted_file_costs_three_table_writes_and_three_blob_calls(domain: Domain) -> None:
    blob = domain.upload(PATH, VALID)
    before = len(domain.faults.calls)

    record = domain.deliver(blob)

    calls = domain.faults.calls[before:]
    table_writes = [c for c in calls if "$batch" in c or (c.startswith("PUT") and "files" in c)]
    blob_calls = [c for c in calls if "devstoreaccount1/d365-inbound" in c]
    assert record is not None
    assert record.state is TrackingState.ENQUEUED
    assert len(table_writes) == 3, calls
    assert len(blob_calls) == 3, calls
    assert len(calls) == 6, calls


def test_a_claim_whose_answer_was_lost_is_sent_once(domain: Domain) -> None:
    """Finding 11 on the claim: the SDK meets 409 on its own row."""
    blob = domain.upload(PATH, VALID)
    domain.faults.fail("lost", "POST", "$batch")

    record = domain.deliver(blob)

    assert record is not None
    assert record.state is TrackingState.ENQUEUED
    assert domain.enqueues() == 1


def test_a_lost_answer_to_the_enqueued_write_still_ends_enqueued(domain: Domain) -> None:
    """Finding 11 on F&O's answer: the write landed; the record says Enqueued, once."""
    blob = domain.upload(PATH, VALID)
    domain.faults.fail("lost", "POST", "$batch", skip=1)

    record = domain.deliver(blob)

    assert record is not None
    assert record.state is TrackingState.ENQUEUED
    assert domain.context.store.get_by_message_id(record.message_id) == record
    assert domain.tick_until_final(blob).state is TrackingState.PROCESSED
    assert domain.enqueues() == 1


def test_a_failed_enqueued_write_is_retried_until_it_lands(domain: Domain) -> None:
    blob = domain.upload(PATH, VALID)
    domain.faults.fail("reset", "POST", "$batch", skip=1, times=4)

    record = domain.deliver(blob)

    assert record is not None
    assert record.state is TrackingState.ENQUEUED
    assert domain.enqueues() == 1


def test_a_worker_that_dies_after_its_claim_is_finished_by_the_poller(domain: Domain) -> None:
    """Finding 1: the claim landed, the worker never went on (every later write and read of
    its record failed)."""
    blob = domain.upload(PATH, VALID)
    domain.faults.fail("reset", "PUT", "files", times=1000)
    domain.faults.fail("reset", "GET", "files", times=1000)
    with pytest.raises(Exception, match="injected"):
        domain.deliver(blob)
    domain.faults.clear()
    assert domain.latest(blob).state is TrackingState.RECEIVED
    # A redelivery within the lease leaves it to its (dead) worker.
    assert domain.deliver(blob).state is TrackingState.RECEIVED
    assert domain.enqueues() == 0

    domain.clock.advance(timedelta(minutes=11))
    final = domain.tick_until_final(blob)

    assert final.state is TrackingState.PROCESSED
    assert domain.enqueues() == 1


def test_a_worker_that_dies_while_sending_ends_outcome_unknown_never_resent(
    domain: Domain,
) -> None:
    blob = domain.upload(PATH, VALID)
    domain.d365.knobs.drop_after_body_burst = 1

    record = domain.deliver(blob)

    assert record is not None
    assert record.state is TrackingState.ENQUEUE_FAILED
    assert record.last_error.startswith("outcome unknown")
    assert blob in record.last_error
    assert scheduled(domain.context.store, record.record_id) is None


def test_a_sending_mark_that_landed_but_failed_is_not_taken_for_a_send(domain: Domain) -> None:
    """The mark that a send begins lands, its answer is lost, and the write then fails (its
    retries reset, the read-back too): the worker never sent, so the mark must not stay to
    be taken for a send cut short ("outcome unknown", never sent again)."""
    blob = domain.upload(PATH, VALID)
    domain.faults.fail("lost", "PUT", "files")  # the mark lands; the SDK retries it...
    domain.faults.fail("reset", "PUT", "files", times=3)  # ...until its retries are spent
    domain.faults.fail("reset", "GET", "files", times=4)  # the read-back fails as well

    record = domain.deliver(blob)

    assert domain.faults.injected == {"lost": 1, "reset": 7}
    assert record is not None
    assert record.state is TrackingState.RECEIVED
    assert record.send_started_at is None
    # The storage failure by its kind only: its text names the URL (a SAS one holds a key).
    assert record.last_error.endswith(": storage unreachable (ServiceRequestError)")
    assert "devstoreaccount1" not in record.last_error
    # The first wait of the back-off, though the failed mark left 0 attempts counted.
    first_wait = domain.poll_policy.backoff.next_interval(0)
    assert record.lease_until is not None and record.updated_at is not None
    waited = record.lease_until - record.updated_at
    assert first_wait - timedelta(milliseconds=100) <= waited <= first_wait, waited
    assert domain.enqueues() == 0
    domain.clock.advance(timedelta(minutes=11))  # past the claim's lease
    final = domain.tick_until_final(blob)
    assert final.state is TrackingState.PROCESSED, final.last_error
    assert domain.enqueues() == 1


def test_a_failed_sending_mark_stays_once_the_lease_has_ended(domain: Domain) -> None:
    """As above, but the claim's lease ended before the worker read its record back: a
    recovery may be sending by now, so the mark stays (at most "outcome unknown", never
    twice)."""
    blob = domain.upload(PATH, VALID)
    domain.faults.fail("lost", "PUT", "files")
    domain.faults.fail("reset", "PUT", "files", times=3)
    domain.faults.fail("reset", "GET", "files", times=4)
    domain.faults.meanwhile(
        "GET", "files", lambda: domain.clock.advance(timedelta(minutes=11)), skip=4
    )

    record = domain.deliver(blob)

    assert record is not None
    assert record.state is TrackingState.RECEIVED
    assert record.send_started_at is not None
    assert domain.enqueues() == 0


def test_a_failed_sending_mark_leaves_a_claim_taken_over_meanwhile_alone(domain: Domain) -> None:
    """The mark never lands (every attempt reset) and, before the worker reads the record
    back, a recovery takes the claim over and begins its own send: its mark stays."""
    blob = domain.upload(PATH, VALID)
    store = domain.context.store
    taken_at = domain.clock() + timedelta(minutes=20)

    def recovery() -> None:
        record = domain.latest(blob)
        store.update(record, lease_until=taken_at, send_started_at=domain.clock())

    domain.faults.fail("reset", "PUT", "files", times=12)  # 3 writes of 4 attempts each
    domain.faults.meanwhile("GET", "files", recovery, skip=3)  # before the 4th read

    record = domain.deliver(blob)

    assert record is not None
    assert (record.state, record.lease_until) == (TrackingState.RECEIVED, taken_at)
    assert record.send_started_at is not None
    assert domain.latest(blob) == record
    assert domain.enqueues() == 0


@pytest.mark.policy(claim_lease=timedelta(seconds=2), answer_timeout=timedelta(seconds=3))
def test_a_send_that_would_outlive_its_lease_is_cut_short_and_retried(domain: Domain) -> None:
    """Finding 2: recovery never judges a send still running; the upload stops first."""
    blob = domain.upload(PATH, VALID)

    record = domain.deliver(blob)

    assert record is not None
    assert record.state is TrackingState.RECEIVED
    assert "CLAIM_LEASE" in record.last_error
    assert record.send_started_at is None
    assert domain.enqueues() == 0
    assert scheduled(domain.context.store, record.record_id) is not None


@pytest.mark.parametrize(
    ("knobs", "text"),
    [
        ({"throttle_burst": 50, "retry_after": 0}, "429"),
        ({"error_burst": 50, "error_status": 503}, "503"),
    ],
)
def test_a_file_f_and_o_did_not_take_is_retried_from_the_schedule(
    domain: Domain, knobs: dict, text: str
) -> None:
    """Findings 7 and 9: the proof that F&O did not take the file is kept; it is sent later."""
    blob = domain.upload(PATH, VALID)
    for name, value in knobs.items():
        setattr(domain.d365.knobs, name, value)
    domain.faults.fail("reset", "PUT", "files", skip=1)  # the release write fails once

    record = domain.deliver(blob)

    assert record is not None
    assert record.state is TrackingState.RECEIVED
    assert record.send_started_at is None
    assert text in record.last_error
    assert domain.enqueues() == 0
    domain.d365.reset()
    domain.d365.knobs.enqueued_seconds = domain.d365.knobs.processing_seconds = 0
    domain.d365.knobs.preprocessing_seconds = 0
    assert domain.tick_until_final(blob).state is TrackingState.PROCESSED
    assert domain.enqueues() == 1


def test_a_final_outcome_written_meanwhile_is_not_reopened_by_a_late_release(
    domain: Domain,
) -> None:
    """Recovery judged the file while its worker was still writing "not taken": the outcome
    the operator was told stands (reopening it could import the file twice)."""
    blob = domain.upload(PATH, VALID)
    domain.d365.knobs.error_burst = 1
    domain.d365.knobs.error_status = 503
    store = domain.context.store

    def recovery() -> None:
        record = domain.latest(blob)
        store.update(
            record,
            state=TrackingState.ENQUEUE_FAILED,
            last_error="outcome unknown: the worker stopped while sending it",
            schedule_at=UNSCHEDULE,
        )

    domain.faults.meanwhile("POST", "$batch", recovery, skip=1)  # before the release

    record = domain.deliver(blob)

    assert record is not None
    assert record.state is TrackingState.ENQUEUE_FAILED
    assert record.last_error.startswith("outcome unknown")
    assert scheduled(store, record.record_id) is None
    assert domain.enqueues() == 0


def test_refused_credentials_are_retried_not_final(domain: Domain) -> None:
    """Finding 9: 401/403 prove F&O did not take the file."""
    blob = domain.upload(PATH, VALID)
    domain.d365.knobs.error_burst = 3
    domain.d365.knobs.error_status = 403

    record = domain.deliver(blob)

    assert record is not None
    assert record.state is TrackingState.RECEIVED
    assert "403" in record.last_error
    assert domain.tick_until_final(blob).state is TrackingState.PROCESSED
    assert domain.enqueues() == 1


@pytest.mark.policy(max_pending_age=timedelta(minutes=5))
def test_a_file_never_taken_ends_enqueue_failed_after_max_pending_age(domain: Domain) -> None:
    """Finding 8: Received times out instead of being imported whenever F&O comes back."""
    blob = domain.upload(PATH, VALID)
    domain.d365.knobs.throttle_burst = 10_000
    domain.d365.knobs.retry_after = 0
    domain.deliver(blob)

    domain.clock.advance(timedelta(minutes=6))
    final = domain.tick_until_final(blob)

    assert final.state is TrackingState.ENQUEUE_FAILED
    assert "did not take the file within" in final.last_error
    assert "429" in final.last_error
    assert domain.enqueues() == 0


def test_uploader_metadata_never_becomes_a_table_key(domain: Domain) -> None:
    """Finding 5: ``d365_record=a/b`` from an uploader is ignored, not a 500."""
    blob = domain.upload(PATH, VALID, metadata={"d365_record": "a/b", "d365_fingerprint": "x"})

    record = domain.deliver(blob)

    assert record is not None
    assert record.state is TrackingState.ENQUEUED
    assert domain.enqueues() == 1


def test_a_duplicate_delivery_after_our_stamp_does_nothing(domain: Domain) -> None:
    blob = domain.upload(PATH, VALID)
    first = domain.deliver(blob)
    again = domain.deliver(blob)
    assert again == first
    assert domain.enqueues() == 1
