"""The local Event Grid publisher: the events a storage account's writes raise, the
subscription's filter, the handshake, and Event Grid's delivery and retry rules, against a
webhook on loopback that answers as each test scripts it."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import ContainerClient

from devtools.azurite import free_port
from devtools.event_grid import (
    BLOB_CREATED,
    EventGridError,
    EventGridPublisher,
    Subscription,
    blob_subject,
    container_subject,
    storage_topic,
)
from devtools.local_host import function_id
from tests.deploy.bicep import strip_comments

ROOT = Path(__file__).resolve().parents[2]
SECRET_CODE = "fake-webhook-code"


@dataclass
class Received:
    """One request the webhook got."""

    headers: dict[str, str]
    body: Any


@dataclass
class ScriptedWebhook:
    """Answers validations with the code, and notifications with ``statuses`` in turn (the
    last one repeats)."""

    statuses: list[int] = field(default_factory=lambda: [202])
    validation_status: int = 200
    received: list[Received] = field(default_factory=list)

    def answer(self, headers: dict[str, str], body: Any) -> tuple[int, bytes]:
        self.received.append(Received(headers, body))
        if headers.get("aeg-event-type") == "SubscriptionValidation":
            code = body[0]["data"]["validationCode"]
            return self.validation_status, json.dumps({"validationResponse": code}).encode()
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return status, b""

    @property
    def notifications(self) -> list[Received]:
        return [r for r in self.received if r.headers.get("aeg-event-type") == "Notification"]


@pytest.fixture
def webhook() -> Iterator[tuple[ScriptedWebhook, str]]:
    script = ScriptedWebhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, answer = script.answer({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/runtime/webhooks/blobs"
    yield script, f"{url}?functionName=Host.Functions.enqueue_blob&code={SECRET_CODE}"
    server.shutdown()
    server.server_close()


class Clock:
    """Monotonic seconds a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _publisher(
    container: ContainerClient, endpoint: str, clock: Clock, **subscription: Any
) -> EventGridPublisher:
    options = {"subject_begins_with": container_subject(container.container_name)}
    publisher = EventGridPublisher(
        container,
        Subscription(name="enqueue-blob", endpoint=endpoint, **(options | subscription)),
        interval=None,
        clock=clock,
    )
    publisher.start()
    return publisher


def test_blob_created_events_have_the_event_grid_schema(
    container: ContainerClient, webhook: tuple[ScriptedWebhook, str], clock: Clock
) -> None:
    _, endpoint = webhook
    container.upload_blob("before-start.xml", b"<old/>")
    publisher = _publisher(container, endpoint, clock)
    blob = container.upload_blob("customers/USMF/a b.xml", b"<Document/>")
    properties = blob.get_blob_properties()

    [event] = publisher.new_events()
    publisher.stop()

    assert set(event) == {
        "topic",
        "subject",
        "eventType",
        "id",
        "data",
        "dataVersion",
        "metadataVersion",
        "eventTime",
    }
    assert event["topic"] == storage_topic("devstoreaccount1")
    assert event["subject"] == blob_subject(container.container_name, "customers/USMF/a b.xml")
    assert event["eventType"] == BLOB_CREATED
    assert re.fullmatch(r"[0-9a-f-]{36}", event["id"])
    assert (event["dataVersion"], event["metadataVersion"]) == ("", "1")
    assert event["eventTime"].startswith(properties.last_modified.strftime("%Y-%m-%dT%H:%M:%S"))
    data = event["data"]
    assert data["url"] == blob.url
    assert data["url"].endswith("/customers/USMF/a%20b.xml")
    assert data["eTag"] == properties.etag.strip('"')
    assert data["contentLength"] == 11
    assert data["blobType"] == "BlockBlob"
    assert data["contentType"] == properties.content_settings.content_type
    assert re.fullmatch(r"[0-9a-f]{32}", data["sequencer"])


def test_a_content_write_raises_an_event_and_a_metadata_write_does_not(
    container: ContainerClient, webhook: tuple[ScriptedWebhook, str], clock: Clock
) -> None:
    _, endpoint = webhook
    publisher = _publisher(container, endpoint, clock)
    blob = container.upload_blob("x.csv", b"v1")
    [first] = publisher.new_events()

    blob.set_blob_metadata({"d365_state": "Enqueued"})
    assert publisher.new_events() == []

    container.upload_blob("x.csv", b"version 2", overwrite=True)
    [second] = publisher.new_events()
    publisher.stop()
    assert second["data"]["contentLength"] == 9
    assert second["data"]["sequencer"] > first["data"]["sequencer"]


