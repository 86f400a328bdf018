"""Scheduled package exports through the local host: ExportToPackage at most once per slot,
followed to its end, the package (or its files) in the container."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from devtools.azurite import Azurite
from devtools.d365_emulator import Emulator
from shared.config.ncrontab import parse_ncrontab
from shared.tracking import PackageExportStore
from tests import fakes
from tests.e2e.conftest import App, app_environment, host_process, stop_hosts

ROUTE = "customers-daily"
DAILY = fakes.daily_far_from_now()


def package_route(folder: str, **overrides: Any) -> dict[str, Any]:
    """A package export route of the CustomersExport project into the test's container."""
    return {
        "name": ROUTE,
        "definition_group": "CustomersExport",
        "legal_entity": fakes.COMPANY,
        "schedule": DAILY,
        "container": f"{folder}-pkgexports",
        "prefix": "customers/{company}/{date}/",
        **overrides,
    }


def missed_slot(app: App, *, days: int, route: str = ROUTE) -> None:
    """The route's row as if the app had been down ``days`` days: that many daily slots
    missed (the table created as the app's first run would)."""
    tables = TableServiceClient.from_connection_string(app.env["IntegrationStorage"])
    store = PackageExportStore(tables.create_table_if_not_exists(app.env["STATUS_TABLE"]))
    run = store.route_run(route)
    store.claim_slot(run, slot=datetime.now(UTC) - timedelta(days=days), execution_id="")


@pytest.fixture
def package_app(
    app_factory: Callable[..., App], unique_name: str, d365: Emulator
) -> Callable[..., App]:
    """Start the app with one package export route whose daily slot was missed once."""

    def start(*, days_missed: int = 1, settings: dict[str, str] | None = None, **route: Any) -> App:
        d365.knobs.package_export_seconds = 0
        d365.knobs.package_url_delay_seconds = 0
        routes = [package_route(unique_name, **route)]
        app = app_factory(PACKAGE_EXPORT_ROUTES=json.dumps(routes), **(settings or {}))
        missed_slot(app, days=days_missed)
        return app

    return start


def _records(app: App) -> list[dict[str, Any]]:
    response = app.get("messages", direction="export")
    assert response.status_code == 200, response.text
    return [item for item in response.json()["items"] if item["kind"] == "package"]


def _blobs(app: App) -> dict[str, bytes]:
    container = app.blobs.get_container_client(f"{app.folder}-pkgexports")
    if not container.exists():
        return {}
    return {b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}


def _until_final(app: App, *, ticks: int = 20) -> dict[str, Any]:
    for _ in range(ticks):
        app.host.run_timer_once()
        records = _records(app)
        if records and records[0]["state"] in ("Delivered", "ExportFailed"):
            return records[0]
        app.d365.clock.advance(5)
    raise AssertionError(_records(app))


def _calls(d365: Emulator) -> list:
    return [r for r in d365.requests if r.operation == "ExportToPackage"]


def test_a_scheduled_export_lands_as_its_package(package_app) -> None:
    app = package_app()
    app.d365.knobs.package_export_seconds = 12  # followed across ticks, none held by it

    record = _until_final(app)

    assert record["state"] == "Delivered"
    assert record["d365_status"] == "Succeeded"
    assert record["direction"] == "export" and record["kind"] == "package"
    execution_id = record["execution_id"]
    assert execution_id.startswith(f"{ROUTE}-")
    (call,) = _calls(app.d365)
    assert json.loads(call.body)["executionId"] == execution_id
    assert json.loads(call.body)["definitionGroupId"] == "CustomersExport"
    blobs = _blobs(app)
    (name,) = blobs
    assert name == record["target"] == record["blobs"][0]
    assert name.startswith(f"customers/{fakes.COMPANY}/") and name.endswith(f"{execution_id}.zip")
    members = zipfile.ZipFile(io.BytesIO(blobs[name])).namelist()
    assert members == ["Manifest.xml", "PackageHeader.xml", "CustomersV3.xml"]
    props = app.blobs.get_container_client(f"{app.folder}-pkgexports").get_blob_client(name)
    assert props.get_blob_properties().metadata["d365_message_id"] == execution_id
    states = [h["state"] for h in record["history"]]
    assert states[:3] == ["Scheduled", "Requested", "Executing"] and states[-1] == "Delivered"
    assert "F&O: Executing" in [h["reason"] for h in record["history"]]
    statuses = [r for r in app.d365.requests if r.operation == "GetExecutionSummaryStatus"]
    assert len(statuses) >= 3  # one per tick while it ran
    one = app.get(f"messages/{execution_id}", direction="export").json()
    assert one["execution_id"] == execution_id and one["state"] == "Delivered"


