"""The F&O budget the instances share in the status table (Azurite): shares by live
instances, one 429 stopping every instance, the largest Retry-After kept, a dead instance's
share given back, a table that fails, and what it costs in table calls."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.data.tables import TableClient, TableServiceClient

from shared.clients.d365 import CallPriority
from shared.tracking import BUDGET_PARTITION, BudgetLimits, SharedBudget, split_concurrency
from tests.faults import StorageFaults

STATUS = CallPriority.STATUS


class _Clock:
    """A UTC clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def table(storage_connection_string: str, unique_name: str, faults: StorageFaults) -> TableClient:
    client = TableServiceClient.from_connection_string(
        storage_connection_string, retry_backoff_factor=0.01, **faults.options()
    ).get_table_client(unique_name)
    client.create_table()
    return client


def _budget(
    table: TableClient, name: str, *, rate: int = 600, clock: _Clock | None = None
) -> SharedBudget:
    limits = BudgetLimits(5, rate, refresh=timedelta(seconds=0.2), heartbeat=timedelta(seconds=10))
    if clock is None:
        return SharedBudget(table, limits, instance_id=name)
    return SharedBudget(table, limits, instance_id=name, clock=clock)


def test_idle_instances_split_the_apps_limits_evenly_by_rank(table: TableClient) -> None:
    first, second = _budget(table, "a"), _budget(table, "b")
    first.refresh()
    second.refresh()
    first.refresh()
    assert (first.live_instances, second.live_instances) == (2, 2)
    assert (first.local.concurrency, second.local.concurrency) == (3, 2)
    # The rate follows the concurrency: 600 per 5 minutes in all.
    assert (first.local.requests_per_5min, second.local.requests_per_5min) == (360, 240)
    rows = {row["RowKey"] for row in table.query_entities(f"PartitionKey eq '{BUDGET_PARTITION}'")}
    assert rows == {"instance-a", "instance-b"}


def test_a_busy_instance_gets_the_slots_it_wants_from_an_idle_one(table: TableClient) -> None:
    busy, idle = _budget(table, "b-busy"), _budget(table, "a-idle")
    idle.refresh()
    assert busy.acquire(STATUS, timeout=1)  # holds the one slot of its first share
    with ThreadPoolExecutor(3) as pool:
        waiting = [pool.submit(busy.acquire, STATUS, timeout=3) for _ in range(3)]
        assert all(done.result() for done in waiting)
    idle.refresh()
    assert busy.local.concurrency >= 4
    assert idle.local.concurrency <= 1
    row = table.get_entity(BUDGET_PARTITION, "instance-b-busy")
    assert row["demand"] == 8  # 4 status calls at once, each counting twice


@pytest.mark.parametrize(
    ("total", "demands", "expected"),
    [
        (5, [("a", 0), ("b", 0)], {"a": 3, "b": 2}),
        (32, [("a", 17), ("b", 4), ("c", 4)], {"a": 20, "b": 6, "c": 6}),
        (8, [("a", 16), ("b", 4), ("c", 0)], {"a": 6, "b": 2, "c": 0}),
        (6, [(name, 4) for name in "abcdef"], dict.fromkeys("abcdef", 1)),
        (2, [("a", 1), ("b", 1), ("c", 1)], {"a": 1, "b": 1, "c": 0}),
        (32, [("a", 0)], {"a": 32}),
        (
            6,
            [("a", 32), *((name, 4) for name in "bcdef")],
            {"a": 4, "b": 1, "c": 1} | dict.fromkeys("def", 0),
        ),
    ],
)
def test_the_concurrency_goes_by_demand_and_sums_to_the_apps(
    total: int, demands: list[tuple[str, int]], expected: dict[str, int]
) -> None:
    shares = split_concurrency(total, demands)
    assert shares == expected
    assert sum(shares.values()) == total


def test_a_429_one_instance_got_stops_the_others(table: TableClient) -> None:
    first, second = _budget(table, "a"), _budget(table, "b")
    second.refresh()
    first.throttled(30)
    assert second.retry_after() == 0
    second.refresh()
    assert 28 < second.retry_after() <= 30
    began = time.monotonic()
    assert not second.acquire(STATUS, timeout=1)
    assert time.monotonic() - began < 0.5


