import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.d365 import ExecutionError
from shared.tracking import (
    INLINE_TEXT_LIMIT,
    ConcurrencyError,
    TrackingState,
    TrackingStore,
    TrackingStoreError,
    decode_continuation,
    utcnow,
)


@pytest.fixture
def store(storage_connection_string: str, unique_name: str) -> TrackingStore:
    tables = TableServiceClient.from_connection_string(storage_connection_string)
    blobs = BlobServiceClient.from_connection_string(storage_connection_string)
    result = TrackingStore(
        tables.get_table_client(unique_name),
        errors_container=blobs.get_container_client(unique_name),
    )
    result.ensure_ready()
    return result


def test_claim_is_created_once_and_returned_to_later_callers(store: TrackingStore) -> None:
    first = store.claim("customers/USMF/a.xml", '"0x8D1"', route="customers", size=10)
    again = store.claim("customers/USMF/a.xml", '"0x8D1"', route="customers", size=10)
    assert first.created is True
    assert again.created is False
    assert again.record.record_id == first.record.record_id
    assert again.record.state is TrackingState.RECEIVED
    assert again.record.blob_etag == "0x8D1"
    assert again.record.route == "customers"


def test_concurrent_claims_create_exactly_one_record(store: TrackingStore) -> None:
    results = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        results.append(store.claim("x/y.xml", "etag-1").created)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert len(store.list_records().records) == 1


def test_new_etag_is_a_new_version_and_latest_wins(store: TrackingStore) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    store.claim("a/b.xml", "e1", received_at=t0)
    second = store.claim("a/b.xml", "e2", received_at=t0 + timedelta(seconds=5)).record
    latest = store.latest_for_blob("a/b.xml")
    assert latest is not None
    assert latest.record_id == second.record_id
    assert latest.blob_etag == "e2"
    assert store.latest_for_blob("a/missing.xml") is None


def test_update_is_conditional_and_keeps_history(store: TrackingStore) -> None:
    record = store.claim("a.xml", "e1").record
    enqueued = store.update(record, state=TrackingState.ENQUEUED, message_id="m-1")
    assert [h[0] for h in enqueued.history] == ["Received", "Enqueued"]
    with pytest.raises(ConcurrencyError):
        store.update(record, state=TrackingState.ENQUEUE_FAILED)
    done = store.update(enqueued, state=TrackingState.PROCESSED)
    assert done.completed_at is not None
    assert store.get(done.row_key) == done


def test_message_index_point_read(store: TrackingStore) -> None:
    record = store.claim("a.xml", "e1").record
    record = store.update(record, message_id="84a383c8-336d-45e4-9933-0c3e8bfb734a")
    store.link_message(record)
    found = store.get_by_message_id("{84A383C8-336D-45E4-9933-0C3E8BFB734A}")
    assert found is not None
    assert found.record_id == record.record_id
    assert store.get_by_message_id("00000000-0000-0000-0000-000000000001") is None


def test_listing_is_newest_first_filtered_and_paged(store: TrackingStore) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(7):
        record = store.claim(
            f"f{i}.xml", "e", received_at=t0 + timedelta(minutes=i), route="r" + str(i % 2)
        ).record
        if i % 3 == 0:
            store.update(record, state=TrackingState.REJECTED)
    first = store.list_records(limit=3)
    assert [r.blob for r in first.records] == ["f6.xml", "f5.xml", "f4.xml"]
    assert first.continuation is not None
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
    since = store.list_records(since=t0 + timedelta(minutes=5))
    assert [r.blob for r in since.records] == ["f6.xml", "f5.xml"]


def test_bad_continuation_is_refused() -> None:
    with pytest.raises(ValueError, match="continuation"):
        decode_continuation("not-a-token!")


def test_schedule_due_reschedule_unschedule(store: TrackingStore) -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    early = store.claim("early.xml", "e").record
    late = store.claim("late.xml", "e").record
    store.schedule(early, now - timedelta(seconds=30))
    store.schedule(late, now + timedelta(minutes=5))
    due = store.due(now)
    assert [d.record_row_key for d in due] == [early.row_key]
    assert due[0].blob == "early.xml"
    assert due[0].state is TrackingState.RECEIVED

    moved = store.reschedule([replace(due[0], due_at=now - timedelta(seconds=1), poll_count=3)])
    again = store.due(now)
    assert [(d.record_id, d.poll_count) for d in again] == [(early.record_id, 3)]
    assert store.get_pending(early.record_id) == moved[0]
    # A write based on a stale read is refused.
    assert store.reschedule([replace(due[0], poll_count=9)]) == []
    store.unschedule(early.record_id)
    later = store.due(now + timedelta(hours=1))
    assert [d.record_row_key for d in later] == [late.row_key]
    assert store.count_pending() == 1
    assert store.get_pending(early.record_id) is None


