"""Retention of the status table's rows: final records with their rows and blobs, export
records, in batch transactions that leave nothing dangling, and the oldest record kept."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.tracking import (
    ExportRetention,
    ExportStore,
    RecordRetention,
    TrackedFile,
    TrackingState,
    TrackingStore,
    utcnow,
)
from shared.tracking._deletions import Deletions
from shared.tracking._table import StatusTable
from tests.faults import StorageFaults

T0 = datetime(2025, 1, 1, tzinfo=UTC)
LATER = time.monotonic() + 3600  # a deadline that never passes in a test


@pytest.fixture
def errors(storage_connection_string: str, unique_name: str) -> ContainerClient:
    return BlobServiceClient.from_connection_string(storage_connection_string).get_container_client(
        unique_name
    )


@pytest.fixture
def retention(
    storage_connection_string: str,
    store: TrackingStore,
    errors: ContainerClient,
    faults: StorageFaults,
) -> RecordRetention:
    tables = TableServiceClient.from_connection_string(
        storage_connection_string, retry_backoff_factor=0.01, **faults.options()
    )
    return RecordRetention(tables.get_table_client(store.table_name), errors_container=errors)


def _keys(storage_connection_string: str, store: TrackingStore, partition: str = "files") -> set:
    table = TableServiceClient.from_connection_string(storage_connection_string).get_table_client(
        store.table_name
    )
    rows = table.query_entities("PartitionKey eq @p", parameters={"p": partition})
    return {row["RowKey"] for row in rows if not row["RowKey"].startswith("~lease-")}


def _final(
    store: TrackingStore,
    name: str,
    *,
    modified_at: datetime = T0,
    state: TrackingState = TrackingState.PROCESSED,
    message_id: str | None = None,
    **changes: object,
) -> TrackedFile:
    record = store.claim(f"in/{name}.xml", f"etag-{name}", modified_at=modified_at).record
    if message_id:
        record = store.update(record, message_id=message_id, index_message=True)
    return store.update(record, state=state, **changes)


def _own_rows(record: TrackedFile) -> set[str]:
    from shared.tracking._keys import blob_index_key, message_key

    keys = {record.row_key, blob_index_key(record.blob, record.row_key)}
    if record.message_id:
        keys.add(message_key(record.message_id))
    return keys


def test_a_final_record_goes_with_its_index_rows_schedule_entry_and_blobs(
    store: TrackingStore,
    retention: RecordRetention,
    errors: ContainerClient,
    storage_connection_string: str,
) -> None:
    errors.upload_blob("m-1/errors.json", b"[]")
    errors.upload_blob("m-1/errors.raw.txt", b"raw")
    errors.upload_blob("m-2/errors.json", b"[]")  # another record's: stays
    gone = _final(
        store, "gone", message_id="m-1", errors_blob=f"{errors.container_name}/m-1/errors.json"
    )
    # A final record whose schedule entry was left behind (written with it, as a crash could).
    lingering = _final(store, "lingering", message_id="m-3", schedule_at=utcnow())
    pending = store.claim("in/pending.xml", "e-p", modified_at=T0, schedule_at=utcnow()).record
    archiving = _final(store, "archiving", archive_pending=True)
    # A blob version modified after the cut-off: its key is newer, so it is never read.
    recent = _final(store, "recent", modified_at=utcnow() + timedelta(days=1))
    unknown = _final(store, "unknown-state")
    table = TableServiceClient.from_connection_string(storage_connection_string).get_table_client(
        store.table_name
    )
    table.upsert_entity({"PartitionKey": "files", "RowKey": unknown.row_key, "state": "Later"})
    kept_rows = _keys(storage_connection_string, store) - _own_rows(gone) - _own_rows(lingering)
    kept_rows -= {f"~s-{lingering.record_id}"}

    # Changed within the retention (now): kept.
    assert retention.delete_older_than(utcnow() - timedelta(days=1), deadline=LATER) == 0
    deleted = retention.delete_older_than(utcnow() + timedelta(minutes=1), deadline=LATER)

    assert deleted == 3 + 4  # gone (+ its message index), lingering (+ its entry)
    rows = _keys(storage_connection_string, store)
    assert rows == kept_rows | {f"~p-{gone.record_id}"}
    assert store.get(pending.row_key) is not None and store.get(archiving.row_key) is not None
    assert store.get(recent.row_key) is not None
    assert table.get_entity("files", unknown.row_key)["state"] == "Later"
    assert store.get_by_message_id("m-1") is None  # no index row left pointing nowhere
    assert sorted(b.name for b in errors.list_blobs()) == [
        "m-1/errors.json",
        "m-1/errors.raw.txt",
        "m-2/errors.json",
    ]

    assert retention.purge.finish(deadline=LATER) == 2

    assert [b.name for b in errors.list_blobs()] == ["m-2/errors.json"]
    assert not any(key.startswith("~p-") for key in _keys(storage_connection_string, store))


def test_the_failed_head_of_an_ordered_line_is_kept_until_released(
    store: TrackingStore, retention: RecordRetention
) -> None:
    line = {"line": "ordered/USMF", "line_mode": "final", "line_stops": True}
    blocker = _final(store, "blocker", state=TrackingState.PRE_PROCESSING_ERROR, **line)
    released = _final(
        store, "released", state=TrackingState.PRE_PROCESSING_ERROR, released_at=T0, **line
    )
    passed = _final(store, "passed", **line)
    continuing = _final(
        store,
        "continuing",
        state=TrackingState.PRE_PROCESSING_ERROR,
        **{**line, "line_stops": False},
    )

    retention.delete_older_than(utcnow() + timedelta(minutes=1), deadline=LATER)

    # Deleting the blocker would send the files behind it with nobody's word.
    assert store.get(blocker.row_key) is not None
    assert [store.get(r.row_key) for r in (released, passed, continuing)] == [None, None, None]


def test_a_record_changed_after_it_was_read_is_kept(
    store: TrackingStore, retention: RecordRetention, faults: StorageFaults
) -> None:
    changed = _final(store, "changed")
    other = _final(store, "other")
    faults.meanwhile(
        "POST", "$batch", lambda: store.update(store.get(changed.row_key), resubmitted_as="x")
    )

    deleted = retention.delete_older_than(utcnow() + timedelta(minutes=1), deadline=LATER)

    assert deleted == 2  # the other record and its blob-path index row
    assert store.get(changed.row_key).resubmitted_as == "x"
    assert store.get(other.row_key) is None


def test_a_missing_index_row_or_a_lost_answer_does_not_stop_the_batch(
    store: TrackingStore,
    retention: RecordRetention,
    faults: StorageFaults,
    storage_connection_string: str,
) -> None:
    from shared.tracking._keys import blob_index_key

    first = _final(store, "first", message_id="m-first")
    second = _final(store, "second")
    table = TableServiceClient.from_connection_string(storage_connection_string).get_table_client(
        store.table_name
    )
    table.delete_entity("files", blob_index_key(first.blob, first.row_key))
    faults.fail("lost", "POST", "$batch")  # applied, its answer lost: sent again, meets 404

    retention.delete_older_than(utcnow() + timedelta(minutes=1), deadline=LATER)

    assert _keys(storage_connection_string, store) == set()
    assert store.get(second.row_key) is None
    assert faults.injected["lost"] == 1


def test_a_run_out_of_time_stops_after_its_batch_and_the_next_finishes(
    store: TrackingStore, retention: RecordRetention, storage_connection_string: str
) -> None:
    for index in range(60):
        _final(store, f"r{index:02d}", modified_at=T0 + timedelta(seconds=index))

    first = retention.delete_older_than(utcnow() + timedelta(minutes=1), deadline=0.0)
    assert 0 < first <= 100  # one batch: 50 records of 2 rows each
    second = retention.delete_older_than(utcnow() + timedelta(minutes=1), deadline=LATER)

    assert first + second == 120
    assert _keys(storage_connection_string, store) == set()


def test_the_deletions_keep_their_pace(store: TrackingStore, retention: RecordRetention) -> None:
    for index in range(60):
        _final(store, f"p{index:02d}", modified_at=T0 + timedelta(seconds=index))
    waits: list[float] = []
    paced = Deletions(StatusTable(retention._table._client), rows_per_second=50, sleep=waits.append)

    started = time.monotonic()
    deleted = paced.delete(retention._expired(utcnow() + timedelta(minutes=1)), deadline=LATER)

    assert deleted == 120
    assert len(waits) == 1  # after the first batch of 100 rows: 2 s at 50 a second
    assert 2.0 - (time.monotonic() - started) <= waits[0] <= 2.0


def test_the_deletions_keep_the_store_busy_only_their_share_of_the_time(
    store: TrackingStore, retention: RecordRetention
) -> None:
    for index in range(60):
        _final(store, f"s{index:02d}", modified_at=T0 + timedelta(seconds=index))
    waits: list[float] = []
    shared = Deletions(StatusTable(retention._table._client), busy_share=0.2, sleep=waits.append)

    started = time.monotonic()
    deleted = shared.delete(retention._expired(utcnow() + timedelta(minutes=1)), deadline=LATER)
    elapsed = time.monotonic() - started

    assert deleted == 120
    [wait] = waits  # after the first transaction: four times as long as it took
    assert 0 < wait <= 4 * elapsed


def test_the_oldest_record_kept_is_found_by_its_key(
    store: TrackingStore, retention: RecordRetention
) -> None:
    assert retention.oldest_record() is None
    times = [T0 + timedelta(days=d, milliseconds=d * 7) for d in (300, 3, 40, 0, 1000)]
    for index, modified in enumerate(times):
        store.claim(f"in/o{index}.xml", f"e{index}", modified_at=modified)

    assert retention.oldest_record() == min(times)


def test_acknowledged_export_records_go_the_others_stay(
    store: TrackingStore, storage_connection_string: str, errors: ContainerClient
) -> None:
    client = TableServiceClient.from_connection_string(storage_connection_string).get_table_client(
        store.table_name
    )
    exports = ExportStore(client, errors_container=errors, clock=lambda: T0)
    ids = [f"00000000-0000-0000-0000-00000000000{n}" for n in range(3)]
    records = [
        exports.dequeued(message_id=i, route="r", activity_id="a", container="c", target="t")
        for i in ids
    ]
    many = [f"file-{n:05d}-{'x' * 40}.csv" for n in range(400)]  # a list too long for the row
    acked = exports.acked(exports.downloaded(records[0], many, 10))
    exports.downloaded(records[1], ["one.csv"], 10)  # written, not acknowledged
    exports.acked(records[2])
    assert acked.blobs_blob is not None
    retention = ExportRetention(client, errors_container=errors)

    deleted = retention.delete_older_than(T0 + timedelta(seconds=1), deadline=LATER)
    blobs = retention.purge.finish(deadline=LATER)

    assert deleted == 2
    assert _keys(storage_connection_string, store, "exports") == {ids[1]}
    assert blobs == 1
    assert list(errors.list_blobs(name_starts_with="exports/")) == []
