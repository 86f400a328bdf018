"""The export tick against Azurite and the emulator: the route's lease, the dequeue loop, a
record write whose answer was lost."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from shared.config.exports import ExportRoute
from shared.flows.export import Exporter
from shared.tracking import ExportState
from tests import fakes
from tests.shared.conftest import Domain
from tests.shared.flows.export.conftest import (
    REDELIVERY,
    acked_once,
    blobs,
    downloads,
)


def test_the_dequeued_write_failing_downloads_nothing(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    table = "s" + domain.folder.replace("-", "")
    domain.faults.fail("reset", "POST", table, skip=1, times=1000)  # the record insert

    exporter.tick()

    assert downloads(domain) == 0
    assert exporter.store.get(message_id) is None

    domain.faults.clear()
    domain.d365.clock.advance(REDELIVERY)
    exporter.tick()

    assert exporter.store.get(message_id).state is ExportState.ACKED
    assert len(blobs(domain, route)) == 1


def test_a_route_leased_by_another_tick_is_skipped(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    lease = exporter.store.lease(route.name).acquire(
        "someone-else", until=domain.clock() + timedelta(minutes=5)
    )
    assert lease is not None

    result = exporter.tick()

    assert result.skipped_leased == 1
    assert not any(r.operation == "dequeue" for r in domain.d365.requests)

    exporter.store.lease(route.name).release(lease)
    assert exporter.tick().acked == 1


def test_the_per_tick_budget_bounds_the_dequeues(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    for _ in range(3):
        domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    budgeted = replace(route, max_messages=2)

    exporter.run_route(budgeted)

    assert len(blobs(domain, route)) == 2
    exporter.run_route(budgeted)
    assert len(blobs(domain, route)) == 3


_LEASE_ROW = "RowKey='~lease-customers-out'"


@pytest.mark.parametrize(
    "fault",
    [
        ("POST", "", 0),  # the first tick creates the lease row
        ("PUT", _LEASE_ROW, 0),  # a later tick takes the row over
        ("PUT", _LEASE_ROW, 1),  # the release
    ],
    ids=["acquire-insert", "acquire-takeover", "release"],
)
def test_a_route_lease_write_whose_answer_was_lost_is_still_ours(
    domain: Domain, exporter: Exporter, route: ExportRoute, fault: tuple[str, str, int]
) -> None:
    """Finding 18: the route is not skipped, and its lease is free again after the tick."""
    method, row, skip = fault
    if row:
        exporter.tick()  # the lease row exists, released
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    domain.faults.fail("lost", method, row or domain.context.store.table_name, skip=skip)

    result = exporter.tick()

    assert domain.faults.injected["lost"] == 1
    assert (result.skipped_leased, result.acked, result.errors) == (0, 1, [])
    acked_once(domain, exporter, message_id)
    assert exporter.store.lease(route.name).holder() is None
    second = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    assert exporter.tick().acked == 1
    assert exporter.store.get(second).state is ExportState.ACKED


@pytest.mark.parametrize(
    "fault",
    [("POST", 1), ("PUT", 0), ("PUT", 1)],
    # POST: the lease row, then the record's insert; PUT: Downloaded, then Acked.
    ids=["Dequeued", "Downloaded", "Acked"],
)
def test_a_record_write_whose_answer_was_lost_goes_on_to_the_ack(
    domain: Domain, exporter: Exporter, caplog: pytest.LogCaptureFixture, fault: tuple[str, int]
) -> None:
    """Finding 18: the record's own write is recognised; the message is not left to "another
    writer" (nor the tick ended) and is acked at once."""
    method, skip = fault
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    contains = domain.context.store.table_name if method == "POST" else f"RowKey='{message_id}'"
    domain.faults.fail("lost", method, contains, skip=skip)

    result = exporter.tick()

    assert domain.faults.injected["lost"] == 1
    assert (result.acked, result.failed, result.errors) == (1, 0, [])
    acked_once(domain, exporter, message_id)
    assert "left to another writer" not in caplog.text


def test_a_redelivery_whose_dequeued_write_answer_was_lost_is_acked(
    domain: Domain, exporter: Exporter, route: ExportRoute, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 18: the replace that records a re-delivery lands with its answer lost."""
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    domain.faults.fail("reset", "PUT", f"RowKey='{message_id}'", times=1000)  # no Downloaded
    exporter.tick()
    domain.faults.clear()
    domain.d365.clock.advance(REDELIVERY)
    domain.faults.fail("lost", "PUT", f"RowKey='{message_id}'")  # Dequeued (dequeue 2)

    result = exporter.tick()

    assert domain.faults.injected["lost"] == 1
    assert (result.acked, result.errors) == (1, [])
    acked_once(domain, exporter, message_id)
    assert exporter.store.get(message_id).dequeue_count == 2
    assert "left to another writer" not in caplog.text
