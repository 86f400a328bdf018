"""One retention run: each kind past its retention deleted within the budget, one run at a time,
the blobs of a run that died finished by the next, the oldest record kept written down."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from devtools.azurite import Azurite
from shared.config.retention import RetentionSettings
from shared.flows.retention import Retention, steps_for
from shared.tracking import (
    Actor,
    AuditStore,
    ExportRetention,
    RecordRetention,
    TrackedFile,
    TrackingState,
)
from tests.shared.conftest import Domain

OLD = datetime(2025, 1, 1, tzinfo=UTC)


def _retention(
    domain: Domain, azurite: Azurite, settings: RetentionSettings | None = None
) -> tuple[Retention, RecordRetention]:
    client = TableServiceClient.from_connection_string(
        azurite.connection_string, **domain.faults.options()
    ).get_table_client(domain.context.settings.status_table)
    errors = domain.context.blob_service.get_container_client(
        domain.context.settings.errors_container
    )
    records = RecordRetention(client, errors_container=errors, clock=domain.clock)
    exports = ExportRetention(client, errors_container=errors)
    settings = settings or RetentionSettings(records_days=30, exports_days=None, audit_days=None)
    run = Retention(
        records,
        exports,
        steps_for(settings, records, exports, AuditStore(client, clock=domain.clock)),
        budget=timedelta(minutes=1),
        lease_span=timedelta(minutes=2),
        clock=domain.clock,
    )
    return run, records


def _final(domain: Domain, name: str, modified_at: datetime, **changes: object) -> TrackedFile:
    store = domain.context.store
    record = store.claim(f"{domain.folder}/{name}", f"e-{name}", modified_at=modified_at).record
    return store.update(record, state=TrackingState.PROCESSED, **changes)


def test_a_run_deletes_what_passed_its_retention_and_writes_down_the_oldest_kept(
    domain: Domain, azurite: Azurite, caplog: pytest.LogCaptureFixture
) -> None:
    domain.clock.advance(timedelta(days=-100))
    expired = [_final(domain, f"old-{n}", OLD + timedelta(hours=n)) for n in range(3)]
    domain.clock.advance(timedelta(days=100))
    kept = _final(domain, "kept", OLD + timedelta(days=1))  # an old blob, changed today
    run, _ = _retention(domain, azurite)
    caplog.set_level(logging.INFO, logger="shared.flows.retention")

    report = run.run()

    assert (report.deleted, report.finished, report.skipped) == ({"records": 6}, True, False)
    assert [domain.context.store.get(r.row_key) for r in expired] == [None, None, None]
    assert domain.context.store.get(kept.row_key) is not None
    assert report.oldest_record == OLD + timedelta(days=1)
    last = run.last_run()
    assert last is not None and last.watermark == OLD + timedelta(days=1)
    [line] = [r for r in caplog.records if r.getMessage().startswith("retention run")]
    assert "records=6" in line.getMessage() and line.rows == 6  # type: ignore[attr-defined]


def test_a_run_deletes_the_audit_rows_past_their_retention(
    domain: Domain, azurite: Azurite
) -> None:
    client = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        domain.context.settings.status_table
    )
    audit = AuditStore(client, clock=domain.clock)
    domain.clock.advance(timedelta(days=-40))
    old = audit.record("resubmit", actor=Actor.function_key(), request_id="r-old", targets=("a",))
    domain.clock.advance(timedelta(days=40))
    new = audit.record("resubmit", actor=Actor.function_key(), request_id="r-new", targets=("b",))
    settings = RetentionSettings(records_days=None, exports_days=None, audit_days=30)
    run, _ = _retention(domain, azurite, settings)

    report = run.run()

    assert report.deleted == {"audit": 1}
    assert (audit.get(old.row_key), audit.get(new.row_key)) == (None, new)


def test_a_run_that_deleted_nothing_keeps_the_last_answer_without_a_search(
    domain: Domain, azurite: Azurite
) -> None:
    _final(domain, "young", OLD)
    run, _ = _retention(domain, azurite)

    def probes() -> list[str]:
        found = [c for c in domain.faults.calls if c.endswith("$top=1") or "$top=1&" in c]
        domain.faults.calls.clear()
        return found

    assert run.run().oldest_record == OLD
    assert len(probes()) > 10  # the first run searched

    report = run.run()

    assert (report.deleted, report.oldest_record) == ({"records": 0}, OLD)
    assert probes() == []


def test_a_kind_kept_for_ever_is_not_read(domain: Domain, azurite: Azurite) -> None:
    domain.clock.advance(timedelta(days=-100))
    record = _final(domain, "forever", OLD)
    domain.clock.advance(timedelta(days=100))
    run, _ = _retention(
        domain, azurite, RetentionSettings(records_days=None, exports_days=None, audit_days=None)
    )

    assert run.run().deleted == {}
    assert domain.context.store.get(record.row_key) is not None


def test_one_run_at_a_time(domain: Domain, azurite: Azurite) -> None:
    run, records = _retention(domain, azurite)
    held = records.lease.acquire("other", until=domain.clock() + timedelta(minutes=5))
    assert held is not None

    assert run.run().skipped is True


def test_the_blobs_of_a_run_that_died_are_deleted_by_the_next(
    domain: Domain, azurite: Azurite
) -> None:
    settings = domain.context.settings
    errors = domain.context.blob_service.get_container_client(settings.errors_container)
    errors.upload_blob("m-dead/errors.json", b"[]")
    domain.clock.advance(timedelta(days=-100))
    record = _final(domain, "dead", OLD, errors_blob=f"{settings.errors_container}/m-dead/x.json")
    record = domain.context.store.update(record, message_id="m-dead", index_message=True)
    domain.clock.advance(timedelta(days=100))
    run, records = _retention(domain, azurite)
    # The run's transactions landed, then it died before its blobs.
    records.delete_older_than(domain.clock() - timedelta(days=30), deadline=float("inf"))
    assert domain.context.store.get_by_message_id("m-dead") is None
    assert domain.context.store.list_records().records == ()
    assert [b.name for b in errors.list_blobs()] == ["m-dead/errors.json"]

    report = run.run()

    assert report.blobs == 1
    assert list(errors.list_blobs()) == []
