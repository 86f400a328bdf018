"""Recurring export jobs through the local host: dequeue, blob commit, then ack, exactly once."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from devtools.d365_emulator._exports import customers_export, export_package
from tests import fakes
from tests.e2e.conftest import App

REDELIVERY = 1801  # seconds: F&O offers an unacked message again after 30 minutes


def export_route(name: str, **overrides: Any) -> dict[str, Any]:
    """An export route of the customers export job into the test's own container."""
    route = {
        "name": "customers-out",
        "activity_id": fakes.EXPORT_ACTIVITY_ID,
        "container": f"{name}-exports",
        "prefix": "customers/{company}/{date}/",
        "company": fakes.COMPANY,
        "extension": ".xml",
        **overrides,
    }
    return {key: value for key, value in route.items() if value is not None}


@pytest.fixture
def export_app(app_factory: Callable[..., App], unique_name: str) -> Callable[..., App]:
    """Start the app with one export route (keys overridable)."""

    def start(**overrides: Any) -> App:
        routes = [export_route(unique_name, **overrides)]
        return app_factory(EXPORT_ROUTES=json.dumps(routes))

    return start


def _container(app: App) -> Any:
    return app.blobs.get_container_client(f"{app.folder}-exports")


def _blobs(app: App) -> dict[str, bytes]:
    container = _container(app)
    if not container.exists():
        return {}
    return {b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}


def _exports(app: App) -> list[dict[str, Any]]:
    response = app.get("messages", direction="export")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _calls(app: App, operation: str) -> list:
    return [r for r in app.d365.requests if r.operation == operation]


def _tick(app: App) -> None:
    assert app.host.run_timer_once() >= 2  # poll_status and export_jobs


def _assert_failed_then_redeliver(app: App, message_id: str, reason: str) -> None:
    """The message's record failed for ``reason``, unacked; then F&O offers it again."""
    (record,) = _exports(app)
    assert record["state"] == "ExportFailed"
    assert reason in record["last_error"]
    assert app.d365.messages[message_id].state != "Acked"
    app.d365.clock.advance(REDELIVERY)
    _tick(app)


def test_three_exports_land_as_three_blobs_and_are_acked(export_app) -> None:
    app = export_app()
    files = {
        app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID, rows=rows): customers_export(
            rows=rows
        )
        for rows in (1, 2, 3)
    }

    _tick(app)

    blobs = _blobs(app)
    assert len(blobs) == 3
    for message_id, data in files.items():
        (name,) = [n for n in blobs if n.endswith(f"/{message_id}.xml")]
        assert name.startswith(f"customers/{fakes.COMPANY}/")
        assert blobs[name] == data
        properties = _container(app).get_blob_client(name).get_blob_properties()
        assert properties.metadata["d365_message_id"] == message_id
        assert properties.metadata["d365_activity_id"] == fakes.EXPORT_ACTIVITY_ID
        assert properties.metadata["d365_correlation_id"] == message_id
        assert properties.metadata["d365_dequeued_at"]
        assert app.d365.messages[message_id].state == "Acked"
    records = _exports(app)
    assert {r["message_id"] for r in records} == set(files)
    assert {r["state"] for r in records} == {"Acked"}
    assert [h["state"] for h in records[0]["history"]] == ["Dequeued", "Downloaded", "Acked"]
    # Every ack posted the dequeue body exactly as F&O sent it.
    dequeue_bodies = {json.loads(r.body or b"{}").get("CorrelationId") for r in _calls(app, "ack")}
    assert dequeue_bodies == set(files)
    assert {len(json.loads(r.body)) for r in _calls(app, "ack")} == {6}


def test_an_http_download_location_is_fetched_over_https(export_app) -> None:
    app = export_app()
    app.d365.knobs.download_location_http = True
    message_id = app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID, file_format="csv")

    _tick(app)

    assert list(_blobs(app).values()) == [customers_export(file_format="csv")]
    assert app.d365.messages[message_id].state == "Acked"


