"""The poll schedule's entries and lease, and its back-off arithmetic."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.tracking import Backoff, LeaseHeld, TrackingStore, utcnow
from tests.faults import StorageFaults
from tests.shared.conftest import scheduled

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_due_entries_are_read_and_rewritten_in_batches(store: TrackingStore) -> None:
    for i in range(130):
        store.claim(f"b{i}.xml", "e", modified_at=T0, schedule_at=T0)
    store.claim("later.xml", "e", modified_at=T0, schedule_at=T0 + timedelta(hours=1))
    due = store.schedule.due(T0)
    assert len(due) == 130
    assert store.schedule.backlog()[0] == 131
    # One entry changed by someone else: the rest of its batch is still written.
    store.schedule.reschedule([replace(due[0], poll_count=9)])
    moved = store.schedule.reschedule([replace(d, due_at=T0 + timedelta(minutes=1)) for d in due])
    assert len(moved) == 129
    assert [d.poll_count for d in store.schedule.due(T0)] == [9]


def test_an_entry_is_removed_only_if_unchanged(store: TrackingStore) -> None:
    record = store.claim("a.xml", "e", modified_at=T0, schedule_at=T0).record
    stale = scheduled(store, record.record_id)
    assert stale is not None
    store.update(record, schedule_at=T0 + timedelta(minutes=1))
    store.schedule.remove(stale)
    assert scheduled(store, record.record_id) is not None
    store.schedule.remove(scheduled(store, record.record_id))
    assert scheduled(store, record.record_id) is None


def test_one_poll_lease_at_a_time(store: TrackingStore) -> None:
    now = utcnow()
    schedule = store.schedule
    lease = schedule.lease.acquire("a", until=now + timedelta(minutes=1))
    assert lease is not None
    assert schedule.lease.acquire("b", until=now + timedelta(minutes=1)) is None
    schedule.lease.release(lease, watermark=now)
    assert schedule.lease.last().watermark == now
    second = schedule.lease.acquire("b", until=now + timedelta(minutes=1))
    assert second is not None
    assert second.watermark == now
    assert schedule.lease.acquire("a", until=now + timedelta(minutes=1)) is None


def test_an_expired_lease_can_be_taken_over(store: TrackingStore) -> None:
    now = utcnow()
    stale = store.schedule.lease.acquire("dead", until=now - timedelta(seconds=1))
    assert stale is not None
    assert store.schedule.lease.acquire("alive", until=now + timedelta(minutes=1)) is not None
    store.schedule.lease.release(stale, watermark=now)  # the dead holder's late finish: no-op
    assert store.schedule.lease.last().watermark is None


def test_concurrent_lease_requests_have_one_winner(store: TrackingStore) -> None:
    barrier = threading.Barrier(4)
    wins = []

    def acquire(name: str) -> None:
        barrier.wait()
        wins.append(store.schedule.lease.acquire(name, until=utcnow() + timedelta(minutes=1)))

    threads = [threading.Thread(target=acquire, args=(f"h{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(lease is not None for lease in wins) == 1


@pytest.mark.parametrize("takeover", [False, True], ids=["insert", "takeover"])
def test_concurrent_lease_requests_whose_answers_are_lost_have_one_winner(
    store: TrackingStore, faults: StorageFaults, takeover: bool
) -> None:
    """Issue 17, finding 18: every answer lost, each requester reads the row back; only the
    one whose write_id it holds is the holder, and its lease can be finished."""
    if takeover:
        store.schedule.lease.acquire("dead", until=utcnow() - timedelta(seconds=1))
    faults.fail("lost", "PUT" if takeover else "POST", store.table_name, times=4)
    barrier = threading.Barrier(4)
    wins: list[LeaseHeld | None] = []

    def acquire(name: str) -> None:
        barrier.wait()
        wins.append(store.schedule.lease.acquire(name, until=utcnow() + timedelta(minutes=1)))

    threads = [threading.Thread(target=acquire, args=(f"h{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert faults.injected["lost"] >= 1
    [winner] = [lease for lease in wins if lease is not None]
    assert len(wins) == 4
    faults.clear()
    store.schedule.lease.release(winner, watermark=T0)
    assert store.schedule.lease.last().watermark == T0


def test_backoff_doubles_up_to_its_cap_and_projects() -> None:
    backoff = Backoff(timedelta(seconds=30), timedelta(minutes=4))
    assert [backoff.next_interval(n).total_seconds() for n in range(6)] == [
        30,
        60,
        120,
        240,
        240,
        240,
    ]
    assert backoff.projected(None, 3, T0) == (3, None)
    assert backoff.projected(T0, 0, T0 - timedelta(seconds=1)) == (0, T0)
    assert backoff.projected(T0, 0, T0 + timedelta(seconds=100)) == (3, T0 + timedelta(seconds=210))
