"""The call budget: a process's permits (LocalBudget), and the engine asking it before every
call to the emulator, telling it of every 429, and sending nothing without a permit."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from devtools.d365_emulator import Emulator, Job
from shared.clients.d365 import (
    NOT_TAKEN_STATUSES,
    UNLIMITED,
    CallPriority,
    D365Client,
    D365ThrottledError,
    LocalBudget,
    RetryPolicy,
    priority_of,
)
from tests.shared.clients.d365.support import ClientFactory, received

MESSAGE_ID = "8872247b-195a-4f35-aeb2-500b503b2b98"
PLENTY = 1_000_000.0
STATUS, TRANSFER = CallPriority.STATUS, CallPriority.TRANSFER


def _job(d365: Emulator) -> Job:
    return next(job for job in d365.jobs if job.entity)


# -- LocalBudget on its own --------------------------------------------------------------------


def test_status_calls_are_the_polls_everything_else_transfers() -> None:
    assert priority_of("GetMessageStatus") is STATUS
    assert priority_of("GetExecutionSummaryStatus") is STATUS
    assert priority_of("GetExecutionErrors") is STATUS
    assert {priority_of(op) for op in ("enqueue", "dequeue", "download", "ack")} == {TRANSFER}
    assert priority_of("ImportFromPackage") is TRANSFER


def test_a_budget_lets_out_no_more_calls_at_once_than_its_concurrency() -> None:
    budget = LocalBudget(2, PLENTY)
    assert budget.acquire(STATUS, timeout=0)
    assert budget.acquire(STATUS, timeout=0)
    began = time.monotonic()
    assert not budget.acquire(STATUS, timeout=0.2)
    assert time.monotonic() - began >= 0.19
    budget.release(STATUS)
    assert budget.acquire(STATUS, timeout=0)
    assert budget.in_flight == 2


def test_transfers_leave_a_quarter_of_the_slots_to_status_calls() -> None:
    budget = LocalBudget(4, PLENTY)
    assert all(budget.acquire(TRANSFER, timeout=0) for _ in range(3))
    assert not budget.acquire(TRANSFER, timeout=0.05)
    assert budget.acquire(STATUS, timeout=0)
    assert budget.in_flight == 4


def test_a_waiting_status_call_goes_before_transfers_that_waited_longer() -> None:
    budget = LocalBudget(1, PLENTY)
    assert budget.acquire(TRANSFER, timeout=0)
    order: list[str] = []

    def wait_for(priority: CallPriority) -> None:
        assert budget.acquire(priority, timeout=5)
        order.append(priority.name)
        budget.release(priority)

    transfer = threading.Thread(target=wait_for, args=(TRANSFER,))
    transfer.start()
    time.sleep(0.1)
    status = threading.Thread(target=wait_for, args=(STATUS,))
    status.start()
    time.sleep(0.1)
    budget.release(TRANSFER)
    transfer.join(5)
    status.join(5)
    assert order == ["STATUS", "TRANSFER"]


def test_the_rate_allows_a_burst_of_ten_seconds_then_spreads_calls_evenly() -> None:
    # 2 calls a second: a burst of 20, then one each half second.
    budget = LocalBudget(2, 2 * 300)
    began = time.monotonic()
    for _ in range(20):
        assert budget.acquire(STATUS, timeout=0)
        budget.release(STATUS)
    assert time.monotonic() - began < 0.5
    for _ in range(4):
        assert budget.acquire(STATUS, timeout=5)
        budget.release(STATUS)
    assert 1.9 <= time.monotonic() - began < 4.0


def test_a_throttled_budget_lets_nothing_out_until_it_ends() -> None:
    budget = LocalBudget(8, PLENTY)
    budget.throttled(0.4)
    budget.throttled(0.1)  # an earlier end never shortens it
    began = time.monotonic()
    assert not budget.acquire(STATUS, timeout=0.2)
    assert time.monotonic() - began < 0.1  # throttled past the wait: no permit, at once
    assert 0.2 < budget.retry_after() <= 0.4
    assert budget.acquire(STATUS, timeout=1)
    assert time.monotonic() - began >= 0.39


def test_a_budget_refuses_negative_limits() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        LocalBudget(-1, 10)


# -- the engine with a budget ------------------------------------------------------------------


def test_a_call_given_no_permit_is_not_sent_and_fails_as_not_taken(
    d365: Emulator, make_client: ClientFactory
) -> None:
    budget = LocalBudget(8, PLENTY)
    budget.throttled(60)
    client = make_client(budget=budget)
    with pytest.raises(D365ThrottledError) as caught:
        client.get_message_status(MESSAGE_ID)
    error = caught.value
    assert error.status_code == 429
    assert error.status_code in NOT_TAKEN_STATUSES
    assert error.retry_after is not None
    assert 58 < error.retry_after <= 60
    assert "was not sent: F&O throttles the client's call budget for 60 s more" in str(error)
    assert str(error).endswith("Try again after 60 s.")
    assert received(d365, "GetMessageStatus") == []


def test_a_call_waits_for_a_permit_no_longer_than_budget_wait(
    d365: Emulator, make_client: ClientFactory
) -> None:
    budget = LocalBudget(1, PLENTY)
    assert budget.acquire(STATUS, timeout=0)
    client = make_client(budget=budget, budget_wait=0.3)
    began = time.monotonic()
    with pytest.raises(
        D365ThrottledError, match=r"no permit of the client's call budget came within 0\.3 s"
    ):
        client.get_message_status(MESSAGE_ID)
    assert 0.29 <= time.monotonic() - began < 2
    assert received(d365, "GetMessageStatus") == []


def test_a_429_makes_every_caller_of_the_budget_wait_its_retry_after(
    d365: Emulator, make_client: ClientFactory
) -> None:
    budget = LocalBudget(8, PLENTY)
    d365.knobs.operations = frozenset({"GetMessageStatus"})
    d365.knobs.throttle_burst = 1
    d365.knobs.retry_after = 1
    one_attempt = make_client(budget=budget, retry=RetryPolicy(max_attempts=1))
    other = make_client(budget=budget)
    with pytest.raises(D365ThrottledError):
        one_attempt.get_message_status(MESSAGE_ID)
    assert budget.retry_after() > 0.8
    began = time.monotonic()
    assert other.get_message_status(MESSAGE_ID).raw == "Enqueued"
    assert time.monotonic() - began >= 0.8
    assert [r.status for r in received(d365, "GetMessageStatus")] == [429, 200]


def test_sas_calls_go_to_azure_storage_and_take_no_permit(
    d365: Emulator, make_client: ClientFactory
) -> None:
    budget = LocalBudget(1, PLENTY)
    client = make_client(budget=budget, budget_wait=0.2)
    write = client.get_azure_write_url("package.zip")
    assert budget.acquire(TRANSFER, timeout=0)  # the only slot, held
    package = b"PK\x05\x06" + bytes(18)
    client.upload_package(write.url, lambda: io.BytesIO(package), length=len(package))
    puts = [r.status for r in d365.requests if r.operation.startswith("blob_")]
    assert puts and set(puts) == {201}
    assert budget.in_flight == 1


def test_the_budget_keeps_calls_under_the_emulators_concurrency_limit(
    d365: Emulator, make_client: ClientFactory
) -> None:
    d365.knobs.latency_ms = 60
    d365.knobs.user_max_concurrent = 3

    def burst(client: D365Client) -> None:
        with ThreadPoolExecutor(12) as pool:
            list(pool.map(lambda _: client.get_message_status(MESSAGE_ID), range(36)))

    burst(make_client(budget=LocalBudget(3, PLENTY), pool_maxsize=12))
    assert d365.limits.refusals == 0
    assert d365.limits.max_in_flight == 3
    assert {r.status for r in received(d365, "GetMessageStatus")} == {200}

    d365.reset()
    d365.knobs.latency_ms = 60
    d365.knobs.user_max_concurrent = 3
    d365.knobs.user_retry_after_max = 1
    with pytest.raises(D365ThrottledError):
        burst(make_client(budget=UNLIMITED, pool_maxsize=12, retry=RetryPolicy(max_attempts=1)))
    assert d365.limits.refusals > 0


def test_status_polls_keep_moving_while_uploads_hold_the_budget(
    d365: Emulator, make_client: ClientFactory
) -> None:
    """Six slow uploads on a budget of 4: three upload, three wait, and a poll still goes at
    once (a slot is kept for it, and it passes the waiting uploads)."""
    d365.knobs.operations = frozenset({"enqueue"})
    d365.knobs.body_read_pause_seconds = 1.5
    budget = LocalBudget(4, PLENTY)
    client = make_client(budget=budget, pool_maxsize=8)
    job = _job(d365)
    body = b"x" * (200 * 1024)  # past the emulator's first read, so the pause applies
    with ThreadPoolExecutor(6) as pool:
        uploads = [
            pool.submit(client.enqueue, job.activity_id, body, entity=job.entity, company="USMF")
            for _ in range(6)
        ]
        time.sleep(0.4)
        assert budget.in_flight == 3
        poll_seconds = []
        for _ in range(5):
            began = time.monotonic()
            client.get_message_status(MESSAGE_ID)
            poll_seconds.append(time.monotonic() - began)
        assert not any(upload.done() for upload in uploads)
        results = [upload.result(timeout=30) for upload in uploads]
    assert max(poll_seconds) < 0.5, poll_seconds
    assert len({result.message_id for result in results}) == 6
    assert d365.limits.max_in_flight <= 4


def test_a_reserved_permit_serves_its_threads_calls_of_that_operation(
    d365: Emulator, make_client: ClientFactory
) -> None:
    budget = LocalBudget(1, PLENTY)
    client = make_client(budget=budget, budget_wait=0.3)
    job = _job(d365)
    with client.reserved("enqueue"):
        assert budget.in_flight == 1
        # The one slot is this thread's: the enqueue uses it instead of waiting for another.
        client.enqueue(job.activity_id, b"<Document/>", entity=job.entity, company="USMF")
        assert budget.in_flight == 1
        # Another operation asks as usual, and finds no slot.
        with pytest.raises(D365ThrottledError, match="no permit"):
            client.get_message_status(MESSAGE_ID)
    assert budget.in_flight == 0
    assert [r.status for r in received(d365, "enqueue")] == [200]


def test_no_reserved_permit_while_throttled_and_nothing_sent(
    d365: Emulator, make_client: ClientFactory
) -> None:
    budget = LocalBudget(4, PLENTY)
    budget.throttled(30)
    client = make_client(budget=budget)
    with pytest.raises(D365ThrottledError, match="was not sent"), client.reserved("enqueue"):
        pytest.fail("the block must not run without a permit")
    assert budget.in_flight == 0
    assert received(d365, "enqueue") == []