def test_no_sas_signature_of_a_package_url_in_any_log_line_or_answer(
    package_app, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = package_app()

    record = _until_final(app)

    assert record["state"] == "Delivered"
    answers = [app.get("messages", direction="export").text]
    answers.append(app.get(f"messages/{record['execution_id']}", direction="export").text)
    # The emulator plays F&O and storage: its own log lines are not the app's.
    texts = answers + [r.getMessage() for r in caplog.records if not r.name.startswith("devtools")]
    assert not [text[:300] for text in texts if re.search(r"sig=[0-9a-f]{64}", text)]
    assert any("sig=REDACTED" in text for text in texts)  # the URL was seen, and redacted


def test_with_unzip_the_package_lands_as_its_files(package_app) -> None:
    app = package_app(
        definition_group="GeneralJournalExport",
        prefix="journals/{date}/{message_id}/",
        unzip=True,
    )

    record = _until_final(app)

    assert record["state"] == "Delivered"
    folder = record["target"]
    assert folder.endswith(f"/{record['execution_id']}/")
    blobs = _blobs(app)
    assert sorted(blobs) == sorted(
        f"{folder}{n}" for n in ("Manifest.xml", "PackageHeader.xml", "General journal.csv")
    )
    assert (
        blobs[f"{folder}General journal.csv"]
        .decode("utf-8-sig")
        .startswith("JOURNALBATCHNUMBER,LINENUMBER")
    )


def test_a_timeout_on_export_to_package_leads_to_exactly_one_export(package_app) -> None:
    app = package_app()
    app.d365.knobs.operations = frozenset({"ExportToPackage"})
    app.d365.knobs.drop_after_body_burst = 1  # F&O takes it; the answer is lost

    record = _until_final(app)

    assert record["state"] == "Delivered"
    assert len(_calls(app.d365)) == 1
    assert app.d365.package_exports.export_calls == 1
    # Followed by its execution id from the lost answer on: never back to Scheduled.
    states = [h["state"] for h in record["history"]]
    assert states.count("Scheduled") == 1 and states[1:3] == ["Requested", "Requested"]
    assert "no answer F&O can be held to" in record["history"][2]["reason"]


def test_a_failed_execution_ends_with_fnos_status_and_text(package_app) -> None:
    app = package_app()
    app.d365.knobs.package_export_fail = True

    record = _until_final(app)

    assert record["state"] == "ExportFailed"
    assert record["d365_status"] == "Failed"
    text = "Export of entity 'CustomersV3' failed: the data project has no active mapping."
    assert record["fno_errors"] == text
    assert record["last_error"] == f"F&O ended the export Failed: {text}"
    assert not _blobs(app)
    assert len(_calls(app.d365)) == 1


def test_a_refused_project_ends_with_fnos_text_and_is_not_sent_again(package_app) -> None:
    app = package_app(definition_group="NoSuchProject")

    record = _until_final(app)

    assert record["state"] == "ExportFailed"
    assert "Data project 'NoSuchProject' was not found." in record["last_error"]
    app.host.run_timer_once()
    assert len(_calls(app.d365)) == 1


def test_a_schedule_missed_for_days_runs_once(package_app) -> None:
    app = package_app(days_missed=10)

    record = _until_final(app)
    for _ in range(3):
        app.host.run_timer_once()

    assert record["state"] == "Delivered"
    assert len(_calls(app.d365)) == 1
    assert len(_records(app)) == 1
    latest = parse_ncrontab(DAILY).next_after(datetime.now(UTC) - timedelta(days=1))
    assert datetime.fromisoformat(record["scheduled_for"]) == latest


def test_two_host_processes_on_the_same_schedule_run_each_slot_once(
    d365: Emulator, azurite: Azurite, unique_name: str, tmp_path: Path, app_factory: object
) -> None:
    d365.knobs.package_export_seconds = 0
    d365.knobs.package_url_delay_seconds = 0
    routes = json.dumps([package_route(unique_name, schedule="*/2 * * * * *")])
    app = app_factory(PACKAGE_EXPORT_ROUTES=routes)  # type: ignore[operator]
    env = {
        **os.environ,
        **app_environment(d365, azurite, unique_name, unique_name),
        "PACKAGE_EXPORT_ROUTES": routes,
    }
    hosts = [host_process(env, tmp_path / f"host-{index}.log") for index in range(2)]
    try:
        deadline = time.monotonic() + 60
        while len([r for r in _records(app) if r["state"] == "Delivered"]) < 3:
            assert time.monotonic() < deadline, _records(app)
            time.sleep(0.5)
    finally:
        stop_hosts(hosts)
    records = _records(app)
    calls = [json.loads(c.body)["executionId"] for c in _calls(d365)]
    assert len(calls) == len(set(calls)) == len(records)
    slots = [r["scheduled_for"] for r in records]
    assert len(slots) == len(set(slots))  # no slot ran twice
