"""Outcome unknown is a value on the record (``failure``), not a sentence read by its start."""

from __future__ import annotations

from datetime import UTC, datetime

from azure.data.tables import TableClient, TableServiceClient

from shared.tracking import (
    UNSCHEDULE,
    FailureKind,
    TrackedFile,
    TrackingState,
    TrackingStore,
    to_entity,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
UNKNOWN = "outcome unknown: F&O may or may not have the file, as the worker stopped"


def _table(connection_string: str, store: TrackingStore) -> TableClient:
    service = TableServiceClient.from_connection_string(connection_string)
    return service.get_table_client(store.table_name)


def _failed(store: TrackingStore, **changes: object) -> TrackedFile:
    record = store.claim("a/b.xml", "e1", modified_at=T0, schedule_at=T0).record
    return store.update(
        record, state=TrackingState.ENQUEUE_FAILED, schedule_at=UNSCHEDULE, **changes
    )


def test_the_failure_kind_is_stored_on_the_row(
    store: TrackingStore, storage_connection_string: str
) -> None:
    failed = _failed(store, last_error="F&O lost it", failure=FailureKind.OUTCOME_UNKNOWN)

    row = _table(storage_connection_string, store).get_entity("files", failed.row_key)
    assert row["failure"] == "OutcomeUnknown"
    assert row["last_error"] == "F&O lost it"
    read = store.get(failed.row_key)
    assert read is not None
    assert read.failure is FailureKind.OUTCOME_UNKNOWN
    assert read.last_error == "F&O lost it"


def test_a_new_last_error_without_a_kind_clears_the_kind(store: TrackingStore) -> None:
    failed = _failed(store, last_error=UNKNOWN, failure=FailureKind.OUTCOME_UNKNOWN)
    reopened = store.update(failed, state=TrackingState.ENQUEUED, last_error=None)
    assert reopened.failure is None
    stored = store.get(failed.row_key)
    assert stored is not None and stored.failure is None


def test_a_change_that_keeps_last_error_keeps_its_kind(store: TrackingStore) -> None:
    failed = _failed(store, last_error="F&O lost it", failure=FailureKind.OUTCOME_UNKNOWN)
    linked = store.update(failed, resubmitted_as="0000000000000-" + "0" * 32)
    stored = store.get(linked.row_key)
    assert stored is not None and stored.failure is FailureKind.OUTCOME_UNKNOWN


def test_a_row_written_before_the_kind_was_stored_is_read_by_its_text(
    store: TrackingStore, storage_connection_string: str
) -> None:
    """Rows written by an earlier version carry only the sentence."""
    record = _failed(store, last_error="x")
    table = _table(storage_connection_string, store)
    for text, kind in ((UNKNOWN, FailureKind.OUTCOME_UNKNOWN), ("F&O refused it", None)):
        old = to_entity(
            TrackedFile(
                record_id=record.record_id,
                row_key=record.row_key,
                blob=record.blob,
                blob_etag=record.blob_etag,
                state=TrackingState.ENQUEUE_FAILED,
                received_at=T0,
                updated_at=T0,
                last_error=text,
            )
        )
        assert "failure" not in old
        table.upsert_entity(old)
        read = store.get(record.row_key)
        assert read is not None
        assert read.failure is kind
