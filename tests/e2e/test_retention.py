"""The retention timer through the host: an expired final record and its rows go, a live one
stays, and /api/health shows the retention in force and the oldest record kept."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from shared.tracking import TrackedFile, TrackingState, record_id_for, record_row_key, to_entity
from shared.tracking._codec import index_entity
from shared.tracking._keys import blob_index_key
from tests.e2e.conftest import App

LONG_AGO = datetime(2024, 3, 1, 12, tzinfo=UTC)


def _old_final_record(app: App) -> TrackedFile:
    """A record finished long ago, written as the store writes one (record and index row)."""
    blob = f"{app.folder}/customers/USMF/old.xml"
    record_id = record_id_for(blob, "0x8D000OLD")
    record = TrackedFile(
        record_id=record_id,
        row_key=record_row_key(LONG_AGO, record_id),
        blob=blob,
        blob_etag="0x8D000OLD",
        state=TrackingState.PROCESSED,
        received_at=LONG_AGO,
        updated_at=LONG_AGO,
    )
    table = app.tables.get_table_client(app.env["STATUS_TABLE"])
    table.create_entity(to_entity(replace(record, completed_at=LONG_AGO)))
    table.create_entity(index_entity(blob_index_key(blob, record.row_key), record.row_key))
    return record


def test_the_timer_deletes_an_expired_record_and_health_shows_what_is_kept(
    app_factory: object,
) -> None:
    app = app_factory(RETENTION_RECORDS_DAYS="30", RETENTION_AUDIT_DAYS="never")  # type: ignore[operator]
    live = app.upload("customers/USMF/live.xml", b"<Customers/>")
    record = app.run_until_terminal([live])[live]
    old = _old_final_record(app)
    before = app.get("health").json()["checks"]["retention"]
    assert before.pop("last_run") is not None  # run_until_terminal ran every timer
    assert before.pop("oldest_record") is not None  # the live record's
    assert before == {
        "ok": True,
        "records_days": 30,
        "exports_days": 90,
        "audit_days": None,
        "schedule": "0 30 2 * * *",
        "budget_seconds": 300,
    }
    assert app.get("messages", blob=old.blob).status_code == 200

    app.host.run_timer_once()  # poll_status, export_jobs and retention (run_until_terminal too)

    assert app.get("messages", blob=old.blob).status_code == 404
    assert app.record(live)["state"] == record["state"]
    after = app.get("health").json()["checks"]["retention"]
    assert after["last_run"] is not None
    oldest = datetime.fromisoformat(after["oldest_record"])
    assert datetime.now(UTC) - timedelta(minutes=5) < oldest <= datetime.now(UTC)
