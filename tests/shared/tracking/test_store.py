"""The tracking store against Azurite: claims, conditional writes with their companions, lost
answers, reads, listing and execution errors."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from shared.clients.d365 import ExecutionError
from shared.tracking import (
    UNSCHEDULE,
    Backoff,
    ConcurrencyError,
    TrackingState,
    TrackingStore,
    TrackingStoreError,
    utcnow,
)
from tests.faults import StorageFaults
from tests.shared.conftest import scheduled

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MESSAGE = "84a383c8-336d-45e4-9933-0c3e8bfb734a"


def _claim(store: TrackingStore, blob: str = "a/b.xml", etag: str = "e1", **fields):
    fields.setdefault("modified_at", T0)
    return store.claim(blob, etag, **fields)


def test_claim_is_created_once_and_returned_to_later_callers(store: TrackingStore) -> None:
    first = _claim(store, route="customers", size=10)
    again = _claim(store, route="customers", size=10)
    assert (first.created, again.created) == (True, False)
    assert again.record.record_id == first.record.record_id
    assert again.record.state is TrackingState.RECEIVED
    assert again.record.route == "customers"


def test_concurrent_claims_create_exactly_one_record(store: TrackingStore) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        results.append(_claim(store, "x/y.xml").created)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert len(store.list_records().records) == 1


def test_a_claim_puts_the_record_on_the_schedule_in_the_same_write(
    store: TrackingStore, faults: StorageFaults
) -> None:
    before = len(faults.calls)
    record = _claim(store, schedule_at=T0 + timedelta(minutes=10)).record
    assert [call.split(" ")[0] for call in faults.calls[before:]] == ["POST"]
    assert faults.count("POST", "$batch") == 1
    entry = scheduled(store, record.record_id)
    assert entry is not None
    assert entry.due_at == T0 + timedelta(minutes=10)
    assert entry.state is TrackingState.RECEIVED


def test_a_claim_whose_answer_was_lost_is_still_ours(
    store: TrackingStore, faults: StorageFaults
) -> None:
    faults.fail("lost", "POST", "$batch")
    result = _claim(store, schedule_at=T0)
    assert result.created is True
    assert scheduled(store, result.record.record_id) is not None
    assert faults.injected["lost"] == 1


def test_a_claim_that_never_reached_storage_is_retried(
    store: TrackingStore, faults: StorageFaults
) -> None:
    faults.fail("reset", "POST", "$batch", times=2)
    assert _claim(store).created is True


def test_new_etag_is_a_new_version_and_latest_wins(store: TrackingStore) -> None:
    _claim(store, "a/b.xml", "e1", modified_at=T0)
    second = _claim(store, "a/b.xml", "e2", modified_at=T0 + timedelta(seconds=5)).record
    _claim(store, "a/b.xml.old", "e3", modified_at=T0 + timedelta(seconds=9))
    latest = store.latest_for_blob("a/b.xml")
    assert latest is not None
    assert latest.record_id == second.record_id
    assert latest.blob_etag == "e2"
    assert store.latest_for_blob("a/missing.xml") is None


def test_update_is_conditional_and_keeps_history(store: TrackingStore) -> None:
    record = _claim(store).record
    enqueued = store.update(record, state=TrackingState.ENQUEUED, message_id="m-1")
    assert [h[0] for h in enqueued.history] == ["Received", "Enqueued"]
    with pytest.raises(ConcurrencyError):
        store.update(record, state=TrackingState.ENQUEUE_FAILED)
    done = store.update(enqueued, state=TrackingState.PROCESSED)
    assert done.completed_at is not None
    assert store.get(done.row_key) == done


@pytest.mark.parametrize(("method", "path"), [("PUT", "files"), ("POST", "$batch")])
def test_an_update_whose_answer_was_lost_is_recognised_as_landed(
    store: TrackingStore, faults: StorageFaults, method: str, path: str
) -> None:
    record = _claim(store, schedule_at=T0).record
    faults.fail("lost", method, path)
    companion = {"schedule_at": T0 + timedelta(minutes=1)} if method == "POST" else {}
    updated = store.update(record, state=TrackingState.ENQUEUED, message_id=MESSAGE, **companion)
    assert faults.injected["lost"] == 1
    assert updated.state is TrackingState.ENQUEUED
    assert store.get(record.row_key) == updated
    assert store.update(updated, d365_status="Processing").d365_status == "Processing"


def test_a_transaction_that_never_reached_storage_is_sent_again(
    store: TrackingStore, faults: StorageFaults
) -> None:
    record = _claim(store, schedule_at=T0).record
    faults.fail("reset", "POST", "$batch")
    updated = store.update(
        record, message_id=MESSAGE, index_message=True, schedule_at=T0 + timedelta(minutes=1)
    )
    assert store.get_by_message_id(MESSAGE) == updated
    entry = scheduled(store, record.record_id)
    assert entry is not None
    assert entry.due_at == T0 + timedelta(minutes=1)


def test_record_index_and_schedule_are_written_together(store: TrackingStore) -> None:
    record = _claim(store, schedule_at=T0).record
    enqueued = store.update(
        record,
        state=TrackingState.ENQUEUED,
        message_id=MESSAGE,
        index_message=True,
        schedule_at=T0 + timedelta(seconds=30),
    )
    entry = scheduled(store, record.record_id)
    assert entry is not None
    assert (entry.state, entry.message_id) == (TrackingState.ENQUEUED, MESSAGE)
    assert enqueued.next_poll_at == T0 + timedelta(seconds=30)
    done = store.update(enqueued, state=TrackingState.PROCESSED, schedule_at=UNSCHEDULE)
    assert scheduled(store, record.record_id) is None
    assert done.next_poll_at is None
    # Taking it off the schedule again (the entry is gone already) still writes the record.
    again = store.update(done, last_error="x", schedule_at=UNSCHEDULE)
    assert store.get(record.row_key) == again


def test_a_late_unschedule_cannot_drop_a_newer_schedule(store: TrackingStore) -> None:
    """Finding 2: recovery's final write and the sender's late answer race on one record."""
    record = _claim(store, schedule_at=T0).record
    recovery = store.update(
        record,
        state=TrackingState.ENQUEUE_FAILED,
        last_error="outcome unknown",
        schedule_at=UNSCHEDULE,
    )
    with pytest.raises(ConcurrencyError):
        store.update(record, state=TrackingState.ENQUEUED, schedule_at=T0)
    # The sender re-reads and writes F&O's answer over it, with its schedule entry.
    sender = store.update(
        recovery, state=TrackingState.ENQUEUED, message_id=MESSAGE, schedule_at=T0
    )
    assert scheduled(store, record.record_id) is not None
    assert sender.state is TrackingState.ENQUEUED


def test_message_id_lookup_costs_two_point_reads(
    store: TrackingStore, faults: StorageFaults
) -> None:
    record = _claim(store).record
    store.update(record, message_id=MESSAGE, index_message=True)
    before = len(faults.calls)
    found = store.get_by_message_id(MESSAGE)
    assert found is not None
    assert found.record_id == record.record_id
    assert len(faults.calls) - before == 2
    assert store.get_by_message_id("00000000-0000-0000-0000-000000000001") is None


def test_listing_is_newest_first_filtered_and_paged(store: TrackingStore) -> None:
    for i in range(7):
        record = _claim(
            store, f"f{i}.xml", "e", modified_at=T0 + timedelta(minutes=i), route=f"r{i % 2}"
        ).record
        if i % 3 == 0:
            store.update(record, state=TrackingState.REJECTED)
        store.update(store.get(record.row_key), message_id=f"m{i}", index_message=True)
    first = store.list_records(limit=3)
    assert [r.blob for r in first.records] == ["f6.xml", "f5.xml", "f4.xml"]
    second = store.list_records(limit=3, continuation=first.continuation)
    assert [r.blob for r in second.records] == ["f3.xml", "f2.xml", "f1.xml"]
    third = store.list_records(limit=3, continuation=second.continuation)
    assert [r.blob for r in third.records] == ["f0.xml"]
    assert third.continuation is None
    rejected = store.list_records(state=TrackingState.REJECTED)
    assert [r.blob for r in rejected.records] == ["f6.xml", "f3.xml", "f0.xml"]
    assert [r.blob for r in store.list_records(route="r1").records] == [
        "f5.xml",
        "f3.xml",
        "f1.xml",
    ]
    since = store.list_records(since=T0 + timedelta(minutes=5))
    assert [r.blob for r in since.records] == ["f6.xml", "f5.xml"]


def test_small_errors_stay_inline_with_raw_text(store: TrackingStore) -> None:
    record = _claim(store).record
    errors = [ExecutionError("1", "CUSTOMERGROUPID", "Customer group 99 does not exist.")]
    record = store.update(record, **store.store_errors(record, errors, raw='[{"RecordId":"1"}]'))
    assert record.errors == tuple(errors)
    assert record.errors_blob is None
    assert record.errors_raw == '[{"RecordId":"1"}]'
    assert store.load_errors(record) == tuple(errors)


def test_errors_of_wide_characters_are_measured_as_the_service_does(
    store: TrackingStore,
) -> None:
    """Finding 6: 20,000 non-BMP characters are 20,000 characters but 80,000 bytes."""
    record = store.update(_claim(store).record, message_id=MESSAGE)
    errors = [ExecutionError("1", "NAME", "\U0001f600" * 20_000)]
    raw = "[]"
    record = store.update(record, **store.store_errors(record, errors, raw))
    assert record.errors_blob is not None
    assert record.error_count == 1
    assert store.load_errors(store.get(record.row_key)) == tuple(errors)


def test_large_errors_go_to_a_blob_and_the_row_keeps_a_pointer(store: TrackingStore) -> None:
    record = store.update(_claim(store).record, message_id="m-big")
    errors = [ExecutionError(str(i), "NAME", "x" * 200) for i in range(1000)]
    record = store.update(record, **store.store_errors(record, errors, "raw " * 30_000))
    assert record.error_count == 1000
    assert record.errors_blob is not None
    assert record.errors_blob.endswith("m-big/errors.json")
    assert 0 < len(record.errors) < 1000
    assert store.load_errors(store.get(record.row_key)) == tuple(errors)


def test_a_long_last_error_is_shortened_to_fit(store: TrackingStore) -> None:
    record = store.update(_claim(store).record, last_error="\U0001f600" * 40_000)
    assert record.last_error is not None
    assert len(record.last_error) <= 4_000
    assert store.get(record.row_key) == record


def test_missing_table_gives_a_clear_error(storage_connection_string: str) -> None:
    tables = TableServiceClient.from_connection_string(storage_connection_string)
    store = TrackingStore(tables.get_table_client("nosuchtable123"))
    with pytest.raises(TrackingStoreError, match=r"nosuchtable123.*does not exist"):
        store.get_by_message_id(MESSAGE)


def test_next_poll_is_projected_from_the_records_anchor(store: TrackingStore) -> None:
    store.backoff = Backoff(timedelta(seconds=30), timedelta(minutes=10))
    now = utcnow()
    record = store.update(
        _claim(store).record,
        state=TrackingState.ENQUEUED,
        poll_count=0,
        schedule_at=now - timedelta(seconds=45),
    )
    polls, upcoming = store.next_poll(record, now)
    # Anchor 45 s ago, then +30 s (15 s ago), then +60 s (45 s from now).
    assert polls == 2
    assert upcoming == now + timedelta(seconds=45)


def test_versions_of_the_same_second_are_told_apart_by_arrival(store: TrackingStore) -> None:
    """Last-Modified counts whole seconds: two uploads of one path in a second tie on it."""
    _claim(store, "a/b.xml", "e1", modified_at=T0, received_at=T0)
    second = _claim(store, "a/b.xml", "e2", modified_at=T0, received_at=T0 + timedelta(seconds=1))
    first_again = _claim(store, "a/b.xml", "e0", modified_at=T0 - timedelta(seconds=1))
    latest = store.latest_for_blob("a/b.xml")
    assert latest is not None
    assert latest.record_id == second.record.record_id
    assert first_again.created