def test_an_ack_lost_on_the_way_after_the_commit_is_acked_once_redelivered(export_app) -> None:
    app = export_app()
    # The ack never reaches F&O (the connection drops before it is read), every attempt:
    # as if the process had died between the commit and the ack.
    app.d365.knobs.operations = frozenset({"ack"})
    app.d365.knobs.drop_before_body_burst = 5
    message_id = app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)

    _tick(app)

    assert len(_blobs(app)) == 1
    _assert_failed_then_redeliver(app, message_id, "ack failed")

    assert len(_blobs(app)) == 1
    assert len([r for r in _calls(app, "download") if r.status == 200]) == 1
    (record,) = _exports(app)
    assert record["state"] == "Acked"
    assert record["dequeue_count"] == 2
    assert app.d365.messages[message_id].state == "Acked"


def test_a_download_broken_part_way_leaves_no_blob_then_lands_on_redelivery(export_app) -> None:
    app = export_app(extension=".bin")
    data = os.urandom(10 * 1024 * 1024)
    message_id = app.d365.add_export(fakes.EXPORT_ACTIVITY_ID, data)
    app.d365.knobs.download_break_burst = 1
    app.d365.knobs.download_break_after_bytes = 6 * 1024 * 1024  # past the first block

    _tick(app)

    assert _blobs(app) == {}
    _assert_failed_then_redeliver(app, message_id, "download not written")

    assert list(_blobs(app).values()) == [data]
    (record,) = _exports(app)
    assert record["state"] == "Acked"
    assert record["size"] == len(data)


def test_a_failed_ack_is_retried_and_the_blob_written_once(export_app) -> None:
    app = export_app()
    app.d365.knobs.operations = frozenset({"ack"})
    app.d365.knobs.error_status = 500
    app.d365.knobs.error_burst = 5  # every attempt of the client's retry budget
    message_id = app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)

    _tick(app)
    (record,) = _exports(app)
    assert record["state"] == "ExportFailed"
    assert "ack failed" in record["last_error"]
    assert "500" in record["last_error"]

    _tick(app)  # not offered again yet: nothing happens
    assert len([r for r in _calls(app, "dequeue") if r.status == 200]) == 1

    app.d365.clock.advance(REDELIVERY)
    _tick(app)

    assert len(_blobs(app)) == 1
    assert len([r for r in _calls(app, "download") if r.status == 200]) == 1
    (record,) = _exports(app)
    assert record["state"] == "Acked"
    assert [h["state"] for h in record["history"]] == [
        "Dequeued",
        "Downloaded",
        "ExportFailed",
        "Dequeued",
        "Downloaded",
        "Acked",
    ]
    assert app.d365.messages[message_id].state == "Acked"


def test_unzip_writes_each_file_of_the_package(export_app) -> None:
    app = export_app(prefix="packages/{message_id}/", unzip=True, extension=None)
    message_id = app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID, file_format="package")

    _tick(app)

    blobs = _blobs(app)
    assert set(blobs) == {
        f"packages/{message_id}/Manifest.xml",
        f"packages/{message_id}/PackageHeader.xml",
        f"packages/{message_id}/Customers V3.xml",
    }
    assert blobs[f"packages/{message_id}/Customers V3.xml"] == customers_export()
    assert b"<LegalEntity>USMF</LegalEntity>" in blobs[f"packages/{message_id}/PackageHeader.xml"]
    (record,) = _exports(app)
    assert record["state"] == "Acked"
    assert sorted(record["blobs"]) == sorted(blobs)
    assert record["size"] == len(export_package())


def test_a_disabled_export_is_left_alone(export_app) -> None:
    app = export_app(enabled=False)
    message_id = app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)

    _tick(app)

    assert _calls(app, "dequeue") == []
    assert _blobs(app) == {}
    assert _exports(app) == []
    assert app.d365.messages[message_id].state not in ("Dequeued", "Acked")