def test_the_largest_retry_after_is_kept(table: TableClient) -> None:
    first, second, third = _budget(table, "a"), _budget(table, "b"), _budget(table, "c")
    first.throttled(30)
    second.throttled(5)
    third.refresh()
    assert 28 < third.retry_after() <= 30
    second.throttled(60)
    third.refresh()
    assert 58 < third.retry_after() <= 60
    row = table.get_entity(BUDGET_PARTITION, "throttle")
    assert (row["retry_after"], row["instance"]) == (60.0, "b")


def test_a_dead_instance_gives_its_share_back_within_three_heartbeats(table: TableClient) -> None:
    clock = _Clock()
    first, second = _budget(table, "a", clock=clock), _budget(table, "b", clock=clock)
    first.refresh()
    second.refresh()  # "b" beats once, holding 2 of 5 slots, then dies
    first.refresh()
    assert first.local.concurrency == 3
    clock.now += timedelta(seconds=29)
    first.refresh()
    assert first.local.concurrency == 3
    clock.now += timedelta(seconds=2)
    first.refresh()
    assert (first.live_instances, first.local.concurrency) == (1, 5)
    assert first.local.requests_per_5min == 600


def test_rows_of_instances_long_gone_are_deleted(table: TableClient) -> None:
    clock = _Clock()
    for name in ("x", "y"):
        _budget(table, name, clock=clock).refresh()
    clock.now += timedelta(minutes=11)
    _budget(table, "a", clock=clock).refresh()
    rows = {row["RowKey"] for row in table.query_entities(f"PartitionKey eq '{BUDGET_PARTITION}'")}
    assert rows == {"instance-a"}


def test_a_budget_whose_table_fails_goes_on_with_its_last_share(
    table: TableClient, faults: StorageFaults, caplog: pytest.LogCaptureFixture
) -> None:
    budget = _budget(table, "a")
    _budget(table, "b").refresh()
    budget.refresh()
    assert budget.local.concurrency == 3
    faults.fail("reset", "GET", BUDGET_PARTITION, times=100)
    faults.fail("reset", "PUT", BUDGET_PARTITION, times=100)
    faults.fail("reset", "POST", "", times=100)
    caplog.set_level(logging.WARNING, "shared.tracking._budget")
    time.sleep(0.25)
    assert budget.acquire(STATUS, timeout=1)
    budget.throttled(0.2)  # published nowhere, kept here
    assert budget.local.concurrency == 3
    assert budget.retry_after() > 0
    assert any("f&o budget table unavailable" in r.getMessage() for r in caplog.records)


def test_a_budget_without_a_table_at_all_fails_open_with_a_local_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = TableClient(
        "http://127.0.0.1:9/devstoreaccount1",
        "missing",
        credential=AzureNamedKeyCredential("devstoreaccount1", "a2V5"),
        retry_total=0,
        connection_timeout=1,
    )
    caplog.set_level(logging.WARNING, "shared.tracking._budget")
    budget = SharedBudget(nowhere, BudgetLimits(32, 4800), instance_id="a")
    assert budget.acquire(STATUS, timeout=2)
    assert (budget.local.concurrency, budget.local.requests_per_5min) == (8, 1200)
    messages = [r.getMessage() for r in caplog.records]
    assert any("unavailable, going on with this instance's last share" in m for m in messages)


def test_the_budget_costs_few_table_calls_per_f_and_o_call(
    table: TableClient, faults: StorageFaults
) -> None:
    budget = _budget(table, "a", rate=1_000_000)
    faults.calls.clear()
    calls = 0
    ends = time.monotonic() + 2.0
    while time.monotonic() < ends:
        assert budget.acquire(STATUS, timeout=1)
        budget.release(STATUS)
        calls += 1
        time.sleep(0.01)
    sent = [call for call in faults.calls if BUDGET_PARTITION in call or "instance-a" in call]
    # About one read per refresh (0.2 s) and one heartbeat: ~11 for ~150 calls.
    assert len(sent) == budget.table_calls
    assert budget.table_calls / calls < 0.15
    assert budget.permits == calls
