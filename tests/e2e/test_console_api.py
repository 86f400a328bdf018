"""The console's API through the local host: resubmit, counts, list filters, the OpenAPI
document and the console page itself."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import openapi_schema_validator
import pytest
import requests
from openapi_spec_validator import validate

from shared.views import openapi
from tests import fakes, package_files
from tests.e2e.conftest import App, enqueue_requests, routes_for
from tests.e2e.test_enqueue import VALID
from tests.e2e.test_export import export_route
from tests.e2e.test_package_export import missed_slot, package_route
from tests.test_function_app import http_operations


def _post(app: App, path: str, *, key: str | None = None, body: dict | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return requests.post(
        f"{app.host.http_url}/api/{path}", headers=headers, json=body or {}, timeout=60
    )


def _refused(app: App, path: str) -> dict:
    app.d365.knobs.max_enqueue_bytes = 16
    blob = app.upload(path, VALID)
    record = app.run_until_terminal([blob])[blob]
    assert record["state"] == "EnqueueFailed"
    app.d365.knobs.max_enqueue_bytes = None
    return record


def test_a_double_resubmit_sends_once_and_both_records_link(app: App) -> None:
    old = _refused(app, "customers/USMF/again.xml")
    path = f"messages/{old['record_key']}/resubmit"

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: _post(app, path, key="click-1"), range(2)))

    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    new_key = answers[0].json()["resubmitted_as"]
    assert answers[1].json()["resubmitted_as"] == new_key
    new = app.run_until_terminal([old["blob"]])[old["blob"]]
    assert new["record_key"] == new_key
    assert new["state"] == "Processed"
    assert new["resubmit_of"] == old["record_key"]
    assert app.get(f"messages/{old['record_key']}").json()["resubmitted_as"] == new_key
    assert len(enqueue_requests(app.d365)) == 1

    again = _post(app, path, key="click-2")
    assert again.status_code == 409
    assert f"already resubmitted as record {new_key}" in again.json()["error"]
    # One audit row for the request sent twice; none for the refused one.
    trail = app.get("audit", person="Function Key")
    _conforms(app.get("openapi.json").json(), "/audit", trail)
    [entry] = trail.json()["items"]
    assert (entry["request_id"], entry["outcome"], entry["targets"]) == (
        "click-1",
        "done",
        [old["record_key"], new_key],
    )
    assert entry["actor"]["kind"] == "function key"
    assert new["resubmit_by"] == app.get(f"messages/{old['record_key']}").json()["resubmitted_by"]
    refused = app.get("audit", since="yesterday")
    assert refused.status_code == 400
    assert "since 'yesterday' is not a date-time; expected ISO 8601" in refused.json()["error"]


def test_a_rejected_file_resubmitted_after_its_route_was_added_is_processed(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = app.upload("vendors/USMF/late-route.xml", VALID)
    old = app.run_until_terminal([blob])[blob]
    assert (old["state"], old["reject_reason"]) == ("Rejected", "NoRoute")
    route = {
        **routes_for(app.folder)[0],
        "name": "vendors",
        "prefix": f"{app.folder}/vendors/{{company}}/",
    }
    monkeypatch.setenv("D365_ROUTES", json.dumps([*routes_for(app.folder), route]))

    answer = _post(app, f"messages/{old['record_key']}/resubmit", key="route-fixed")

    assert answer.status_code == 200, answer.text
    new = app.run_until_terminal([blob])[blob]
    assert (new["state"], new["route"], new["resubmit_of"]) == (
        "Processed",
        "vendors",
        old["record_key"],
    )
    assert len(enqueue_requests(app.d365)) == 1


def test_resubmit_refusals_say_why(app: App) -> None:
    old = _refused(app, "customers/USMF/refusals.xml")
    path = f"messages/{old['record_key']}/resubmit"

    no_key = _post(app, path)
    assert no_key.status_code == 400
    assert "Idempotency-Key" in no_key.json()["error"]
    body_key = requests.post(
        f"{app.host.http_url}/api/{path}", data=b"[1]", timeout=30
    )  # not an object
    assert body_key.status_code == 400
    unknown = _post(app, "messages/not-a-guid/resubmit", key="k")
    assert unknown.status_code == 400

    app.d365.knobs.enqueued_seconds = 600
    pending = app.upload("customers/USMF/pending.xml", VALID)
    app.deliver()
    record = app.record(pending)
    assert record["state"] == "Enqueued"
    not_final = _post(app, f"messages/{record['record_key']}/resubmit", key="k")
    assert not_final.status_code == 409
    assert "not final" in not_final.json()["error"]

    by_body = _post(app, path, body={"request_id": "from-the-body"})
    assert by_body.status_code == 200, by_body.text
    assert by_body.json()["request_id"] == "from-the-body"


def test_counts_and_filters_over_a_period(app: App) -> None:
    blobs = [
        app.upload_sample("customers/USMF/customers-valid.xml"),
        app.upload_sample("customers/USMF/customers-with-errors.xml"),
        app.upload("general-journal/DEMF/journal.xml", VALID),
        app.upload("unrouted/readme.txt", b"not routed"),
    ]
    app.run_until_terminal(blobs)

    counts = app.get("counts").json()
    assert counts["total"] == 4
    assert counts["failed"] == 3  # with errors, the journal (not a journal), rejected
    assert counts["stuck"] == 0
    assert counts["by_state"]["Processed"] == 1
    assert counts["by_state"]["Rejected"] == 1
    assert counts["by_route"]["customers"]["total"] == 2
    assert counts["by_route"]["(no route)"] == {"total": 1, "failed": 1, "stuck": 0}
    assert app.get("counts", since="2999-01-01T00:00:00Z").json()["total"] == 0
    assert app.get("counts", until="2000-01-01T00:00:00Z").json()["total"] == 0
    assert app.get("counts", colour="red").status_code == 400
    assert "until 'x' is not a date-time" in app.get("counts", until="x").json()["error"]

    def listed(**params: str) -> list[str]:
        return [item["blob"] for item in app.get("messages", **params).json()["items"]]

    assert listed(company="demf") == [blobs[2]]
    assert sorted(listed(prefix=f"{app.folder}/customers/")) == sorted(blobs[:2])
    assert listed(prefix=f"{app.folder}/unrouted/", state="Rejected") == [blobs[3]]
    assert listed(until="2000-01-01T00:00:00Z") == []
    assert len(listed(since="2000-01-01T00:00:00Z", until="2999-01-01T00:00:00Z")) == 4


def test_the_openapi_document_is_valid_and_names_every_route(app: App) -> None:
    served = app.get("openapi.json")
    assert served.status_code == 200
    spec = served.json()
    validate(spec)
    assert spec == json.loads(json.dumps(openapi.served(f"{app.host.http_url}/api/openapi.json")))
    documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    assert http_operations() <= documented, http_operations() - documented


def test_counts_by_hour_give_every_hour_of_the_period_by_outcome(app: App) -> None:
    blobs = [
        app.upload_sample("customers/USMF/customers-valid.xml"),
        app.upload_sample("customers/USMF/customers-with-errors.xml"),
        app.upload("unrouted/readme.txt", b"not routed"),
    ]
    app.run_until_terminal(blobs)
    app.d365.knobs.enqueued_seconds = 600
    app.upload("customers/USMF/pending.xml", VALID)
    app.deliver()
    now = datetime.now(UTC)
    since = (now - timedelta(hours=5, minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")

    answer = app.get("counts", since=since, interval="hour")
    after = datetime.now(UTC)  # the host's now is between the two: an hour may turn between

    _conforms(app.get("openapi.json").json(), "/counts", answer)
    body = answer.json()
    buckets = body["buckets"]
    assert body["interval"] == "hour" and body["total"] == 4
    assert len(buckets) in (6, 7)  # 7 when the half hour crossed an hour
    assert [b["start"][14:] for b in buckets] == ["00:00+00:00"] * len(buckets)
    assert buckets[-1]["start"][:13] in {now.isoformat()[:13], after.isoformat()[:13]}
    totals = {
        outcome: sum(bucket[outcome] for bucket in buckets)
        for outcome in ("processed", "failed", "pending")
    }
    assert totals == {"processed": 1, "failed": 2, "pending": 1}
    assert all(b == {**b, "processed": 0, "failed": 0, "pending": 0} for b in buckets[:-2])
    month = app.get("counts", since="2026-01-01T00:00:00Z", until="2026-03-01", interval="hour")
    assert month.status_code == 400
    assert "interval=hour covers at most 744 hours (31 days)" in month.json()["error"]
    assert "expected hour" in app.get("counts", interval="minute").json()["error"]


def _conforms(spec: dict[str, Any], path: str, answer: requests.Response) -> None:
    """``answer`` is a 200 of ``GET path`` as the document describes it."""
    assert answer.status_code == 200, answer.text
    content = spec["paths"][path]["get"]["responses"]["200"]["content"]
    schema = {**content["application/json"]["schema"], "components": spec["components"]}
    openapi_schema_validator.validate(
        answer.json(), schema, cls=openapi_schema_validator.OAS30Validator
    )


def test_real_answers_of_both_directions_are_as_the_document_says(
    app_factory: Callable[..., App], unique_name: str
) -> None:
    app = app_factory(
        EXPORT_ROUTES=json.dumps([export_route(unique_name)]),
        PACKAGE_EXPORT_ROUTES=json.dumps([package_route(unique_name)]),
    )
    app.d365.knobs.package_run_seconds = 0.3
    data = package_files.customers_package(with_errors=True)
    blobs = [app.upload_sample("customers/USMF/customers-valid.xml"),
             app.upload("pkg/USMF/customers.zip", data)]  # fmt: skip
    records = app.run_until_terminal(blobs)
    package = records[blobs[1]]
    assert package["api"] == "package" and package["error_files"]
    message_id = app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID, rows=2)
    assert app.host.run_timer_once() >= 2  # poll_status and export_jobs
    spec = app.get("openapi.json").json()
    schemas = spec["components"]["schemas"]

    for record in records.values():
        _conforms(spec, "/messages/{message_id}", app.get(f"messages/{record['record_key']}"))
        assert set(record) == set(schemas["Record"]["properties"])
    listed = app.get("messages", direction="import")
    _conforms(spec, "/messages", listed)
    assert listed.json()["items"] == app.get("messages").json()["items"]
    exports = app.get("messages", direction="export")
    _conforms(spec, "/messages", exports)
    [export] = exports.json()["items"]
    assert (export["message_id"], export["state"]) == (message_id, "Acked")
    assert set(export) == set(schemas["ExportRecord"]["properties"])
    _conforms(spec, "/messages/{message_id}", app.get(f"messages/{message_id}", direction="export"))
    # A scheduled package export: the same shape, kind package.
    app.d365.knobs.package_export_seconds = 0
    missed_slot(app, days=1)
    assert app.host.run_timer_once() >= 2
    [package_export] = [r for r in app.get("messages", direction="export").json()["items"]
                        if r["kind"] == "package"]  # fmt: skip
    assert set(package_export) == set(schemas["ExportRecord"]["properties"])
    one = app.get(f"messages/{package_export['message_id']}", direction="export")
    _conforms(spec, "/messages/{message_id}", one)
    assert one.json()["execution_id"] == package_export["message_id"]
    for path in ("/messages", "/messages/{message_id}"):
        [direction] = [
            p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "direction"
        ]
        assert direction["schema"]["enum"] == ["import", "export"]
    refused = app.get("messages", direction="outbound")
    assert refused.status_code == 400
    assert "direction 'outbound' is not accepted; expected import" in refused.json()["error"]


def test_the_console_page_is_one_self_contained_response(app: App) -> None:
    page = app.get("console")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+'", policy)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "innerHTML" not in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)  # no CDN


def test_the_console_needs_the_function_key(app_factory: Callable[..., App]) -> None:
    host = app_factory(function_key="console-test-key").host
    url = f"{host.http_url}/api/console"
    assert requests.get(url, timeout=30).status_code == 401
    assert requests.get(url, params={"code": "console-test-key"}, timeout=30).status_code == 200
    counts = requests.get(
        f"{host.http_url}/api/counts",
        headers={"x-functions-key": "console-test-key"},
        timeout=30,
    )
    assert counts.status_code == 200