def test_scheduling_a_record_again_moves_its_single_entry(store: TrackingStore) -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    record = store.claim("once.xml", "e").record
    store.schedule(record, now)
    store.schedule(record, now + timedelta(minutes=1))
    assert store.count_pending() == 1
    assert store.due(now) == []


def test_batches_of_more_than_a_hundred_are_written(store: TrackingStore) -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    for i in range(130):
        store.schedule(store.claim(f"b{i}.xml", "e").record, now)
    due = store.due(now)
    # One entry changed by someone else: the rest of its batch is still written.
    store.reschedule([replace(due[0], poll_count=9)])
    moved = store.reschedule([replace(d, due_at=now + timedelta(minutes=1)) for d in due])
    assert len(moved) == 129
    assert [d.poll_count for d in store.due(now)] == [9]


def test_one_poll_lease_at_a_time(store: TrackingStore) -> None:
    now = utcnow()
    lease = store.acquire_poll_lease("a", until=now + timedelta(minutes=1))
    assert lease is not None
    assert store.acquire_poll_lease("b", until=now + timedelta(minutes=1)) is None
    store.finish_poll_lease(lease, watermark=now)
    assert store.get_poll_watermark() == now
    second = store.acquire_poll_lease("b", until=now + timedelta(minutes=1))
    assert second is not None
    assert second.watermark == now
    assert store.acquire_poll_lease("a", until=now + timedelta(minutes=1)) is None


def test_an_expired_lease_can_be_taken_over(store: TrackingStore) -> None:
    now = utcnow()
    stale = store.acquire_poll_lease("dead", until=now - timedelta(seconds=1))
    assert stale is not None
    taker = store.acquire_poll_lease("alive", until=now + timedelta(minutes=1))
    assert taker is not None
    store.finish_poll_lease(stale, watermark=now)  # the dead holder's late finish changes nothing
    assert store.get_poll_watermark() is None
    assert store.acquire_poll_lease("other", until=now + timedelta(minutes=1)) is None


def test_concurrent_lease_requests_have_one_winner(store: TrackingStore) -> None:
    barrier = threading.Barrier(4)
    wins = []

    def acquire(name: str) -> None:
        barrier.wait()
        wins.append(store.acquire_poll_lease(name, until=utcnow() + timedelta(minutes=1)))

    threads = [threading.Thread(target=acquire, args=(f"h{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(lease is not None for lease in wins) == 1


def test_small_errors_stay_inline_with_raw_text(store: TrackingStore) -> None:
    record = store.claim("e.xml", "e").record
    errors = [ExecutionError("1", "CUSTOMERGROUPID", "Customer group 99 does not exist.")]
    fields = store.store_errors(record, errors, raw='[{"RecordId":"1"}]')
    record = store.update(record, **fields)
    assert record.errors == tuple(errors)
    assert record.errors_blob is None
    assert record.errors_raw == '[{"RecordId":"1"}]'
    assert store.load_errors(record) == tuple(errors)


def test_large_errors_go_to_a_blob_and_the_row_keeps_a_pointer(store: TrackingStore) -> None:
    record = store.claim("big.xml", "e").record
    record = store.update(record, message_id="m-big")
    errors = [ExecutionError(str(i), "NAME", "x" * 200) for i in range(1000)]
    raw = "raw " * INLINE_TEXT_LIMIT
    record = store.update(record, **store.store_errors(record, errors, raw))
    assert record.error_count == 1000
    assert record.errors_blob is not None
    assert record.errors_blob.endswith("m-big/errors.json")
    assert 0 < len(record.errors) < 1000
    assert store.load_errors(store.get(record.row_key)) == tuple(errors)


def test_missing_table_gives_a_clear_error(storage_connection_string: str) -> None:
    tables = TableServiceClient.from_connection_string(storage_connection_string)
    store = TrackingStore(tables.get_table_client("nosuchtable123"))
    with pytest.raises(TrackingStoreError, match=r"nosuchtable123.*does not exist"):
        store.get_by_message_id("84a383c8-336d-45e4-9933-0c3e8bfb734a")