def test_the_subscription_filter_decides_what_is_sent(
    container: ContainerClient, webhook: tuple[ScriptedWebhook, str], clock: Clock
) -> None:
    script, endpoint = webhook
    prefix = blob_subject(container.container_name, "mine/")
    publisher = _publisher(container, endpoint, clock, subject_begins_with=prefix.upper())
    container.upload_blob("mine/a.xml", b"a")
    container.upload_blob("other/b.xml", b"b")

    assert publisher.publish_new() == 1
    publisher.stop()
    [delivery] = script.notifications
    assert [e["subject"] for e in delivery.body] == [prefix + "a.xml"]

    with pytest.raises(ValueError, match="is not about the blobs of container"):
        EventGridPublisher(
            container,
            Subscription("s", endpoint, subject_begins_with=container_subject("elsewhere")),
        )


def test_deliveries_are_batches_with_event_grids_headers(
    container: ContainerClient, webhook: tuple[ScriptedWebhook, str], clock: Clock
) -> None:
    script, endpoint = webhook
    publisher = _publisher(container, endpoint, clock, max_events_per_batch=2)
    for name in ("1.xml", "2.xml", "3.xml"):
        container.upload_blob(name, b"x")

    assert publisher.publish_new() == 3
    publisher.stop()
    [validation] = [r for r in script.received if r not in script.notifications]
    assert validation.headers["aeg-event-type"] == "SubscriptionValidation"
    assert validation.body[0]["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    assert [len(r.body) for r in script.notifications] == [2, 1]
    headers = script.notifications[0].headers
    assert headers["aeg-event-type"] == "Notification"
    assert headers["aeg-subscription-name"] == "ENQUEUE-BLOB"
    assert headers["aeg-delivery-count"] == "0"
    assert headers["aeg-metadata-version"] == "1"
    assert headers["content-type"] == "application/json; charset=utf-8"


def test_a_failed_delivery_is_retried_on_event_grids_schedule(
    container: ContainerClient,
    webhook: tuple[ScriptedWebhook, str],
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    script, endpoint = webhook
    script.statuses = [503, 500, 202]
    publisher = _publisher(container, endpoint, clock)
    container.upload_blob("retried.xml", b"r")

    assert publisher.publish_new() == 0  # 503
    clock.now += 9.9
    assert publisher.publish_new() == 0  # not due before 10 s
    clock.now += 0.1
    assert publisher.publish_new() == 0  # 500
    clock.now += 29
    assert publisher.publish_new() == 0
    clock.now += 1
    assert publisher.publish_new() == 1  # 202 after 10 s + 30 s
    publisher.stop()

    counts = [r.headers["aeg-delivery-count"] for r in script.notifications]
    assert counts == ["0", "1", "2"]
    assert {r.body[0]["id"] for r in script.notifications} == {
        script.notifications[0].body[0]["id"]
    }
    assert publisher.dead_lettered == ()
    assert SECRET_CODE not in caplog.text


@pytest.mark.parametrize("status", [400, 401, 403, 413])
def test_a_webhook_answer_event_grid_does_not_retry_dead_letters_at_once(
    container: ContainerClient, webhook: tuple[ScriptedWebhook, str], clock: Clock, status: int
) -> None:
    script, endpoint = webhook
    script.statuses = [status, 202]
    publisher = _publisher(container, endpoint, clock)
    container.upload_blob("refused.xml", b"r")

    assert publisher.publish_new() == 0
    clock.now += 3600
    assert publisher.publish_new() == 0
    publisher.stop()

    assert len(script.notifications) == 1
    [letter] = publisher.dead_lettered
    assert (letter.attempts, letter.last_status) == (1, status)
    assert letter.reason == f"the webhook answered {status}, which Event Grid does not retry"
    assert letter.events[0]["subject"].endswith("/refused.xml")


def test_attempts_and_time_to_live_end_the_retries(
    container: ContainerClient, webhook: tuple[ScriptedWebhook, str], clock: Clock
) -> None:
    script, endpoint = webhook
    script.statuses = [503]
    publisher = _publisher(container, endpoint, clock, max_delivery_attempts=2)
    container.upload_blob("tries.xml", b"t")
    publisher.publish_new()
    clock.now += 10
    publisher.publish_new()
    publisher.stop()
    [letter] = publisher.dead_lettered
    assert letter.reason == "2 delivery attempts (maxDeliveryAttempts)"
    assert len(script.notifications) == 2

    ttl = _publisher(container, endpoint, clock, event_time_to_live=timedelta(minutes=1))
    container.upload_blob("ttl.xml", b"t")
    ttl.publish_new()
    clock.now += 61
    ttl.publish_new()
    ttl.stop()
    [letter] = ttl.dead_lettered
    assert letter.reason == "the event's time to live ran out"


def test_no_answer_is_retried_like_a_failure(
    container: ContainerClient, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devtools.event_grid")
    endpoint = f"http://127.0.0.1:{free_port()}/runtime/webhooks/blobs"
    publisher = EventGridPublisher(
        container, Subscription("s", endpoint), interval=None, clock=clock
    )
    with pytest.raises(EventGridError, match=r"handshake failed .*: ConnectionError \(is the host"):
        publisher.start()

    container.upload_blob("unanswered.xml", b"u")
    assert publisher.publish_new() == 0
    clock.now += 10
    assert publisher.publish_new() == 0
    publisher.stop()
    assert publisher.dead_lettered == ()
    assert caplog.text.count("attempt=1 status=ConnectionError") == 1
    assert caplog.text.count("attempt=2 status=ConnectionError") == 1


def test_a_webhook_that_fails_the_handshake_is_refused_without_showing_its_code(
    container: ContainerClient, webhook: tuple[ScriptedWebhook, str], clock: Clock
) -> None:
    script, endpoint = webhook
    script.validation_status = 401
    with pytest.raises(EventGridError) as caught:
        _publisher(container, endpoint, clock)
    assert str(caught.value) == (
        f"webhook validation handshake failed for {endpoint.split('?')[0]}: it answered 401 "
        "without the validation code (check the key and the path /runtime/webhooks/blobs)"
    )
    assert SECRET_CODE not in str(caught.value)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_events_per_batch", 0),
        ("max_delivery_attempts", 31),
        ("event_time_to_live", timedelta(minutes=1441)),
        ("retry_schedule", ()),
    ],
)
def test_a_subscription_event_grid_would_refuse_is_refused(option: str, value: Any) -> None:
    with pytest.raises(ValueError, match=option):
        Subscription("s", "http://127.0.0.1/x", **{option: value})


def test_the_local_subscription_is_the_one_the_bicep_makes() -> None:
    # make run and the e2e tests stand in for infra/app/eventsubscription.bicep: the same
    # delivery schema (the one devtools.event_grid writes), filter, batch size, retry policy
    # and webhook query. A change to one of them must reach the other.
    bicep = strip_comments((ROOT / "infra" / "app" / "eventsubscription.bicep").read_text())
    [name] = re.findall(r"name: '([\w-]+)'\n  properties:", bicep)
    local = Subscription(name, "http://127.0.0.1/")

    def value(key: str) -> str:
        [found] = re.findall(rf"^\s*{key}: (.+)$", bicep, re.MULTILINE)
        return found.strip()

    assert value("eventDeliverySchema") == "'EventGridSchema'"
    assert "endpointType: 'WebHook'" in bicep
    assert name == "enqueue-blob"  # make run's: the function's name with dashes
    assert f"?functionName={function_id('enqueue_blob')}&code=" in value("endpointUrl")
    assert int(value("maxEventsPerBatch")) == local.max_events_per_batch
    assert int(value("maxDeliveryAttempts")) == local.max_delivery_attempts
    ttl = timedelta(minutes=int(value("eventTimeToLiveInMinutes")))
    assert ttl == local.event_time_to_live
    [types] = re.findall(r"includedEventTypes: \[([^\]]*)\]", bicep)
    assert tuple(re.findall(r"'([\w.]+)'", types)) == local.included_event_types
    # Not in the Bicep: Event Grid's default, case-insensitive, as the local filter's.
    assert "isSubjectCaseSensitive" not in bicep and not local.subject_case_sensitive
