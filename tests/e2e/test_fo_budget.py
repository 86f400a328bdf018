"""One F&O budget for the whole app, through the local host, with the emulator enforcing
F&O's user-based limits."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import ResourceExistsError

from shared.tracking import BUDGET_PARTITION
from tests.e2e.conftest import App, enqueue_requests
from tests.e2e.test_enqueue import VALID


def _limit_emulator(app: App) -> None:
    app.d365.knobs.latency_ms = 80
    app.d365.knobs.user_max_concurrent = 3
    app.d365.knobs.user_retry_after_max = 2


def _upload(app: App, count: int) -> list[str]:
    return [app.upload(f"customers/USMF/file-{i}.xml", VALID) for i in range(count)]


def test_the_app_stays_under_f_and_os_concurrency_limit_with_its_budget(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory(D365_MAX_CONCURRENCY="3", POLL_CONCURRENCY="8")
    _limit_emulator(app)
    blobs = _upload(app, 12)

    records = app.run_until_terminal(blobs, timeout=120)

    assert {r["state"] for r in records.values()} == {"Processed"}
    assert app.d365.limits.refusals == 0
    assert app.d365.limits.max_in_flight <= 3
    assert not [r for r in app.d365.requests if r.status == 429]
    table = app.tables.get_table_client(app.env["STATUS_TABLE"])
    rows = list(table.query_entities(f"PartitionKey eq '{BUDGET_PARTITION}'"))
    assert [row["RowKey"].split("-")[0] for row in rows] == ["instance"]


def test_without_the_budget_the_same_load_meets_429s_and_still_loses_nothing(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory(D365_BUDGET="off", POLL_CONCURRENCY="8")
    _limit_emulator(app)
    blobs = _upload(app, 12)

    app.deliver()
    time.sleep(2.1)  # POLL_INTERVAL_MIN is 1 s, schedule keys have whole seconds
    app.host.run_timer_once()  # 12 polls due, 8 at once

    assert app.d365.limits.refusals > 0
    assert app.d365.limits.max_offered > 3
    # F&O relents (its Retry-After, growing while pushed, can otherwise keep an app without
    # a budget out for good): every file gets there, each sent once.
    app.d365.knobs.user_max_concurrent = None
    records = app.run_until_terminal(blobs, timeout=120)
    assert {r["state"] for r in records.values()} == {"Processed"}
    assert len(enqueue_requests(app.d365)) == 12


def test_a_429_another_instance_got_holds_this_one_back_until_it_ends(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory()
    table = app.tables.get_table_client(app.env["STATUS_TABLE"])
    with contextlib.suppress(ResourceExistsError):
        table.create_table()
    until = datetime.now(UTC) + timedelta(seconds=4)
    table.upsert_entity(
        {
            "PartitionKey": BUDGET_PARTITION,
            "RowKey": "throttle",
            "until": until,
            "retry_after": 4.0,
            "instance": "another",
        }
    )
    blob = app.upload("customers/USMF/held.xml", VALID)

    app.deliver()

    assert datetime.now(UTC) >= until - timedelta(seconds=0.5)
    enqueues = [r for r in app.d365.requests if r.operation == "enqueue"]
    assert [r.status for r in enqueues] == [200]
    assert app.record(blob)["state"] in {"Enqueued", "Processed"}
    began = time.monotonic()
    assert app.run_until_terminal([blob], timeout=60)[blob]["state"] == "Processed"
    assert time.monotonic() - began < 60
