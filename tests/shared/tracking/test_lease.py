"""One lease: the poll, package-import and export leases are one row layout and one API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from shared.tracking import (
    LEASE_MARGIN,
    ExportStore,
    LeaseHeld,
    LeaseKeeper,
    LeaseLostError,
    TrackingStore,
    lease_for_call,
    utcnow,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_call_lease_outlasts_the_call_by_the_margin() -> None:
    assert timedelta(seconds=30) == LEASE_MARGIN
    assert lease_for_call(timedelta(seconds=90)) == timedelta(seconds=120)


def test_every_lease_is_the_same_row(store: TrackingStore, storage_connection_string: str) -> None:
    now = utcnow()
    exports = ExportStore(
        TableServiceClient.from_connection_string(storage_connection_string).get_table_client(
            store.table_name
        )
    )
    held = [
        store.schedule.lease.acquire("tick", until=now + timedelta(minutes=1)),
        store.import_lease.acquire("importer", until=now + timedelta(minutes=1)),
        exports.lease("Customers").acquire("exporter", until=now + timedelta(minutes=1)),
    ]
    assert all(isinstance(lease, LeaseHeld) for lease in held)
    assert [lease.name for lease in held if lease] == ["poller", "package-import", "customers"]
    table = TableServiceClient.from_connection_string(storage_connection_string).get_table_client(
        store.table_name
    )
    rows = {
        (row["PartitionKey"], row["RowKey"]): row
        for row in table.query_entities("RowKey ge '~lease-' and RowKey lt '~lease.'")
    }
    assert set(rows) == {
        ("files", "~lease-poller"),
        ("files", "~lease-package-import"),
        ("exports", "~lease-customers"),
    }
    for row in rows.values():
        assert set(row) == {"PartitionKey", "RowKey", "holder", "until", "write_id"}


def test_a_release_keeps_or_records_the_watermark_for_the_next_holder(
    store: TrackingStore,
) -> None:
    lease = store.import_lease
    first = lease.acquire("a", until=utcnow() + timedelta(minutes=1))
    assert first is not None and first.watermark is None
    assert lease.holder() == "a"
    assert lease.acquire("b", until=utcnow() + timedelta(minutes=1)) is None
    lease.release(first, watermark=T0)
    assert lease.holder() is None
    second = lease.acquire("b", until=utcnow() + timedelta(minutes=1))
    assert second is not None and second.watermark == T0
    lease.release(second)  # no new watermark: the last one is kept
    last = lease.last()
    assert last is not None
    assert (last.holder, last.watermark) == ("b", T0)
    assert last.until <= utcnow()


def test_a_kept_lease_is_renewed_when_half_spent_and_stops_once_another_holder_took_it(
    store: TrackingStore,
) -> None:
    now = [utcnow()]
    lease = store.import_lease
    held = lease.acquire("a", until=now[0] + timedelta(seconds=10))
    assert held is not None
    keeper = LeaseKeeper(lease, held, length=timedelta(seconds=10), clock=lambda: now[0])
    keeper.keep()  # more than half left: nothing written
    assert keeper.held is held
    now[0] += timedelta(seconds=6)
    keeper.keep()
    assert keeper.held.until == now[0] + timedelta(seconds=10)
    assert lease.acquire("b", until=utcnow() + timedelta(minutes=1)) is None

    # The renewals stopped (storage down, a stalled read) and the lease ran out: b took it.
    lease.release(keeper.held)
    assert lease.acquire("b", until=utcnow() + timedelta(minutes=1)) is not None
    now[0] += timedelta(seconds=6)
    with pytest.raises(LeaseLostError, match="another holder took it"):
        keeper.keep()
    assert lease.holder() == "b"
    lease.release(keeper.held)  # a lost lease's release leaves b's alone
    assert lease.holder() == "b"


def test_a_renewal_extends_the_lease_and_keeps_its_watermark(store: TrackingStore) -> None:
    lease = store.schedule.lease
    first = lease.acquire("tick", until=utcnow() + timedelta(minutes=1))
    assert first is not None
    lease.release(first, watermark=T0)
    held = lease.acquire("tick", until=utcnow() + timedelta(seconds=40))
    assert held is not None

    renewed = lease.renew(held, until=held.until + timedelta(seconds=30))

    assert renewed is not None and renewed.etag != held.etag
    last = lease.last()
    assert last is not None
    assert (last.holder, last.until, last.watermark) == ("tick", renewed.until, T0)
    assert lease.acquire("other", until=utcnow() + timedelta(minutes=1)) is None


def test_a_lease_another_holder_took_is_not_renewed(store: TrackingStore) -> None:
    lease = store.schedule.lease
    held = lease.acquire("dead", until=utcnow() - timedelta(seconds=1))  # ran out
    assert held is not None
    taker = lease.acquire("next", until=utcnow() + timedelta(minutes=1))
    assert taker is not None

    assert lease.renew(held, until=utcnow() + timedelta(minutes=5)) is None
    assert lease.holder() == "next"
