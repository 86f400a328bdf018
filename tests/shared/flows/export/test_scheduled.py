"""Scheduled package exports, one write at a time: whichever write is the last to run, the
run still reaches a final state with nobody's help, and ExportToPackage goes at most once."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import TokenCredential
from azure.identity import ClientSecretCredential

from shared.clients.d365 import D365Client, RetryPolicy
from shared.config.ncrontab import parse_ncrontab
from shared.config.package_exports import PackageExportRoute, PackageExportRoutes
from shared.flows.export import ExportPolicy, ExportTickResult, PackageExporter
from shared.flows.export.scheduled import execution_id_for
from shared.tracking import PackageExportRecord, PackageExportState, PackageExportStore
from shared.zips import ZipLimits
from tests import fakes
from tests.shared.conftest import Domain

MAX_AGE = timedelta(hours=1)


@pytest.fixture
def route(unique_name: str) -> PackageExportRoute:
    return PackageExportRoute(
        name="customers-daily",
        definition_group="CustomersExport",
        legal_entity=fakes.COMPANY,
        schedule=parse_ncrontab(fakes.daily_far_from_now()),
        container=f"{unique_name}-pkg",
        prefix="out/{date}/",
    )


@contextlib.contextmanager
def make_exporter(
    domain: Domain,
    route: PackageExportRoute,
    *,
    credential: TokenCredential | None = None,
    **policy: Any,
) -> Iterator[PackageExporter]:
    client = D365Client(
        domain.context.settings.d365.base_url,
        credential or domain.context.credential,
        retry=RetryPolicy(backoff_base=0.01, backoff_max=0.05, default_retry_after=0.01),
        sas_hosts=domain.context.settings.d365.sas_hosts,
    )
    packages = domain.context.exporter.packages
    assert packages is not None
    yield PackageExporter(
        packages.store,
        client,
        domain.context.blob_service,
        PackageExportRoutes((route,)),
        policy=ExportPolicy(block_size=256 * 1024, blocks_in_flight=2, **policy),
        max_age=MAX_AGE,
        clock=domain.clock,
    )
    client.close()


@pytest.fixture
def exporter(domain: Domain, route: PackageExportRoute) -> Iterator[PackageExporter]:
    domain.d365.knobs.package_export_seconds = 0
    domain.d365.knobs.package_url_delay_seconds = 0
    with make_exporter(domain, route) as built:
        yield built


def _missed(store: PackageExportStore, route: PackageExportRoute) -> datetime:
    """A daily slot missed (the row's last slot two days ago); answers the latest slot."""
    store.claim_slot(
        store.route_run(route.name),
        slot=datetime.now(UTC) - timedelta(days=2),
        execution_id="",
    )
    return route.schedule.next_after(datetime.now(UTC) - timedelta(days=1))


def _calls(domain: Domain) -> int:
    return sum(1 for r in domain.d365.requests if r.operation == "ExportToPackage")


def _only(domain: Domain, route: PackageExportRoute) -> PackageExportRecord:
    """The one package export record of ``route``, as the export listing shows it."""
    listing = domain.context.exporter.store.list_records(route=route.name, limit=100)
    records = [r for r in listing.records if isinstance(r, PackageExportRecord)]
    assert len(records) == 1, records
    return records[0]


def _ticks(exporter: PackageExporter, count: int = 1) -> ExportTickResult:
    result = ExportTickResult()
    for _ in range(count):
        exporter.tick(result)
    return result


def test_a_new_route_starts_at_its_next_slot_not_with_its_past(
    domain: Domain, exporter: PackageExporter, route: PackageExportRoute
) -> None:
    _ticks(exporter, 2)
    assert _calls(domain) == 0
    run = exporter.store.route_run(route.name)
    assert run.current is None and run.last_slot is not None


def test_a_row_claimed_without_its_record_gets_the_record_and_one_export(
    domain: Domain, exporter: PackageExporter, route: PackageExportRoute
) -> None:
    store = exporter.store
    slot = _missed(store, route)
    execution_id = execution_id_for(route.name, slot)
    # The tick died right after the row's write: no record yet.
    store.claim_slot(store.route_run(route.name), slot=slot, execution_id=execution_id)

    _ticks(exporter, 2)

    record = _only(domain, route)
    assert (record.execution_id, record.state) == (execution_id, PackageExportState.DELIVERED)
    assert record.scheduled_for == slot
    assert _calls(domain) == 1 and domain.d365.package_exports.export_calls == 1
    assert store.route_run(route.name).current is None


def test_a_requested_run_whose_call_never_left_is_followed_never_sent(
    domain: Domain, exporter: PackageExporter, route: PackageExportRoute
) -> None:
    store = exporter.store
    slot = _missed(store, route)
    execution_id = execution_id_for(route.name, slot)
    run = store.claim_slot(store.route_run(route.name), slot=slot, execution_id=execution_id)
    record = store.scheduled(
        execution_id=execution_id,
        route=route.name,
        definition_group=route.definition_group,
        legal_entity=route.legal_entity,
        container=route.container,
        target=route.target(slot=slot, execution_id=execution_id),
        slot=slot,
    )
    store.change(record, PackageExportState.REQUESTED, reason="sent")  # then the process died
    assert run.current == execution_id

    _ticks(exporter)
    assert _only(domain, route).state is PackageExportState.REQUESTED
    domain.clock.advance(MAX_AGE + timedelta(seconds=1))
    _ticks(exporter)

    final = _only(domain, route)
    assert final.state is PackageExportState.EXPORT_FAILED
    assert f"F&O never knew execution {execution_id}" in (final.error or "")
    assert "not sent again" in (final.error or "")
    assert _calls(domain) == 0
    assert store.route_run(route.name).current is None


def test_a_final_run_still_named_by_the_row_is_cleared_and_not_run_again(
    domain: Domain, exporter: PackageExporter, route: PackageExportRoute
) -> None:
    store = exporter.store
    _missed(store, route)
    _ticks(exporter)
    record = _only(domain, route)
    assert record.state is PackageExportState.DELIVERED
    # As if the tick died before clearing the row.
    store.claim_slot(
        store.route_run(route.name), slot=record.scheduled_for, execution_id=record.execution_id
    )

    _ticks(exporter, 2)

    assert store.route_run(route.name).current is None
    assert _calls(domain) == 1
    assert _only(domain, route).state is PackageExportState.DELIVERED


@pytest.mark.parametrize(
    "case",
    [
        # 503: F&O did not take it; asked about, then sent again, once taken.
        ({"error_status": 503}, 2, PackageExportState.DELIVERED),
        # 500: F&O may have taken it: followed, never sent again.
        ({"error_status": 500}, 1, PackageExportState.EXPORT_FAILED),
        # The answer lost after F&O took it: followed, delivered.
        ({"drop_after_body_burst": 1, "error_burst": 0}, 1, PackageExportState.DELIVERED),
    ],
)
def test_a_failed_call_is_sent_again_only_when_fno_cannot_have_taken_it(
    domain: Domain,
    exporter: PackageExporter,
    route: PackageExportRoute,
    case: tuple[dict[str, Any], int, PackageExportState],
) -> None:
    knobs, sent, state = case
    _missed(exporter.store, route)
    domain.d365.knobs.operations = frozenset({"ExportToPackage"})
    domain.d365.knobs.error_burst = 1
    for name, value in knobs.items():
        setattr(domain.d365.knobs, name, value)

    _ticks(exporter, 3)
    if _only(domain, route).state is PackageExportState.REQUESTED:
        domain.clock.advance(MAX_AGE + timedelta(seconds=1))
        _ticks(exporter)

    record = _only(domain, route)
    assert record.state is state, record.history
    assert _calls(domain) == sent
    assert domain.d365.package_exports.export_calls == (state is PackageExportState.DELIVERED)


def test_an_empty_package_url_is_asked_again_at_the_next_tick(
    domain: Domain, exporter: PackageExporter, route: PackageExportRoute
) -> None:
    domain.d365.knobs.package_url_delay_seconds = 30
    _missed(exporter.store, route)

    _ticks(exporter, 2)
    waiting = _only(domain, route)
    assert waiting.state is PackageExportState.EXECUTING
    assert waiting.d365_status == "Succeeded"
    assert "no package URL yet" in (waiting.error or "")
    domain.d365.clock.advance(31)
    _ticks(exporter)

    assert _only(domain, route).state is PackageExportState.DELIVERED
    assert _calls(domain) == 1


def test_a_package_url_that_is_no_sas_url_of_fnos_storage_ends_the_run_unsent(
    domain: Domain, exporter: PackageExporter, route: PackageExportRoute
) -> None:
    """Issue 17's URL guard on the package exports: GetExportedPackageUrl answering plain http
    is refused before a byte is sent, and the run ends: a URL F&O answers the same at every
    tick is not retried for ever."""
    port = domain.d365.port
    domain.d365.knobs.odata_values = {
        "GetExportedPackageUrl": f"http://127.0.0.1:{port}/dmf/p.zip?sv=2023-11-03&sig=secret"
    }
    _missed(exporter.store, route)

    _ticks(exporter, 3)

    record = _only(domain, route)
    assert record.state is PackageExportState.EXPORT_FAILED
    assert (record.error or "").startswith(
        "package not downloaded: D365UntrustedUrlError: download_package: refused the package "
        f"URL F&O handed out, http://127.0.0.1:{port}/dmf/p.zip (query string not shown): its "
        "scheme is 'http', not https."
    )
    assert "sig=" not in (record.error or "")
    assert [r for r in domain.d365.requests if r.operation == "blob_get"] == []
    asked = [r for r in domain.d365.requests if r.operation == "GetExportedPackageUrl"]
    assert len(asked) == 1
    assert _calls(domain) == 1


def test_a_package_the_zip_limits_refuse_is_kept_unopened_and_the_run_ends(
    domain: Domain, route: PackageExportRoute
) -> None:
    unzip = replace(route, unzip=True, prefix="out/{message_id}/")
    domain.d365.knobs.package_export_seconds = 0
    domain.d365.knobs.package_url_delay_seconds = 0
    with make_exporter(domain, unzip, zip_limits=ZipLimits(max_members=2)) as exporter:
        _missed(exporter.store, unzip)
        _ticks(exporter)
        record = _only(domain, unzip)
    assert record.state is PackageExportState.EXPORT_FAILED
    assert "holds 3 members, over the limit of 2" in (record.error or "")
    assert record.blobs == (f"out/{record.execution_id}/{record.execution_id}.zip",)


def test_a_partial_export_is_delivered_with_fnos_errors(
    domain: Domain, exporter: PackageExporter, route: PackageExportRoute
) -> None:
    """RIS downloads a PartiallySucceeded export too; its errors stay on the record."""
    errors = '[{"RecordId":"5637144576","Field":"","ErrorMessage":"Customer group 99 missing"}]'
    domain.d365.knobs.odata_values = {
        "GetExecutionSummaryStatus": "PartiallySucceeded",
        "GetExecutionErrors": errors,
    }
    _missed(exporter.store, route)

    _ticks(exporter)

    record = _only(domain, route)
    assert record.state is PackageExportState.DELIVERED
    assert (record.d365_status, record.fno_errors) == (
        "PartiallySucceeded",
        "Customer group 99 missing",
    )
    assert record.blobs == (record.target,)


@pytest.mark.parametrize("status", ["Canceled", "Failed"])
def test_a_canceled_or_failed_execution_is_final_with_fnos_status(
    domain: Domain, exporter: PackageExporter, route: PackageExportRoute, status: str
) -> None:
    domain.d365.knobs.odata_values = {"GetExecutionSummaryStatus": status}
    _missed(exporter.store, route)

    _ticks(exporter, 2)

    record = _only(domain, route)
    assert (record.state, record.d365_status) == (PackageExportState.EXPORT_FAILED, status)
    assert (record.error or "").startswith(f"F&O ended the export {status}: ")
    assert exporter.store.route_run(route.name).current is None
    assert _calls(domain) == 1


def test_no_route_is_started_once_the_ticks_budget_is_spent(
    domain: Domain, route: PackageExportRoute
) -> None:
    with make_exporter(domain, route, time_budget=timedelta(0)) as exporter:
        _missed(exporter.store, route)
        exporter.tick(started=time.monotonic() - 1)
        assert _calls(domain) == 0
        assert exporter.store.route_run(route.name).current is None
    with make_exporter(domain, route, time_budget=timedelta(minutes=1)) as exporter:
        exporter.tick(started=time.monotonic())
    assert _calls(domain) == 1


def test_no_token_means_nothing_was_sent_and_the_run_is_sent_later(
    domain: Domain, exporter: PackageExporter, route: PackageExportRoute
) -> None:
    _missed(exporter.store, route)
    wrong = ClientSecretCredential(
        fakes.TENANT_ID,
        fakes.CLIENT_ID,
        "not-the-secret",
        authority=domain.d365.authority_host,
        disable_instance_discovery=True,
    )
    with wrong, make_exporter(domain, route, credential=wrong) as refused:
        _ticks(refused)
    waiting = _only(domain, route)
    assert (waiting.state, waiting.send_attempts) == (PackageExportState.SCHEDULED, 1)
    assert _calls(domain) == 0

    _ticks(exporter)

    assert _only(domain, route).state is PackageExportState.DELIVERED
    assert _calls(domain) == 1


@pytest.mark.parametrize("unzip", [False, True], ids=["package", "unzip"])
def test_a_download_longer_than_the_lease_keeps_it_and_no_other_instance_downloads(
    domain: Domain, route: PackageExportRoute, tmp_path: Path, unzip: bool
) -> None:
    """The route's lease (the tick's budget plus one call) is renewed as the package's bytes
    arrive: a second instance ticking meanwhile is told the route is held."""
    package = tmp_path / "package.zip"
    with zipfile.ZipFile(package, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("Customers.csv", os.urandom(3 * 1024 * 1024))
    knobs = domain.d365.knobs
    knobs.package_export_seconds = 0
    knobs.package_url_delay_seconds = 0
    knobs.export_package_path = str(package)
    knobs.download_mib_per_s = 1  # about 3 s, twice the lease
    route = replace(route, unzip=unzip)
    lease = timedelta(seconds=1.5)
    with (
        make_exporter(domain, route, lease=lease) as first,
        make_exporter(domain, route, lease=lease) as second,
    ):
        _missed(first.store, route)
        slow = threading.Thread(target=first.tick)
        slow.start()
        others = ExportTickResult()
        while slow.is_alive():
            time.sleep(0.2)
            second.tick(others)
        slow.join()
        _ticks(second)

    # (at most the last look, once the first tick was over, found the route free)
    assert others.skipped_leased > 5 and others.routes <= 1, others
    assert sum(1 for r in domain.d365.requests if r.operation == "blob_get") == 1
    record = _only(domain, route)
    assert record.state is PackageExportState.DELIVERED, record.error
    assert record.size == package.stat().st_size


def test_a_run_not_taken_is_sent_later_even_when_fno_cannot_say_what_it_has(
    domain: Domain, exporter: PackageExporter, route: PackageExportRoute
) -> None:
    """After a 503 (F&O did not take it), the next tick asks GetExecutionSummaryStatus first;
    when that fails too, the run is neither sent nor given up: it is asked about again."""
    _missed(exporter.store, route)
    knobs = domain.d365.knobs
    knobs.operations = frozenset({"ExportToPackage"})
    knobs.error_burst = 1
    _ticks(exporter)
    assert _only(domain, route).state is PackageExportState.SCHEDULED

    knobs.operations = frozenset({"GetExecutionSummaryStatus"})
    knobs.error_burst = 50  # every try of this tick's status call
    _ticks(exporter)
    unsure = _only(domain, route)
    assert unsure.state is PackageExportState.SCHEDULED, unsure.history
    assert "asked again at the next tick" in (unsure.error or "")
    assert _calls(domain) == 1

    knobs.error_burst = 0
    _ticks(exporter, 2)

    record = _only(domain, route)
    assert record.state is PackageExportState.DELIVERED, record.history
    assert domain.d365.package_exports.export_calls == 1


def test_a_download_whose_lease_was_taken_stops_and_leaves_the_run_to_the_holder(
    domain: Domain, route: PackageExportRoute, tmp_path: Path
) -> None:
    """Its renewals failed until the lease ran out and another tick took it: the download
    stops at its next block, writes nothing, and the other holder's tick delivers it."""
    package = tmp_path / "package.zip"
    package.write_bytes(os.urandom(2 * 1024 * 1024))
    knobs = domain.d365.knobs
    knobs.package_export_seconds = 0
    knobs.package_url_delay_seconds = 0
    knobs.export_package_path = str(package)
    knobs.download_mib_per_s = 1
    with make_exporter(domain, route, lease=timedelta(seconds=1.5)) as first:
        store = first.store
        _missed(store, route)
        result = ExportTickResult()
        slow = threading.Thread(target=first.tick, args=(result,))
        slow.start()
        while not any(r.operation == "blob_get" for r in domain.d365.requests):
            time.sleep(0.05)
        # Another tick takes the lease (as once it ran out): the row rewritten as it is read.
        taken = store.lease(route.name)
        until = datetime.now(UTC) + timedelta(hours=1)
        for _ in range(10):
            held = taken.last()
            assert held is not None and held.until > datetime.now(UTC)
            if taken.renew(replace(held, holder="another tick"), until=until) is not None:
                break
        assert taken.holder() == "another tick"
        slow.join()

        record = _only(domain, route)
        assert record.state is PackageExportState.EXECUTING, record.history
        assert record.error is None and result.errors == []
        assert not domain.context.blob_service.get_blob_client(
            route.container, record.target
        ).exists()
        taken.release(taken.last())  # the other holder's tick ends (it ran nothing here)
        _ticks(first)

    assert _only(domain, route).state is PackageExportState.DELIVERED
    assert _calls(domain) == 1
