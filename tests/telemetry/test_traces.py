"""A file's journey as spans and log records, through the local host, the emulator and Azurite."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from tests import fakes
from tests.e2e.conftest import App
from tests.telemetry.conftest import Exported

VALID = b"""<?xml version="1.0" encoding="utf-8"?><Document><CUSTCUSTOMERV3ENTITY>
<CUSTOMERACCOUNT>US-7101</CUSTOMERACCOUNT><CUSTOMERGROUPID>10</CUSTOMERGROUPID>
<SALESCURRENCYCODE>USD</SALESCURRENCYCODE><ORGANIZATIONNAME>Fabrikam Otel</ORGANIZATIONNAME>
</CUSTCUSTOMERV3ENTITY></Document>"""


def _one(spans: Iterable[ReadableSpan], **attributes: Any) -> ReadableSpan:
    found = [s for s in spans if all(s.attributes.get(k) == v for k, v in attributes.items())]
    assert len(found) == 1, [(s.name, dict(s.attributes)) for s in found]
    return found[0]


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent and s.parent.span_id == parent.context.span_id]


def test_a_files_journey_is_a_tree_of_spans_with_its_ids(app: App, exported: Exported) -> None:
    blob = app.upload("customers/USMF/otel.xml", VALID)

    record = app.run_until_terminal([blob])[blob]

    assert record["state"] == "Processed"
    spans = exported.spans()
    invocation = _one(spans, **{"faas.name": "enqueue_blob", "blob": blob})
    assert invocation.kind is SpanKind.SERVER
    assert invocation.parent is None
    assert invocation.attributes["faas.trigger"] == "datasource"
    assert invocation.attributes["route"] == "customers"
    assert invocation.attributes["message_id"] == record["message_id"]
    children = _children(spans, invocation)
    enqueue = _one(children, **{"d365.operation": "enqueue"})
    assert enqueue.name == "F&O enqueue"
    assert enqueue.kind is SpanKind.CLIENT
    assert enqueue.attributes["http.response.status_code"] == 200
    assert enqueue.attributes["d365.attempt"] == 1
    assert enqueue.attributes["d365.activity_id"] == fakes.CUSTOMERS_ACTIVITY_ID
    assert enqueue.attributes["url.full"] == (
        f"{app.d365.base_url}/api/connector/enqueue/{fakes.CUSTOMERS_ACTIVITY_ID}"
    )
    # Storage calls come from the Azure SDK's own tracing, in the same tree.
    names = {s.name for s in children}
    assert {"BlobClient.get_blob_properties", "TableClient.submit_transaction"} <= names, names

    polls = [
        s
        for s in spans
        if s.name == "poll message" and s.attributes.get("message_id") == record["message_id"]
    ]
    assert polls
    for poll in polls:
        assert poll.parent is not None
        parent = next(s for s in spans if s.context.span_id == poll.parent.span_id)
        assert parent.attributes["faas.name"] == "poll_status"
    status_calls = [
        s
        for p in polls
        for s in _children(spans, p)
        if s.attributes.get("d365.operation") == "GetMessageStatus"
    ]
    assert status_calls
    assert {s.attributes["d365.message_id"] for s in status_calls} == {record["message_id"]}

    finished = [r for r in exported.logs() if r.attributes.get("event") == "file_finished"]
    mine = [r for r in finished if r.attributes.get("blob") == blob]
    assert len(mine) == 1
    attributes = mine[0].attributes
    assert attributes["state"] == "Processed"
    assert attributes["message_id"] == record["message_id"]
    assert attributes["execution_id"] == record["execution_id"]
    assert attributes["route"] == "customers"
    assert attributes["record_id"]
    assert str(mine[0].body).startswith(f"finished blob={blob} ")


def test_a_429_is_a_failed_dependency_then_its_retry(app: App, exported: Exported) -> None:
    """A poll's call retries within the call (an enqueue makes one attempt per send and is
    retried from the schedule instead, see tests/shared/flows/test_enqueue.py)."""
    blob = app.upload("customers/USMF/throttled.xml", VALID)
    app.deliver()
    message_id = app.record(blob)["message_id"]
    app.d365.knobs.operations = frozenset({"GetMessageStatus"})
    app.d365.knobs.throttle_burst = 1
    app.d365.knobs.retry_after = 0

    app.run_until_terminal([blob])

    spans = exported.spans()
    polls = [
        s
        for s in spans
        if s.name == "poll message" and s.attributes.get("message_id") == message_id
    ]
    calls = sorted(
        (
            s
            for poll in polls
            for s in _children(spans, poll)
            if s.attributes.get("d365.operation") == "GetMessageStatus"
        ),
        key=lambda s: s.start_time or 0,
    )
    assert [
        (s.attributes["d365.attempt"], s.attributes["http.response.status_code"]) for s in calls
    ][:2] == [
        (1, 429),
        (2, 200),
    ]
    assert calls[0].attributes["d365.retry_after"] == 0.0
    assert calls[0].status.status_code is StatusCode.ERROR
    assert calls[1].status.status_code is StatusCode.UNSET
    retries = exported.collect_metrics()["d365ri.d365.retries"]
    assert [(dict(p.attributes), p.value) for p in retries] == [
        ({"operation": "GetMessageStatus"}, 1)
    ]
    logged = [r for r in exported.logs() if r.attributes.get("d365_operation")]
    assert [r.attributes["d365_status"] for r in logged] == ["HTTP 429"]


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict) or hasattr(value, "items"):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif value is not None:
        yield str(value)


def test_no_secret_or_token_in_any_span_or_log_record(app: App, exported: Exported) -> None:
    app.d365.knobs.throttle_burst = 1
    app.d365.knobs.retry_after = 0
    blobs = [app.upload(f"customers/USMF/secret-{n}.xml", VALID) for n in range(2)]
    blobs.append(app.upload("unrouted/secret.xml", VALID))
    app.run_until_terminal(blobs)
    app.get("health")

    texts: list[str] = []
    for span in exported.spans():
        texts.extend(_strings(span.name))
        texts.extend(_strings(span.attributes))
        for event in span.events:
            texts.extend(_strings(event.attributes))
    for record in exported.logs():
        texts.extend(_strings(record.body))
        texts.extend(_strings(record.attributes))
    assert len(texts) > 100
    for text in texts:
        assert fakes.CLIENT_SECRET not in text
        assert "Bearer" not in text
        assert "eyJ" not in text, text  # a JWT (every Entra token) starts so
        assert "sig=" not in text, text
