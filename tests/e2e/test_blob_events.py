"""Uploads reach enqueue_blob the way Azure delivers them: BlobCreated events in the Event Grid
schema, posted to the blob extension's webhook, run from the host's blob trigger queue.

Event Grid delivers at least once and in no particular order; the extension runs the blob as it
is when the message is read, and drops a message whose blob is gone. Whatever the deliveries,
a file reaches F&O once.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import App, enqueue_requests

VALID = b"""<?xml version="1.0" encoding="utf-8"?><Document><CUSTCUSTOMERV3ENTITY>
<CUSTOMERACCOUNT>US-7002</CUSTOMERACCOUNT><CUSTOMERGROUPID>10</CUSTOMERGROUPID>
<SALESCURRENCYCODE>USD</SALESCURRENCYCODE><ORGANIZATIONNAME>Contoso Events</ORGANIZATIONNAME>
</CUSTCUSTOMERV3ENTITY></Document>"""
TEST_HTTP = Path(__file__).resolve().parents[2] / "test.http"


def _post(app: App, body: Any, *, event_type: str = "Notification", query: str | None = None):
    url = app.host.webhook_url("enqueue_blob")
    if query is not None:
        url = url.split("?")[0] + "?" + query
    return requests.post(url, json=body, headers={"aeg-event-type": event_type}, timeout=30)


def _tracked(app: App, blob: str) -> int:
    return app.get("messages", blob=blob).status_code


def test_an_upload_is_delivered_as_an_event_and_enqueued(app: App) -> None:
    blob = app.upload("customers/USMF/event.xml", VALID)

    assert app.deliver() == 1
    record = app.record(blob)
    assert record["state"] in {"Enqueued", "Processed"}
    [sent] = enqueue_requests(app.d365)
    assert sent.body == VALID
    assert app.deliver() == 0  # nothing new: no event


def test_the_same_event_delivered_twice_enqueues_once(app: App) -> None:
    blob = app.upload("customers/USMF/twice.xml", VALID)
    [event] = app.events.new_events()

    assert app.events.deliver([event]) == 1
    assert app.events.deliver([event]) == 1  # Event Grid's at-least-once: the same event again
    assert _post(app, [event, event]).status_code == 202  # twice in one batch, run in parallel
    app.host.process_blob_queue()

    record = app.run_until_terminal([blob])[blob]
    assert record["state"] == "Processed"
    assert len(enqueue_requests(app.d365)) == 1
    assert [r["state"] for r in app.records()].count("Processed") == 1


def test_events_out_of_order_enqueue_the_blob_once_as_it_is_now(app: App) -> None:
    blob = app.upload("customers/USMF/reordered.xml", VALID)
    [first] = app.events.new_events()
    newer = VALID.replace(b"US-7002", b"US-7003")
    app.upload("customers/USMF/reordered.xml", newer)
    [second] = app.events.new_events()
    assert first["data"]["eTag"] != second["data"]["eTag"]

    # The newer version's event first, then the older one's.
    assert app.events.deliver([second]) == 1
    app.host.process_blob_queue()
    assert app.events.deliver([first]) == 1
    record = app.run_until_terminal([blob])[blob]

    [sent] = enqueue_requests(app.d365)
    assert sent.body == newer
    assert record["state"] == "Processed"
    assert record["blob_etag"].strip('"') == second["data"]["eTag"]
    assert len(app.records()) == 1


def test_an_event_for_a_blob_already_gone_ends_without_a_run(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    # As the blob extension: "Blob '...' will not be processed because the blob cannot be
    # found", the message is dropped, the function never runs, nothing is tracked.
    caplog.set_level(logging.INFO, logger="devtools.local_host")
    blob = app.upload("customers/USMF/gone.xml", VALID)
    [event] = app.events.new_events()
    app.inbound.delete_blob(blob)

    assert app.events.deliver([event]) == 1
    app.host.process_blob_queue()

    assert _tracked(app, blob) == 404
    assert enqueue_requests(app.d365) == []
    assert f"Blob '{blob}' will not be processed because the blob cannot be found" in caplog.text
    assert "invocation function=enqueue_blob" not in caplog.text


def test_a_batch_of_events_enqueues_each_file_once(app: App) -> None:
    blobs = [app.upload(f"customers/USMF/batch-{i}.xml", VALID) for i in range(3)]
    events = app.events.new_events()
    assert len(events) == 3

    response = _post(app, events)
    assert (response.status_code, response.content) == (202, b"")
    records = app.run_until_terminal(blobs)

    assert {r["state"] for r in records.values()} == {"Processed"}
    assert len(enqueue_requests(app.d365)) == 3


def test_the_handshake_and_what_the_webhook_refuses_or_drops(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    validation = [{"id": "1", "data": {"validationCode": "c0de"}, "eventType": "x"}]
    response = _post(app, validation, event_type="SubscriptionValidation")
    assert (response.status_code, response.json()) == (200, {"validationResponse": "c0de"})

    blob = app.upload("customers/USMF/refused.xml", VALID)
    [event] = app.events.new_events()
    assert _post(app, [event], event_type="Bogus").status_code == 400
    wrong = "functionName=Host.Functions.enqueue_blobs"
    assert _post(app, [event], query=wrong).status_code == 202
    assert _post(app, [event], query="").status_code == 202
    app.host.process_blob_queue()

    assert _tracked(app, blob) == 404
    assert enqueue_requests(app.d365) == []
    assert "function 'Host.Functions.enqueue_blobs' cannot be found" in caplog.text
    assert "Invalid function ID." in caplog.text


def test_a_blob_deleted_event_that_slips_through_the_filter_does_nothing(app: App) -> None:
    # The subscription sends only BlobCreated; the extension would queue any event type, and
    # for a deleted blob the message is dropped as "blob cannot be found".
    blob = app.upload("customers/USMF/deleted.xml", VALID)
    [event] = app.events.new_events()
    app.inbound.delete_blob(blob)
    event |= {"eventType": "Microsoft.Storage.BlobDeleted"}

    assert _post(app, [event]).status_code == 202
    app.host.process_blob_queue()
    assert _tracked(app, blob) == 404


def _test_http_webhook_request(variables: dict[str, str]) -> tuple[str, dict[str, str], str]:
    """The first request of test.http (method + URL, headers, body), variables substituted."""
    text = TEST_HTTP.read_text(encoding="utf-8")
    defined = dict(re.findall(r"^@(\w+) = (.*)$", text, re.MULTILINE)) | variables
    block = text.split("###")[1].split("\n", 1)[1]
    lines = [line for line in block.splitlines() if not line.startswith("#")]
    for name, value in defined.items():
        lines = [line.replace("{{" + name + "}}", value) for line in lines]
    blank = lines.index("")
    request_line, headers = lines[0], dict(line.split(": ", 1) for line in lines[1:blank])
    return request_line, headers, "\n".join(lines[blank + 1 :])


def test_the_webhook_request_of_test_http_is_accepted_and_enqueues(app: App) -> None:
    blob = app.upload("customers/USMF/customers-0001.xml", VALID)
    request_line, headers, body = _test_http_webhook_request(
        {"host": app.host.http_url, "blob": blob, "container": app.inbound.container_name}
    )
    method, url = request_line.split(" ", 1)

    response = requests.request(method, url, data=body, headers=headers, timeout=30)

    assert (response.status_code, response.content) == (202, b"")
    assert json.loads(body)[0]["data"]["url"].endswith(f"/{app.inbound.container_name}/{blob}")
    record = app.run_until_terminal([blob])[blob]
    assert record["state"] == "Processed"
    assert len(enqueue_requests(app.d365)) == 1
