"""The HTTP routes: records, queries, paging, bad parameters, health."""

from __future__ import annotations

import time

import pytest
import requests

from tests import fakes
from tests.e2e.conftest import App
from tests.e2e.test_enqueue import VALID


def test_a_record_has_every_documented_field(app: App) -> None:
    blob = app.upload("customers/USMF/fields.xml", VALID)
    record = app.run_until_terminal([blob])[blob]
    expected = {
        "message_id", "blob", "blob_etag", "route", "activity_id", "entity", "company", "state",
        "d365_status", "execution_id", "errors", "error_count", "errors_blob", "received_at",
        "enqueued_at", "updated_at", "completed_at", "poll_count", "last_error",
    }  # fmt: skip
    assert expected <= set(record)
    assert record["route"] == "customers"
    assert record["activity_id"] == fakes.CUSTOMERS_ACTIVITY_ID
    assert record["entity"] == fakes.CUSTOMERS_ENTITY
    by_id = app.get(f"messages/{record['message_id'].upper()}")
    assert by_id.status_code == 200
    assert by_id.headers["Content-Type"].startswith("application/json")
    assert by_id.json()["blob"] == blob


def test_listing_is_newest_first_filtered_and_paged(app: App) -> None:
    uploaded = []
    for path in ("customers/USMF/list-0.xml", "customers/USMF/list-1.xml", "unrouted/list.xml"):
        uploaded.append(app.upload(path, VALID))
        time.sleep(1.05)  # Last-Modified, which orders the listing, counts whole seconds
    *blobs, rejected = uploaded
    blobs.append(app.upload("customers/USMF/list-2.xml", VALID))
    app.run_until_terminal([*blobs, rejected])

    everything = app.get("messages").json()["items"]
    assert [item["blob"] for item in everything] == [blobs[2], rejected, blobs[1], blobs[0]]

    only_rejected = app.get("messages", state="rejected").json()["items"]
    assert [item["blob"] for item in only_rejected] == [rejected]
    by_route = app.get("messages", route="customers").json()["items"]
    assert sorted(item["blob"] for item in by_route) == sorted(blobs)

    seen: list[str] = []
    params = {"limit": "1"}
    while True:
        page = app.get("messages", **params).json()
        seen.extend(item["blob"] for item in page["items"])
        if not page["continuation"]:
            break
        params["continuation"] = page["continuation"]
    assert sorted(seen) == sorted([*blobs, rejected])

    since = app.get("messages", since="2999-01-01T00:00:00Z").json()
    assert since == {"items": [], "continuation": None}


@pytest.mark.parametrize(
    ("path", "params", "status", "text"),
    [
        ("messages/not-a-guid", {}, 400, "is not a GUID"),
        ("messages/84a383c8-336d-45e4-9933-0c3e8bfb734a", {}, 404, "no tracked file"),
        ("messages", {"blob": "nothing/here.xml"}, 404, "no tracked file for blob"),
        ("messages", {"state": "Done"}, 400, "accepted: Received, Enqueued"),
        ("messages", {"route": "vendors"}, 400, "configured routes: customers"),
        ("messages", {"since": "yesterday"}, 400, "ISO 8601"),
        ("messages", {"limit": "0"}, 400, "expected 1 to 1000"),
        ("messages", {"limit": "abc"}, 400, "expected 1 to 1000"),
        ("messages", {"continuation": "%%%"}, 400, "continuation"),
        ("messages", {"colour": "red"}, 400, "accepted: blob, state, route"),
        ("messages", {"blob": "a.xml", "state": "Processed"}, 400, "cannot be combined"),
    ],
)
def test_bad_parameters_get_a_message_saying_what_is_accepted(
    app: App, path: str, params: dict[str, str], status: int, text: str
) -> None:
    response = app.get(path, **params)
    assert response.status_code == status
    assert text in response.json()["error"]


def test_health_reports_settings_storage_token_and_pending(app: App) -> None:
    blob = app.upload("customers/USMF/pending.xml", VALID)
    app.deliver()

    response = app.get("health")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["healthy"] is True
    assert body["checks"]["storage"]["pending"] == 1
    assert body["checks"]["d365_token"]["ok"] is True
    assert body["checks"]["settings"]["summary"]["routes"][0]["name"] == "customers"
    assert fakes.CLIENT_SECRET not in response.text
    assert app.record(blob)["state"] == "Enqueued"


def test_health_is_503_when_no_token_can_be_had(app_factory) -> None:
    app = app_factory(D365_CLIENT_SECRET="wrong-fake-secret")
    response = app.get("health")
    assert response.status_code == 503
    assert response.json()["checks"]["d365_token"]["ok"] is False
    assert "wrong-fake-secret" not in response.text


def test_hostile_input_over_http_is_a_4xx_that_says_why_never_a_500(app: App) -> None:
    blob = app.upload("customers/USMF/hostile.xml", VALID)
    record = app.run_until_terminal([blob])[blob]
    url = f"{app.host.http_url}/api/messages/{record['record_key']}/resubmit"

    brackets = requests.post(url, data=b"[" * 100_000, headers={"Idempotency-Key": "k"}, timeout=30)
    deep = requests.post(url, data=b"[" * 60_000, headers={"Idempotency-Key": "k"}, timeout=30)
    year_one = app.get("counts", until="0001-01-01T00:00:00Z")
    offset = app.get("counts", since="9999-12-31T23:00:00-05:00")

    assert brackets.status_code == 413
    assert brackets.json()["error"].startswith("the body is 100,000 bytes; at most 65,536 bytes")
    assert deep.status_code == 400
    assert "it is nested too deeply" in deep.json()["error"]
    assert year_one.status_code == offset.status_code == 400
    assert "until '0001-01-01T00:00:00Z' is out of range" in year_one.json()["error"]
    assert "since '9999-12-31T23:00:00-05:00' is out of range" in offset.json()["error"]
    assert app.record(blob)["resubmitted_as"] is None
