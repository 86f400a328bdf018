"""The exporter's steps against Azurite and the emulator, each with the failure its module
docstring names injected at exactly that step."""

from __future__ import annotations

import io
import socket
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from azure.core.exceptions import ResourceNotFoundError

from devtools.d365_emulator._exports import customers_export
from shared.config.exports import ExportRoute, ExportRoutes
from shared.d365 import D365Client, RetryPolicy
from shared.exporter import Exporter, ExportPolicy
from shared.tracking import ExportState
from tests import fakes
from tests.shared.conftest import Domain

REDELIVERY = 1801
BLOCK = 256 * 1024


@pytest.fixture
def route(unique_name: str) -> ExportRoute:
    return ExportRoute(
        name="customers-out",
        activity_id=fakes.EXPORT_ACTIVITY_ID,
        container=f"{unique_name}-exports",
        prefix="out/{date}/",
        extension=".xml",
    )


@pytest.fixture
def exporter(domain: Domain, route: ExportRoute) -> Iterator[Exporter]:
    client = D365Client(
        domain.context.settings.d365.base_url,
        domain.context.credential,
        retry=RetryPolicy(backoff_base=0.01, backoff_max=0.05, default_retry_after=0.01),
    )
    yield Exporter(
        domain.context.exporter.store,
        client,
        domain.context.blob_service,
        ExportRoutes((route,)),
        policy=ExportPolicy(block_size=BLOCK, blocks_in_flight=2),
        clock=domain.clock,
    )
    client.close()


def _blobs(domain: Domain, route: ExportRoute) -> dict[str, bytes]:
    container = domain.context.blob_service.get_container_client(route.container)
    return {b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}


def _downloads(domain: Domain) -> int:
    return sum(1 for r in domain.d365.requests if r.operation == "download" and r.status == 200)


