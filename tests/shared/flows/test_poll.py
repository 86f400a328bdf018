"""The poller, each archive and poll failure injected at its exact step (issue 7's findings
3 and 4, and a stop at every step of finishing a file)."""

from __future__ import annotations

import pytest

from shared.tracking import TrackingState
from tests.e2e.test_enqueue import VALID
from tests.shared.conftest import Domain, scheduled

PATH = "customers/USMF/file.xml"


def _enqueued(domain: Domain, **upload: object) -> str:
    blob = domain.upload(PATH, VALID, **upload)
    record = domain.deliver(blob)
    assert record is not None
    assert record.state is TrackingState.ENQUEUED
    return blob


def test_a_poll_that_changes_nothing_writes_nothing(domain: Domain) -> None:
    domain.d365.knobs.enqueued_seconds = 3600
    blob = _enqueued(domain)
    domain.clock.advance(domain.poll_policy.backoff.interval_max)
    domain.poller.tick()  # Enqueued -> Enqueued
    before = len(domain.faults.calls)

    domain.clock.advance(domain.poll_policy.backoff.interval_max * 2)
    report = domain.poller.tick()

    calls = domain.faults.calls[before:]
    writes = [c for c in calls if c.startswith(("PUT", "POST", "PATCH", "MERGE", "DELETE"))]
    assert report.counts.get("polled") == 1
    # Only the poll lease (taken, then finished with the watermark) is written.
    assert len(writes) == 2, calls
    assert domain.latest(blob).state is TrackingState.ENQUEUED


def test_a_file_is_archived_with_its_stamp_once_final(domain: Domain) -> None:
    blob = _enqueued(domain)

    final = domain.tick_until_final(blob)

    assert final.state is TrackingState.PROCESSED
    assert final.archived_to == f"{final.archived_to.split('/')[0]}/Processed/{blob}"
    assert final.archive_error is None
    assert not domain.inbound.get_blob_client(blob).exists()
    assert scheduled(domain.context.store, final.record_id) is None


def test_a_file_whose_metadata_someone_changed_is_still_archived(domain: Domain) -> None:
    """Finding 4: a source ETag that no longer matches is not a reason to skip silently."""
    blob = _enqueued(domain)
    domain.inbound.get_blob_client(blob).set_blob_metadata({"reviewed": "yes"})

    final = domain.tick_until_final(blob)

    assert final.archived_to is not None
    assert final.archive_error is None


def test_an_overwritten_file_is_not_archived_and_says_why(domain: Domain) -> None:
    blob = _enqueued(domain)
    domain.inbound.upload_blob(blob, VALID + b"<!-- v2 -->", overwrite=True)

    final = domain.tick_until_final(blob)

    assert final.state is TrackingState.PROCESSED
    assert final.archived_to is None
    assert "overwritten by a newer version" in final.archive_error
    assert domain.inbound.get_blob_client(blob).exists()


def test_an_uploaders_large_metadata_does_not_stop_the_archive(domain: Domain) -> None:
    """Finding 3: metadata over 8 KiB once our stamp is added used to be refused every time."""
    blob = _enqueued(domain, metadata={"note": "n" * 8000})

    final = domain.tick_until_final(blob)

    assert final.archived_to is not None
    copy = domain.context.blob_service.get_blob_client(*final.archived_to.split("/", 1))
    metadata = copy.get_blob_properties().metadata
    assert metadata["note"] == "n" * 8000
    assert metadata["d365_state"] == "Processed"


def test_an_archive_that_keeps_failing_ends_with_its_reason(domain: Domain) -> None:
    """Finding 3: an archive is not retried for ever; the file stays, the record says why."""
    blob = _enqueued(domain)
    archive = domain.context.blob_service.get_container_client(
        domain.context.settings.archive_container
    )
    archive.delete_container()

    final = domain.tick_until_final(blob, ticks=60)

    assert final.state is TrackingState.PROCESSED
    assert final.archived_to is None
    assert "404 ContainerNotFound" in final.archive_error
    assert f"it stays in d365-inbound/{blob}" in final.archive_error
    assert final.archive_attempts == domain.poll_policy.archive_attempts
    assert domain.inbound.get_blob_client(blob).exists()


@pytest.mark.parametrize(
    ("method", "contains", "skip"),
    [
        ("POST", "$batch", 0),  # the final record write
        ("PUT", "-archive/", 0),  # the copy
        ("DELETE", "d365-inbound/", 0),  # deleting the source after the copy
        ("POST", "$batch", 1),  # recording the move
    ],
)
def test_a_stop_at_any_step_of_finishing_is_finished_by_the_next_tick(
    domain: Domain, method: str, contains: str, skip: int
) -> None:
    """Every step of finishing, failed: the next tick completes it; F&O got the file once."""
    blob = _enqueued(domain)
    domain.faults.fail("reset", method, contains, skip=skip, times=1000)
    for _ in range(3):
        domain.clock.advance(domain.poll_policy.backoff.interval_max)
        domain.poller.tick()
    domain.faults.clear()

    final = domain.tick_until_final(blob)

    assert final.state is TrackingState.PROCESSED
    assert final.archived_to is not None
    assert not domain.inbound.get_blob_client(blob).exists()
    assert domain.enqueues() == 1
    assert scheduled(domain.context.store, final.record_id) is None


_POLL_LEASE = "RowKey='~lease-poller'"


@pytest.mark.parametrize(
    "fault",
    [
        ("POST", "", 0),  # the first tick creates the lease row
        ("PUT", _POLL_LEASE, 0),  # a later tick takes the row over
        ("PUT", _POLL_LEASE, 1),  # the finish, with the watermark
    ],
    ids=["acquire-insert", "acquire-takeover", "finish"],
)
def test_a_poll_lease_write_whose_answer_was_lost_is_still_ours(
    domain: Domain, fault: tuple[str, str, int]
) -> None:
    """Issue 17, finding 18: the tick polls (it is not "held elsewhere"), and finishes its
    lease with the watermark, so the next tick runs too."""
    method, row, skip = fault
    domain.d365.knobs.enqueued_seconds = 3600
    _enqueued(domain)
    schedule = domain.context.store.schedule
    if row:
        domain.poller.tick()  # the lease row exists, finished
    domain.clock.advance(domain.poll_policy.backoff.interval_max)
    domain.faults.fail("lost", method, row or domain.context.store.table_name, skip=skip)

    report = domain.poller.tick()

    assert domain.faults.injected["lost"] == 1
    assert "lease_held_elsewhere" not in report.counts
    assert report.due == 1
    assert schedule.lease.last().watermark is not None
    assert schedule.last_tick() <= domain.clock()
    domain.clock.advance(domain.poll_policy.backoff.interval_max * 2)
    assert "lease_held_elsewhere" not in domain.poller.tick().counts
