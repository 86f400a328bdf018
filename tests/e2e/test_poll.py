"""Polling to completion: concurrency, faults, back-off limits and odd answers from F&O."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from shared.context import get_context
from shared.flows.policies import PollPolicy
from shared.flows.poll import Poller
from tests.e2e.conftest import App, enqueue_requests
from tests.e2e.test_enqueue import VALID


def _upload_many(app: App, count: int, folder: str = "customers/USMF") -> list[str]:
    return [app.upload(f"{folder}/file-{i}.xml", VALID) for i in range(count)]


def _operations(app: App, operation: str) -> list:
    return [r for r in app.d365.requests if r.operation == operation and r.status == 200]


def _wait_until_due() -> None:
    # POLL_INTERVAL_MIN is 1 s in these tests and schedule keys have whole seconds.
    time.sleep(2.1)


def test_two_concurrent_ticks_never_process_a_message_twice(app: App) -> None:
    blobs = _upload_many(app, 6)
    app.deliver()
    _wait_until_due()
    poller = get_context().poller
    barrier = threading.Barrier(2)

    def tick() -> None:
        barrier.wait()
        poller.tick()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    records = [app.record(blob) for blob in blobs]
    assert {r["state"] for r in records} == {"Processed"}
    assert len(_operations(app, "GetMessageStatus")) == 6
    assert len(_operations(app, "GetExecutionErrors")) == 6
    assert {r["poll_count"] for r in records} == {1}


def test_a_429_storm_loses_nothing(app: App) -> None:
    app.d365.knobs.throttle_fraction = 0.4
    app.d365.knobs.retry_after = 1
    blobs = _upload_many(app, 4)

    records = app.run_until_terminal(blobs, timeout=120)

    assert {r["state"] for r in records.values()} == {"Processed"}
    assert len(enqueue_requests(app.d365)) == 4
    assert any(r.status == 429 for r in app.d365.requests)


def test_5xx_bursts_while_polling_and_503_on_enqueue_lose_nothing(app: App) -> None:
    app.d365.knobs.operations = frozenset({"enqueue"})
    app.d365.knobs.error_burst = 2
    app.d365.knobs.error_status = 503
    blobs = _upload_many(app, 3)
    app.deliver()
    # A 503 proves F&O did not take the file: it is sent again from the poll schedule.
    assert len(enqueue_requests(app.d365)) == 1
    waiting = [app.record(b) for b in blobs if app.record(b)["state"] == "Received"]
    assert len(waiting) == 2
    assert all("not taken by F&O yet" in r["last_error"] for r in waiting)

    app.d365.knobs.operations = frozenset({"GetMessageStatus", "GetExecutionErrors"})
    app.d365.knobs.error_burst = 4
    app.d365.knobs.error_status = 500
    records = app.run_until_terminal(blobs, timeout=120)

    assert {r["state"] for r in records.values()} == {"Processed"}
    assert len(enqueue_requests(app.d365)) == 3
    assert sum(r.status == 500 for r in app.d365.requests) == 4


def test_one_message_failing_does_not_stop_the_others(app_factory) -> None:
    app = app_factory(POLL_CONCURRENCY="1")
    blobs = _upload_many(app, 3)
    app.deliver()
    _wait_until_due()
    app.d365.knobs.operations = frozenset({"GetExecutionErrors"})
    app.d365.knobs.error_burst = 1
    app.d365.knobs.error_status = 400

    app.host.run_timer_once()

    states = sorted(app.record(blob)["state"] for blob in blobs)
    assert states == ["Enqueued", "Processed", "Processed"]
    failed = next(app.record(b) for b in blobs if app.record(b)["state"] == "Enqueued")
    assert "400" in failed["last_error"]
    assert app.run_until_terminal(blobs)[blobs[0]]["state"] == "Processed"


def test_a_message_that_never_finishes_times_out_and_is_archived(app_factory) -> None:
    app = app_factory(MAX_PENDING_AGE="3s")
    app.d365.knobs.processing_seconds = 3600
    blob = app.upload("customers/USMF/slow.xml", VALID)

    record = app.run_until_terminal([blob], timeout=30)[blob]

    assert record["state"] == "TimedOut"
    assert "MAX_PENDING_AGE" in record["last_error"]
    assert record["d365_status"] == "Processing"
    assert record["archived_to"].endswith(f"TimedOut/{blob}")


def test_unknown_status_values_are_recorded_and_polled_on(app: App) -> None:
    blob = app.upload("customers/USMF/odd.xml", VALID)
    app.deliver()
    app.d365.set_outcome(app.record(blob)["message_id"], status="Archived")
    _wait_until_due()
    app.host.run_timer_once()

    record = app.record(blob)
    assert record["d365_status"] == "Archived"
    assert record["state"] == "Enqueued"
    assert record["next_poll_at"] is not None


def test_status_name_variants_map_to_our_states(app: App) -> None:
    app.d365.knobs.status_variants = True
    blob = app.upload("customers/USMF/variant.xml", VALID)
    app.deliver()
    app.d365.set_outcome(app.record(blob)["message_id"], status="PostProcessingFailed")

    record = app.run_until_terminal([blob])[blob]

    assert record["state"] == "PostProcessingFailed"
    assert record["d365_status"] == "PostProcessingError"


def test_errors_too_large_for_a_row_go_to_a_blob(app: App) -> None:
    blob = app.upload("customers/USMF/many-errors.xml", VALID)
    app.deliver()
    errors = [
        {"RecordId": str(i), "Field": "CUSTOMERGROUPID", "ErrorMessage": f"Group {i} " + "x" * 80}
        for i in range(1500)
    ]
    app.d365.set_outcome(app.record(blob)["message_id"], errors=errors)

    record = app.run_until_terminal([blob])[blob]

    assert record["state"] == "ProcessedWithErrors"
    assert record["error_count"] == 1500
    assert record["errors_blob"].startswith(app.env["ERRORS_CONTAINER"] + "/")
    assert len(record["errors"]) == 1000
    assert record["errors_truncated"] is True
    assert record["errors"][999]["record_id"] == "999"


def test_a_tick_past_its_budget_starts_no_work_and_leaves_it_due(app: App) -> None:
    blobs = _upload_many(app, 2)
    app.deliver()
    _wait_until_due()
    context = get_context()
    poller = Poller(
        context.store,
        context.client,
        context.enqueuer,
        context.inbound,
        policy=PollPolicy(tick_budget=timedelta(0)),
    )

    report = poller.tick()

    assert report.counts == {"deferred": 2}
    assert _operations(app, "GetMessageStatus") == []
    assert {app.record(b)["state"] for b in app.run_until_terminal(blobs)} == {"Processed"}


def test_an_archive_that_fails_is_retried_and_nothing_is_lost(app: App) -> None:
    blob = app.upload("customers/USMF/archive-later.xml", VALID)
    app.deliver()
    archive = app.blobs.get_container_client(app.env["ARCHIVE_CONTAINER"])
    archive.delete_container()
    _wait_until_due()
    app.host.run_timer_once()

    stuck = app.record(blob)
    assert stuck["state"] == "Processed"
    assert stuck["archived_to"] is None
    assert "not archived yet (storage answered 404 ContainerNotFound)" in stuck["archive_error"]
    assert app.inbound.get_blob_client(blob).exists()

    archive.create_container()
    _wait_until_due()
    app.host.run_timer_once()

    filed = app.record(blob)
    assert filed["archived_to"].endswith(f"Processed/{blob}")
    assert filed["archive_error"] is None
    assert filed["last_error"] is None
    assert not app.inbound.get_blob_client(blob).exists()
    assert app.get("health").json()["checks"]["storage"]["pending"] == 0
