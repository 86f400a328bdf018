"""Metric values after a known set of files, and how telemetry is switched on."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from shared import telemetry
from tests import fakes
from tests.e2e.conftest import App
from tests.e2e.test_export import REDELIVERY, export_route
from tests.e2e.test_package_export import missed_slot, package_route
from tests.telemetry.conftest import Exported
from tests.telemetry.test_traces import VALID


def _by(points: list, *keys: str) -> dict[tuple, float]:
    totals: dict[tuple, float] = {}
    for point in points:
        key = tuple(point.attributes.get(k) for k in keys)
        totals[key] = totals.get(key, 0) + point.value
    return totals


def test_metrics_count_a_known_set_of_files(app: App, exported: Exported) -> None:
    blobs = [app.upload(f"customers/USMF/m-{n}.xml", VALID) for n in range(3)]
    blobs.append(app.upload("unrouted/m.xml", VALID))
    blobs.append(app.upload("small/too-big.xml", VALID))

    app.run_until_terminal(blobs)

    metrics = exported.collect_metrics()
    files = _by(metrics["d365ri.files"], "state", "route")
    assert files == {
        ("Enqueued", "customers"): 3,
        ("Processed", "customers"): 3,
        ("Rejected", ""): 2,
    }
    sizes = metrics["d365ri.enqueue.bytes"]
    assert [(dict(p.attributes), p.count, p.sum) for p in sizes] == [
        ({"route": "customers", "ok": True}, 3, 3 * len(VALID))
    ]
    durations = metrics["d365ri.enqueue.duration"]
    assert sum(p.count for p in durations) == 3
    ticks = metrics["d365ri.poll.tick.duration"]
    assert sum(p.count for p in ticks) >= 1
    due = metrics["d365ri.poll.tick.due"]
    assert sum(p.sum for p in due) >= 3
    # The last tick found every file final: nothing waits any more.
    assert [p.value for p in metrics["d365ri.pending.count"]] == [0]
    assert [p.value for p in metrics["d365ri.pending.oldest_age"]] == [0.0]
    calls = _by(metrics["d365ri.d365.calls"], "operation", "status_code")
    assert calls[("enqueue", 200)] == 3
    assert calls[("GetMessageStatus", 200)] >= 3


def test_configure_rejects_an_unknown_exporter_by_name() -> None:
    with pytest.raises(ValueError, match=r"TELEMETRY_EXPORTER='zipkin' is not an exporter"):
        telemetry.configure({"TELEMETRY_EXPORTER": "zipkin"})


def test_log_ids_leave_out_what_is_unknown() -> None:
    assert telemetry.log_ids(blob="a/b.xml", message_id=None, attempt=2) == {
        "blob": "a/b.xml",
        "attempt": 2,
    }


def test_an_export_that_fails_then_is_acked_is_logged_and_counted(
    app_factory: Callable[..., App], exported: Exported, unique_name: str
) -> None:
    app = app_factory(EXPORT_ROUTES=json.dumps([export_route(unique_name)]))
    app.d365.knobs.operations = frozenset({"ack"})
    app.d365.knobs.error_status = 500
    app.d365.knobs.error_burst = 5  # every attempt of the client's retry budget
    message_id = app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)

    app.host.run_timer_once()
    app.d365.clock.advance(REDELIVERY)
    app.host.run_timer_once()

    exports = _by(exported.collect_metrics()["d365ri.exports"], "state", "route")
    assert exports == {("ExportFailed", "customers-out"): 1, ("Acked", "customers-out"): 1}
    events = [
        dict(record.attributes)
        for record in exported.logs()
        if record.attributes.get("event") in {"export_failed", "export_acked"}
    ]
    assert [e["event"] for e in events] == ["export_failed", "export_acked"]
    failed = events[0]
    assert failed["message_id"] == message_id
    assert failed["route"] == "customers-out"
    assert failed["activity_id"] == fakes.EXPORT_ACTIVITY_ID
    assert failed["state"] == "ExportFailed"
    assert failed["reason"].startswith("ack failed: ")
    assert "500" in failed["reason"]


def test_an_export_given_up_fires_the_failure_alert_event_marked_as_given_up(
    app_factory: Callable[..., App], exported: Exported, unique_name: str
) -> None:
    """Finding 12: the operator is told through the export_failed event the alert reads."""
    app = app_factory(
        EXPORT_ROUTES=json.dumps([export_route(unique_name)]), EXPORT_MAX_ATTEMPTS="2"
    )
    message_id = app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    app.d365.lose_export_file(message_id)

    app.host.run_timer_once()
    app.d365.clock.advance(REDELIVERY)
    app.host.run_timer_once()
    app.d365.clock.advance(REDELIVERY)
    app.host.run_timer_once()

    exports = _by(exported.collect_metrics()["d365ri.exports"], "state", "route")
    assert exports == {("ExportFailed", "customers-out"): 2}
    events = [
        dict(record.attributes)
        for record in exported.logs()
        if record.attributes.get("event") in {"export_failed", "export_acked"}
    ]
    assert [(e["event"], e.get("gave_up")) for e in events] == [
        ("export_failed", None),
        ("export_failed", True),
    ]
    final = events[1]
    assert (final["message_id"], final["route"], final["state"]) == (
        message_id,
        "customers-out",
        "ExportFailed",
    )
    assert final["reason"].startswith("given up after 2 attempts (EXPORT_MAX_ATTEMPTS)")
    assert app.d365.messages[message_id].state == "Acked"


def test_package_exports_are_counted_and_their_failure_is_the_alerts_event(
    app_factory: Callable[..., App], exported: Exported, unique_name: str
) -> None:
    routes = [
        package_route(unique_name),
        package_route(unique_name, name="journals-daily", definition_group="NoSuchProject"),
    ]
    app = app_factory(PACKAGE_EXPORT_ROUTES=json.dumps(routes))
    app.d365.knobs.package_export_seconds = 0
    app.d365.knobs.package_url_delay_seconds = 0
    missed_slot(app, days=1)
    missed_slot(app, days=1, route="journals-daily")

    app.host.run_timer_once()

    exports = _by(exported.collect_metrics()["d365ri.exports"], "state", "route", "kind")
    assert exports == {
        ("Delivered", "customers-daily", "package"): 1,
        ("ExportFailed", "journals-daily", "package"): 1,
    }
    events = {
        record.attributes["event"]: dict(record.attributes)
        for record in exported.logs()
        if record.attributes.get("event") in {"export_failed", "export_downloaded"}
    }
    failed = events["export_failed"]
    assert (failed["kind"], failed["route"], failed["gave_up"]) == (
        "package",
        "journals-daily",
        True,
    )
    assert failed["message_id"] == failed["execution_id"]
    assert "Data project 'NoSuchProject' was not found." in failed["reason"]
    assert events["export_downloaded"]["kind"] == "package"