def test_bad_export_routes_are_one_error_listing_every_problem(app_factory) -> None:
    bad = [
        {"name": "a b", "activity_id": "nope", "container": "Bad_Name", "prefix": "x"},
        {"name": "ok", "activity_id": fakes.EXPORT_ACTIVITY_ID, "container": "d365-exports",
         "prefix": "c/{company}/{when}/", "unzip": "yes"},
    ]  # fmt: skip
    app: App = app_factory(EXPORT_ROUTES=json.dumps(bad))

    health = app.get("health")
    listing = app.get("messages", direction="export")

    assert health.status_code == 503
    problems = health.json()["checks"]["settings"]["problems"]
    expected = [
        "EXPORT_ROUTES[0].name",
        "EXPORT_ROUTES[0].activity_id",
        "EXPORT_ROUTES[0].container",
        "EXPORT_ROUTES[0].prefix",
        "EXPORT_ROUTES[1].prefix",
        "EXPORT_ROUTES[1].unzip",
        "EXPORT_ROUTES[1].company",
    ]
    for name in expected:
        assert any(problem.startswith(name) for problem in problems), (name, problems)
    assert listing.status_code == 503
    assert all(name in listing.json()["error"] for name in expected)


def test_the_export_listing_refuses_unknown_parameters(export_app) -> None:
    app = export_app()
    response = app.get("messages", direction="export", state="Acked")
    assert response.status_code == 400
    assert "unknown parameter(s) state" in response.json()["error"]


def test_an_ack_whose_answer_is_lost_is_sent_again(export_app) -> None:
    app = export_app()
    app.d365.knobs.operations = frozenset({"ack"})
    app.d365.knobs.drop_after_body_burst = 1  # F&O applies the ack, the answer never arrives
    message_id = app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)

    _tick(app)

    (record,) = _exports(app)
    assert record["state"] == "Acked"
    assert len(_calls(app, "ack")) == 2
    assert len(_blobs(app)) == 1
    assert app.d365.messages[message_id].state == "Acked"


def test_an_export_failing_every_time_is_given_up_shown_and_acked(
    app_factory: Callable[..., App], unique_name: str
) -> None:
    """Finding 12 through the host: EXPORT_MAX_ATTEMPTS counts, the record says why."""
    app = app_factory(
        EXPORT_ROUTES=json.dumps([export_route(unique_name)]), EXPORT_MAX_ATTEMPTS="2"
    )
    lost = app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    app.d365.lose_export_file(lost)

    for _ in range(3):
        _tick(app)
        app.d365.clock.advance(REDELIVERY)

    (record,) = _exports(app)
    assert record["message_id"] == lost
    assert record["state"] == "ExportFailed"
    assert record["gave_up_at"] and record["acked_at"]
    assert record["last_error"].startswith(
        "given up after 2 attempts (EXPORT_MAX_ATTEMPTS) and acknowledged, so that F&O stops "
        "offering it; nothing was kept"
    )
    assert "HTTP 404 Not Found" in record["last_error"]
    assert [h["state"] for h in record["history"]] == [
        "Dequeued",
        "ExportFailed",
        "Dequeued",
        "ExportFailed",
        "ExportFailed",
    ]
    assert app.d365.messages[lost].state == "Acked"
    assert len([r for r in _calls(app, "dequeue") if r.status == 200]) == 2
    assert _blobs(app) == {}


def test_an_unzip_over_zip_max_members_is_kept_unopened_given_up_and_acked(
    app_factory: Callable[..., App], unique_name: str
) -> None:
    """Finding 7 through the host: the ZIP_* settings reach the export route."""
    route = export_route(unique_name, prefix="packages/{message_id}/", unzip=True, extension=None)
    app = app_factory(EXPORT_ROUTES=json.dumps([route]), ZIP_MAX_MEMBERS="2")
    message_id = app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID, file_format="package")

    _tick(app)

    kept = f"packages/{message_id}/{message_id}.zip"
    assert _blobs(app) == {kept: export_package()}
    (record,) = _exports(app)
    assert (record["state"], record["blobs"]) == ("ExportFailed", [kept])
    assert record["last_error"] == (
        f"the exported package of message {message_id} holds 3 members, over the limit of 2 of "
        f"ZIP_MAX_MEMBERS. Given up: the package is kept unopened as '{unique_name}-exports/"
        f"{kept}', and acknowledged so that F&O stops offering it; if it is genuine, unzip it "
        "from there, and raise ZIP_MAX_MEMBERS for the next ones"
    )
    assert app.d365.messages[message_id].state == "Acked"
