"""The poll lease held in short spans renewed while the tick runs: a live tick keeps it, a lost
one is noticed, and it is never held past its limit."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from azure.data.tables import TableServiceClient

from shared.flows.lease_renewer import LeaseRenewer
from shared.tracking import TrackingStore, utcnow


@pytest.fixture
def store(storage_connection_string: str, unique_name: str) -> TrackingStore:
    tables = TableServiceClient.from_connection_string(storage_connection_string)
    result = TrackingStore(tables.get_table_client(unique_name))
    result.ensure_ready()
    return result


def _keeper(store: TrackingStore, *, span: float, limit: float) -> LeaseRenewer:
    lease = store.schedule.lease
    now = utcnow()
    held = lease.acquire("tick", until=now + timedelta(seconds=span))
    assert held is not None
    return LeaseRenewer(
        lease,
        held,
        span=timedelta(seconds=span),
        every=timedelta(seconds=0.2),
        limit=now + timedelta(seconds=limit),
    )


def test_a_live_holder_keeps_the_lease_past_its_first_span(store: TrackingStore) -> None:
    keeper = _keeper(store, span=1.0, limit=60)
    with keeper:
        time.sleep(2.0)  # twice the span
        assert store.schedule.lease.holder() == "tick"
        assert store.schedule.lease.acquire("next", until=utcnow() + timedelta(minutes=1)) is None
    assert not keeper.lost
    store.schedule.lease.release(keeper.held)  # the ETag of the last renewal
    assert store.schedule.lease.holder() is None


def test_the_lease_is_never_held_past_its_limit(store: TrackingStore) -> None:
    keeper = _keeper(store, span=1.0, limit=1.5)
    with keeper:
        time.sleep(2.0)
        assert store.schedule.lease.holder() is None
        assert keeper.held.until <= utcnow()


def test_a_lease_taken_by_another_holder_is_lost(
    store: TrackingStore, storage_connection_string: str
) -> None:
    table = TableServiceClient.from_connection_string(storage_connection_string).get_table_client(
        store.table_name
    )
    keeper = _keeper(store, span=1.0, limit=60)
    with keeper:
        # Another holder's write, as after a renewal that came too late.
        table.upsert_entity(
            {
                "PartitionKey": "files",
                "RowKey": "~lease-poller",
                "holder": "next",
                "until": utcnow() + timedelta(minutes=1),
            }
        )
        deadline = time.monotonic() + 2
        while not keeper.lost and time.monotonic() < deadline:
            time.sleep(0.05)
    assert keeper.lost
    assert store.schedule.lease.holder() == "next"