def test_record_write_lost_after_the_commit_acks_on_redelivery_without_writing(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    # The Downloaded write of the record fails for good: the process "dies" after the commit.
    domain.faults.fail("reset", "PUT", f"RowKey='{message_id}'", times=1000)

    result = exporter.tick()

    assert result.errors
    assert list(_blobs(domain, route).values()) == [customers_export()]
    record = exporter.store.get(message_id)
    assert record is not None and record.state is ExportState.DEQUEUED
    assert domain.d365.messages[message_id].state != "Acked"

    domain.faults.clear()
    domain.d365.clock.advance(REDELIVERY)
    exporter.tick()

    assert len(_blobs(domain, route)) == 1
    assert _downloads(domain) == 1
    record = exporter.store.get(message_id)
    assert record is not None and record.state is ExportState.ACKED
    assert record.history[-2][2] == "found committed; not again"
    assert domain.d365.messages[message_id].state == "Acked"


def test_a_block_that_cannot_be_staged_leaves_no_blob(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    data = bytes(range(256)) * (4 * BLOCK // 256)
    message_id = domain.d365.add_export(fakes.EXPORT_ACTIVITY_ID, data)
    domain.faults.fail("reset", "PUT", "comp=block&", skip=1, times=1000)

    exporter.tick()

    blob = domain.context.blob_service.get_blob_client(
        route.container, exporter.store.get(message_id).target
    )
    with pytest.raises(ResourceNotFoundError):
        blob.get_blob_properties()
    record = exporter.store.get(message_id)
    assert record.state is ExportState.EXPORT_FAILED
    assert "download not written" in (record.error or "")

    domain.faults.clear()
    domain.d365.clock.advance(REDELIVERY)
    exporter.tick()

    assert list(_blobs(domain, route).values()) == [data]
    assert exporter.store.get(message_id).state is ExportState.ACKED


def test_the_dequeued_write_failing_downloads_nothing(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    table = "s" + domain.folder.replace("-", "")
    domain.faults.fail("reset", "POST", table, skip=1, times=1000)  # the record insert

    exporter.tick()

    assert _downloads(domain) == 0
    assert exporter.store.get(message_id) is None

    domain.faults.clear()
    domain.d365.clock.advance(REDELIVERY)
    exporter.tick()

    assert exporter.store.get(message_id).state is ExportState.ACKED
    assert len(_blobs(domain, route)) == 1


def test_a_route_leased_by_another_tick_is_skipped(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    lease = exporter.store.acquire_lease(
        route.name, "someone-else", until=domain.clock() + timedelta(minutes=5)
    )
    assert lease is not None

    result = exporter.tick()

    assert result.skipped_leased == 1
    assert not any(r.operation == "dequeue" for r in domain.d365.requests)

    exporter.store.release_lease(lease)
    assert exporter.tick().acked == 1


def test_the_per_tick_budget_bounds_the_dequeues(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    for _ in range(3):
        domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    budgeted = replace(route, max_messages=2)

    exporter.run_route(budgeted)

    assert len(_blobs(domain, route)) == 2
    exporter.run_route(budgeted)
    assert len(_blobs(domain, route)) == 3


def test_an_export_that_is_not_a_zip_fails_an_unzip_route_and_is_not_acked(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    unzip = replace(route, prefix="pkg/{message_id}/", unzip=True)
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)

    exporter.run_route(unzip)

    record = exporter.store.get(message_id)
    assert record.state is ExportState.EXPORT_FAILED
    assert "not a zip package" in (record.error or "")
    assert domain.d365.messages[message_id].state != "Acked"


def test_a_message_without_a_file_is_acked_with_nothing_written(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    domain.d365.knobs.dequeue_without_file = True

    exporter.tick()

    record = exporter.store.get(message_id)
    assert record.state is ExportState.ACKED
    assert record.blobs == ()
    assert [entry[2] for entry in record.history if entry[0] == "Downloaded"] == [
        "F&O has no file for this message (The file was not uploaded to the blob storage for "
        "this message.); acknowledged with nothing written"
    ]
    assert _downloads(domain) == 0
    assert domain.d365.messages[message_id].state == "Acked"


def test_a_record_keeps_a_size_past_2_gib(domain: Domain, exporter: Exporter) -> None:
    store = exporter.store
    record = store.dequeued(
        message_id="00000000-0000-0000-0000-0000000000e1",
        route="r",
        activity_id=fakes.EXPORT_ACTIVITY_ID,
        container="c",
        target="t",
    )
    store.downloaded(record, ["t"], 5 * 1024**3)

    assert store.get(record.message_id).size == 5 * 1024**3


def test_an_empty_export_lands_as_an_empty_blob(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    message_id = domain.d365.add_export(fakes.EXPORT_ACTIVITY_ID, b"")

    exporter.tick()

    assert list(_blobs(domain, route).values()) == [b""]
    assert exporter.store.get(message_id).state is ExportState.ACKED


def _corrupt_deflate_package() -> bytes:
    """A zip whose one member's compressed data is junk: zipfile raises zlib.error on it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Customers V3.xml", customers_export() * 50)
    data = bytearray(buffer.getvalue())
    start = 30 + len("Customers V3.xml")  # the local file header, then the compressed data
    data[start : start + 64] = b"\xff" * 64  # deflate block type 3: invalid
    return bytes(data)


def test_a_corrupt_package_member_is_recorded_and_the_tick_goes_on(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    unzip = replace(route, prefix="pkg/{message_id}/", unzip=True)
    corrupt = domain.d365.add_export(fakes.EXPORT_ACTIVITY_ID, _corrupt_deflate_package())
    valid = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID, file_format="package")

    exporter.run_route(unzip)

    failed = exporter.store.get(corrupt)
    assert failed.state is ExportState.EXPORT_FAILED
    assert failed.error.startswith("download not written: ")
    assert domain.d365.messages[corrupt].state != "Acked"
    assert exporter.store.get(valid).state is ExportState.ACKED
    assert any(name.startswith(f"pkg/{valid}/") for name in _blobs(domain, route))


def test_a_download_location_on_another_port_of_f_and_os_host_is_refused_unsent(
    domain: Domain, exporter: Exporter
) -> None:
    """Finding 8: the bearer token goes only to F&O's exact origin, not the same host on
    another port (a bound port that takes no connection: nothing may even try)."""
    with socket.socket() as elsewhere:
        elsewhere.bind(("127.0.0.1", 0))
        port = elsewhere.getsockname()[1]
        domain.d365.knobs.download_location_origin = f"https://127.0.0.1:{port}"
        message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)

        exporter.tick()

    record = exporter.store.get(message_id)
    assert record.state is ExportState.EXPORT_FAILED
    assert (
        f"refused the DownloadLocation F&O handed out, https://127.0.0.1:{port}/api/connector/"
        in (record.error or "")
    )
    assert f"not F&O's own origin https://127.0.0.1:{domain.d365.port}" in (record.error or "")
    assert domain.d365.messages[message_id].state != "Acked"
