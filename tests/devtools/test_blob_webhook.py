"""The local host's blob webhook answers as the Functions host's blob extension does.

Each answer is the one ``Azure/azure-sdk-for-net``'s blob extension gives (cited in
``devtools/local_host/blob_webhook.py`` and ``blob_listener.py``): the validation handshakes,
202 for notifications (one queue message per event, whatever the function name), 400 for an
``aeg-event-type`` it does not handle, 500 for a body it cannot read, and what the queue
listener then does with wrong or missing function names and missing blobs.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient
from azure.storage.queue import QueueClient

from devtools.azurite import Azurite
from devtools.blob_listing import BlobVersion
from devtools.event_grid import blob_created_event, storage_topic
from devtools.local_host import POISON_QUEUE, BlobTriggerMessage, LocalHost, queue_name
from devtools.local_host.blob_queue import BlobTriggerQueue
from devtools.local_host.blob_webhook import EventError, blob_location
from devtools.local_host.http_reply import HttpReply
from devtools.local_host.http_server import HttpDispatcher, HttpServer
from tests.devtools.probe_app import FUNCTION_KEY, Probe, build_app, wait_for

TOPIC = storage_topic("devstoreaccount1")
WEBHOOK = "/runtime/webhooks/blobs"


def _event(blob: BlobClient, **changes: Any) -> dict[str, Any]:
    """The BlobCreated event Event Grid sends for the blob as it is now."""
    version = BlobVersion.from_properties(blob.get_blob_properties())
    event = blob_created_event(version, container=blob.container_name, url=blob.url, topic=TOPIC)
    event.update(changes)
    return event


def _post(
    host: LocalHost,
    body: Any,
    *,
    event_type: str | None = "Notification",
    query: str = "functionName=Host.Functions.on_blob",
    key: str | None = FUNCTION_KEY,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> requests.Response:
    sent = dict(headers or {})
    if event_type is not None:
        sent["aeg-event-type"] = event_type
    if key is not None:
        query += f"&code={key}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.request(
        method, f"{host.http_url}{WEBHOOK}?{query}", data=data, headers=sent, timeout=10
    )


def _queued(azurite: Azurite, host: LocalHost) -> int:
    with QueueClient.from_connection_string(
        azurite.connection_string, queue_name(host.host_id)
    ) as queue:
        return queue.get_queue_properties().approximate_message_count


def _poisoned(azurite: Azurite, container_name: str) -> list[dict[str, Any]]:
    with QueueClient.from_connection_string(azurite.connection_string, POISON_QUEUE) as queue:
        try:
            texts = [m.content for m in queue.peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []
    messages = [json.loads(base64.b64decode(text)) for text in texts]
    return [m for m in messages if m["ContainerName"] == container_name]


@pytest.fixture
def webhook_host(make_host: Callable[..., tuple[LocalHost, Probe]]) -> tuple[LocalHost, Probe]:
    return make_host()


# --- the handshakes ---------------------------------------------------------------------------


def test_the_event_grid_validation_handshake_answers_the_code(
    webhook_host: tuple[LocalHost, Probe],
) -> None:
    host, probe = webhook_host
    code = str(uuid.uuid4())
    event = {"id": "1", "topic": TOPIC, "subject": "", "data": {"validationCode": code}}
    event |= {"eventType": "Microsoft.EventGrid.SubscriptionValidationEvent"}

    response = _post(host, [event], event_type="SubscriptionValidation")

    assert response.status_code == 200
    assert response.json() == {"validationResponse": code}
    assert host.process_blob_queue() == 0
    assert probe.blobs == []


def test_the_cloudevents_handshakes_answer_too(webhook_host: tuple[LocalHost, Probe]) -> None:
    host, _ = webhook_host
    # CloudEvents' validation event carries data as JSON text (the extension parses it twice).
    cloud = {"specversion": "1.0", "data": json.dumps({"validationCode": "abc"})}
    response = _post(host, cloud, event_type="SubscriptionValidation")
    assert (response.status_code, response.json()) == (200, {"validationResponse": "abc"})

    response = _post(host, b"", event_type=None, method="OPTIONS")
    assert response.status_code == 200
    assert response.headers["Webhook-Allowed-Origin"] == "eventgrid.azure.net"
    response = _post(
        host,
        b"",
        event_type=None,
        method="OPTIONS",
        headers={"WebHook-Request-Origin": "eventgrid.azure.us"},
    )
    assert response.headers["Webhook-Allowed-Origin"] == "eventgrid.azure.us"


# --- notifications ------------------------------------------------------------------------------


def test_a_batch_of_events_is_accepted_with_202_and_runs_each_blob(
    webhook_host: tuple[LocalHost, Probe], container: ContainerClient
) -> None:
    host, probe = webhook_host
    blobs = [container.upload_blob(f"batch/{i}.xml", f"<D{i}/>".encode()) for i in range(3)]

    response = _post(host, [_event(b) for b in blobs])

    assert (response.status_code, response.content) == (202, b"")
    host.process_blob_queue()
    assert sorted(probe.blobs) == [(f"batch/{i}.xml", f"<D{i}/>".encode()) for i in range(3)]
    # One event as a bare object, not an array, is read as a batch of one.
    single = container.upload_blob("single.xml", b"<S/>")
    assert _post(host, _event(single)).status_code == 202
    host.process_blob_queue()
    assert probe.blobs[-1] == ("single.xml", b"<S/>")


def test_the_blob_runs_as_it_is_now_whatever_etag_the_event_names(
    webhook_host: tuple[LocalHost, Probe], container: ContainerClient
) -> None:
    # For an EventGrid-source trigger the extension does not compare the message's ETag.
    host, probe = webhook_host
    blob = container.upload_blob("overwritten.xml", b"<v1/>")
    first = _event(blob)
    container.upload_blob("overwritten.xml", b"<v2/>", overwrite=True)

    assert _post(host, [first]).status_code == 202
    host.process_blob_queue()
    assert probe.blobs == [("overwritten.xml", b"<v2/>")]


def test_a_blob_of_another_container_runs_too(
    webhook_host: tuple[LocalHost, Probe], azurite: Azurite, unique_name: str
) -> None:
    # The extension does not match the blob against the trigger's path: the subscription's
    # subject filter is what keeps other containers out.
    host, probe = webhook_host
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    other = service.create_container(unique_name + "x")
    try:
        blob = other.upload_blob("elsewhere.xml", b"<E/>")
        assert _post(host, [_event(blob)]).status_code == 202
        host.process_blob_queue()
    finally:
        other.delete_container()
    assert probe.containers == [unique_name + "x"]
    assert probe.blobs == [("elsewhere.xml", b"<E/>")]


def test_an_event_for_a_blob_already_gone_is_dropped_without_a_run(
    webhook_host: tuple[LocalHost, Probe],
    container: ContainerClient,
    azurite: Azurite,
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, probe = webhook_host
    caplog.set_level(logging.INFO, logger="devtools.local_host")
    blob = container.upload_blob("gone.xml", b"<G/>")
    event = _event(blob)
    blob.delete_blob()

    assert _post(host, [event]).status_code == 202
    host.process_blob_queue()

    assert probe.blobs == []
    assert "Blob 'gone.xml' will not be processed because the blob cannot be found" in caplog.text
    assert _queued(azurite, host) == 0
    assert _poisoned(azurite, container.container_name) == []


def test_a_wrong_function_name_is_accepted_then_dropped(
    webhook_host: tuple[LocalHost, Probe],
    container: ContainerClient,
    azurite: Azurite,
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, probe = webhook_host
    blob = container.upload_blob("wrong.xml", b"<W/>")

    for name in ("on_blob", "Host.Functions.nothing", "Host.Functions.ON_BLOB"):
        response = _post(host, [_event(blob)], query=f"functionName={name}")
        assert (response.status_code, response.content) == (202, b"")
    host.process_blob_queue()

    assert probe.blobs == []
    assert (
        "Blob 'wrong.xml' will not be processed because function 'Host.Functions.nothing' "
        "cannot be found"
    ) in caplog.text
    assert "(hosted: Host.Functions.on_blob)" in caplog.text
    assert _queued(azurite, host) == 0


def test_a_missing_function_name_is_accepted_and_fails_in_the_queue(
    webhook_host: tuple[LocalHost, Probe],
    container: ContainerClient,
    azurite: Azurite,
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, probe = webhook_host
    blob = container.upload_blob("nameless.xml", b"<N/>")

    response = _post(host, [_event(blob)], query="x=1")

    assert (response.status_code, response.content) == (202, b"")
    host.process_blob_queue()
    assert probe.blobs == []
    assert "blob webhook called without functionName" in caplog.text
    assert "Invalid function ID. blob=" in caplog.text
    # As in Azure, the message stays (hidden), to come back after its visibility timeout.
    assert _queued(azurite, host) == 1


@pytest.mark.parametrize("event_type", [None, "Bogus", "notification2"])
def test_an_event_type_header_it_does_not_handle_is_400(
    webhook_host: tuple[LocalHost, Probe], container: ContainerClient, event_type: str | None
) -> None:
    host, probe = webhook_host
    blob = container.upload_blob("header.xml", b"<H/>")
    response = _post(host, [_event(blob)], event_type=event_type)
    assert response.status_code == 400
    assert "aeg-event-type must be Notification" in response.json()["error"]
    assert host.process_blob_queue() == 0
    assert probe.blobs == []


def test_unsubscribe_is_202_and_runs_nothing(webhook_host: tuple[LocalHost, Probe]) -> None:
    host, probe = webhook_host
    assert _post(host, [], event_type="Unsubscribe").status_code == 202
    assert host.process_blob_queue() == 0
    assert probe.blobs == []


def test_other_event_types_are_queued_like_blob_created(
    webhook_host: tuple[LocalHost, Probe], container: ContainerClient
) -> None:
    # ProcessEventsAsync never reads eventType: the subscription's includedEventTypes filter is
    # what keeps BlobDeleted and others away. One that arrives anyway runs the blob if it exists.
    host, probe = webhook_host
    here = container.upload_blob("tiered.xml", b"<T/>")
    gone = container.upload_blob("deleted.xml", b"<D/>")
    deleted = _event(gone, eventType="Microsoft.Storage.BlobDeleted")
    gone.delete_blob()
    tiered = _event(here, eventType="Microsoft.Storage.BlobTierChanged")

    assert _post(host, [deleted, tiered]).status_code == 202
    host.process_blob_queue()
    assert probe.blobs == [("tiered.xml", b"<T/>")]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "the body is not JSON"),
        (b'"a string"', "the body should be a JSON object or array"),
        (json.dumps([{"data": {"blobType": "BlockBlob"}}]).encode(), "event 0 has no data.url"),
        # urlsplit's own ValueError escaped the handler: the connection dropped, no answer.
        (
            json.dumps([{"data": {"url": "http://[x/c/b", "blobType": "BlockBlob"}}]).encode(),
            "data.url 'http://[x/c/b' is not a URL: Invalid IPv6 URL",
        ),
    ],
)
def test_a_body_the_extension_cannot_read_is_500(
    webhook_host: tuple[LocalHost, Probe], body: bytes, error: str
) -> None:
    host, _ = webhook_host
    response = _post(host, body)
    assert response.status_code == 500
    assert error in response.json()["error"]


def test_a_bad_event_after_good_ones_is_500_and_the_good_ones_stay_queued(
    webhook_host: tuple[LocalHost, Probe], container: ContainerClient
) -> None:
    # The extension queues event by event and throws at the bad one; Event Grid then retries
    # the whole batch (the app's claim makes the repeat harmless).
    host, probe = webhook_host
    good = container.upload_blob("good.xml", b"<ok/>")
    response = _post(host, [_event(good), {"data": {"url": good.url}}])
    assert response.status_code == 500
    assert "event 1 has no data.url or data.blobType" in response.json()["error"]
    host.process_blob_queue()
    assert probe.blobs == [("good.xml", b"<ok/>")]


# --- keys, routes, the queue ------------------------------------------------------------------


def test_the_webhook_needs_the_key_when_the_host_has_one(
    webhook_host: tuple[LocalHost, Probe],
    container: ContainerClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, probe = webhook_host
    caplog.set_level(logging.DEBUG, logger="devtools")
    events = [_event(container.upload_blob("keyed.xml", b"<K/>"))]

    assert _post(host, events, key=None).status_code == 401
    assert _post(host, events, key="wrong").status_code == 401
    assert _post(host, events, key=None, method="OPTIONS").status_code == 401
    assert host.process_blob_queue() == 0
    assert _post(host, events).status_code == 202
    header = {"x-functions-key": FUNCTION_KEY}
    assert _post(host, events, key=None, headers=header).status_code == 202
    host.process_blob_queue()
    assert probe.blobs == [("keyed.xml", b"<K/>")] * 2
    assert FUNCTION_KEY not in caplog.text
    assert host.webhook_url("on_blob") == (
        f"{host.http_url}{WEBHOOK}?functionName=Host.Functions.on_blob&code={FUNCTION_KEY}"
    )


def test_no_key_is_checked_without_one(
    make_host: Callable[..., tuple[LocalHost, Probe]], container: ContainerClient
) -> None:
    host, probe = make_host(function_key=None)
    events = [_event(container.upload_blob("open.xml", b"<O/>"))]
    assert _post(host, events, key=None).status_code == 202
    host.process_blob_queue()
    assert probe.blobs == [("open.xml", b"<O/>")]
    assert host.webhook_url("on_blob").endswith("?functionName=Host.Functions.on_blob")


def test_other_extensions_and_verbs_are_refused(webhook_host: tuple[LocalHost, Probe]) -> None:
    host, _ = webhook_host
    url = f"{host.http_url}/runtime/webhooks/eventgrid?code={FUNCTION_KEY}"
    assert requests.post(url, json=[], timeout=10).status_code == 404
    response = _post(host, [], method="PUT")
    assert response.status_code == 405
    assert response.headers["Allow"] == "DELETE, GET, OPTIONS, POST"


def test_a_restarted_host_with_the_same_id_runs_what_was_left(
    make_host: Callable[..., tuple[LocalHost, Probe]],
    container: ContainerClient,
    azurite: Azurite,
    unique_name: str,
) -> None:
    # What a host answered 202 for is in the queue, not in the host: it survives the host.
    blob = container.upload_blob("left.xml", b"<L/>")
    left = BlobTriggerMessage(
        function_id="Host.Functions.on_blob",
        blob_type="BlockBlob",
        container_name=container.container_name,
        blob_name="left.xml",
        etag=blob.get_blob_properties().etag,
    )
    queue = BlobTriggerQueue(azurite.connection_string, queue_name(unique_name))
    queue.send(left)
    queue.close()

    _, stranger = make_host(host_id=unique_name + "-other")
    _, heir = make_host(host_id=unique_name)

    wait_for(lambda: heir.blobs == [("left.xml", b"<L/>")])
    assert stranger.blobs == []


def test_a_failing_blob_goes_to_the_poison_queue_after_the_threshold(
    webhook_host: tuple[LocalHost, Probe], container: ContainerClient, azurite: Azurite
) -> None:
    host, probe = webhook_host
    blob = container.upload_blob("fail/event.xml", b"bad")

    assert _post(host, [_event(blob)]).status_code == 202
    host.process_blob_queue()

    assert probe.blobs == [("fail/event.xml", b"bad")] * 3
    [message] = _poisoned(azurite, container.container_name)
    assert message["FunctionId"] == "Host.Functions.on_blob"
    assert message["BlobName"] == "fail/event.xml"
    assert message["ETag"] == blob.get_blob_properties().etag


# --- units --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("https://acct.blob.core.windows.net/inbound/a/b%20c.xml", ("inbound", "a/b c.xml")),
        ("http://127.0.0.1:10000/devstoreaccount1/inbound/x.xml?sv=1", ("inbound", "x.xml")),
        ("http://localhost:10000/devstoreaccount1/in/d/e.xml", ("in", "d/e.xml")),
        ("https://acct.blob.core.chinacloudapi.cn/c/%E2%82%AC.csv", ("c", "\u20ac.csv")),
    ],
)
def test_blob_urls_are_read_as_the_blob_uri_builder_reads_them(
    url: str, location: tuple[str, str]
) -> None:
    assert blob_location(url) == location


@pytest.mark.parametrize("url", ["https://acct.blob.core.windows.net/onlycontainer", "http://h/"])
def test_a_blob_url_without_a_blob_is_refused(url: str) -> None:
    with pytest.raises(EventError, match="names no container and blob"):
        blob_location(url)


def test_a_malformed_blob_url_is_an_event_error() -> None:
    with pytest.raises(EventError, match=r"data.url 'http://\[x/c/b' is not a URL"):
        blob_location("http://[x/c/b")


class _Broken:
    """A webhook with a defect: whatever it is asked, it raises."""

    def handle(self, *args: object) -> HttpReply:
        raise RuntimeError("a defect of the local host")


def test_a_defect_in_the_local_host_answers_a_json_500_and_logs_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The dispatcher had no catch-all: the connection dropped with no answer and no log."""
    dispatcher = HttpDispatcher((), None, webhooks={"blobs": _Broken()})
    server = HttpServer(("127.0.0.1", 0), dispatcher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        response = requests.post(f"{server.base_url}{WEBHOOK}?code=secret", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    assert (response.status_code, response.json()) == (500, {"error": "internal server error"})
    [failed] = [r for r in caplog.records if r.getMessage().startswith("local host request")]
    assert failed.getMessage() == f"local host request failed method=POST path={WEBHOOK}"
    assert failed.exc_info is not None and "a defect of the local host" in caplog.text
    assert "secret" not in caplog.text


def test_a_message_whose_run_raises_in_the_host_is_logged_and_poisoned(
    webhook_host: tuple[LocalHost, Probe],
    container: ContainerClient,
    azurite: Azurite,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The listener's pool kept the exception unread: no log, and the message stayed hidden
    for its visibility timeout instead of being tried again and poisoned."""
    host, probe = webhook_host
    blob = container.upload_blob("no-connection.xml", b"<x/>")
    assert _post(host, [_event(blob)]).status_code == 202
    monkeypatch.delenv("TestStorage")  # the converter cannot build the function's client

    host.process_blob_queue()

    assert probe.blobs == []
    failures = [r for r in caplog.records if "failed in the local host" in r.getMessage()]
    assert len(failures) == 3 and all(r.exc_info is not None for r in failures)
    [message] = _poisoned(azurite, container.container_name)
    assert message["BlobName"] == "no-connection.xml"


@pytest.mark.parametrize("host_id", ["Upper", "-start", "end-", "two--dashes", "a" * 33, "a_b"])
def test_an_invalid_host_id_is_refused(azurite: Azurite, host_id: str) -> None:
    with pytest.raises(ValueError, match=r"host_id .* is not valid: 1-32 lower-case letters"):
        LocalHost(
            build_app("unused", Probe()),
            storage_connection_string=azurite.connection_string,
            host_id=host_id,
        )
