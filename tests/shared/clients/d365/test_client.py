"""Every call of the F&O client against the emulator over HTTPS, and the tolerance rules."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, StorageStreamDownloader

from devtools.d365_emulator import Emulator, MessageIdFormat
from shared.clients.d365 import (
    D365Client,
    D365UntrustedUrlError,
    ExecutionError,
    ExecutionSummaryStatus,
    MessageStatus,
)
from tests import fakes
from tests.shared.clients.d365.support import ClientFactory, received, sha256, stored_bytes

CUSTOMERS = b"<Document><CUSTCUSTOMERV3ENTITY/></Document>"


def test_enqueue_sends_the_file_with_entity_company_and_external_id(
    client: D365Client, d365: Emulator
) -> None:
    braced_upper = "{" + fakes.CUSTOMERS_ACTIVITY_ID.upper() + "}"
    result = client.enqueue(
        braced_upper,
        CUSTOMERS,
        entity="CustomersV3",
        company="usmf",
        external_id="customers 01.xml",
    )

    [request] = received(d365, "enqueue")
    assert request.path == f"/api/connector/enqueue/{fakes.CUSTOMERS_ACTIVITY_ID}"
    assert request.query == {"entity": "CustomersV3", "company": "usmf"}
    assert request.headers["x-ms-dyn-externalidentifier"] == "customers 01.xml"
    assert request.headers["Content-Length"] == str(len(CUSTOMERS))
    assert request.headers["Authorization"] == "REDACTED"
    assert request.body_sha256 == sha256(CUSTOMERS)
    message = d365.messages[result.message_id]
    assert (message.entity, message.company, message.external_id) == (
        "CustomersV3",
        "USMF",
        "customers 01.xml",
    )
    assert result.raw_message_id == json.dumps(result.message_id)


def test_enqueue_without_entity_or_company_sends_no_query(
    client: D365Client, d365: Emulator
) -> None:
    client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"PK\x03\x04 package")
    [request] = received(d365, "enqueue")
    assert request.query == {}
    assert "x-ms-dyn-externalidentifier" not in request.headers


def test_enqueue_external_id_outside_ascii_is_percent_encoded(
    client: D365Client, d365: Emulator
) -> None:
    client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"x", external_id="Kunden\u00fc.zip")
    [request] = received(d365, "enqueue")
    assert request.headers["x-ms-dyn-externalidentifier"] == "Kunden%C3%BC.zip"


@pytest.mark.parametrize("form", list(MessageIdFormat))
def test_enqueue_reads_every_message_id_format(
    client: D365Client, d365: Emulator, form: MessageIdFormat
) -> None:
    d365.knobs.message_id_format = form
    result = client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"package")
    assert result.message_id in d365.messages
    assert result.message_id == result.message_id.lower()
    assert result.message_id.strip("{}\"'") == result.message_id
    assert result.message_id.lower() in result.raw_message_id.lower()


def test_enqueue_streams_a_callable_body_with_its_file_size(
    make_client: ClientFactory, d365: Emulator, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 40_000  # 10 MB: ten 1 MiB chunks
    path = tmp_path / "big.xml"
    path.write_bytes(data)
    opened: list[int] = []

    def open_body() -> io.BufferedReader:
        opened.append(1)
        return path.open("rb")

    client = make_client(chunk_size=1024 * 1024)
    result = client.enqueue(fakes.PACKAGE_ACTIVITY_ID, open_body, external_id="big.xml")

    assert len(opened) == 1
    [request] = received(d365, "enqueue")
    assert request.headers["Content-Length"] == str(len(data))
    assert "Transfer-Encoding" not in request.headers
    assert request.body_sha256 == sha256(data)
    assert stored_bytes(d365, result.message_id) == data


def test_enqueue_seekable_stream_is_sent_from_its_position(
    client: D365Client, d365: Emulator
) -> None:
    stream = io.BytesIO(b"HEADER-SKIPPED|payload bytes")
    stream.seek(len(b"HEADER-SKIPPED|"))
    result = client.enqueue(fakes.PACKAGE_ACTIVITY_ID, stream)
    assert stored_bytes(d365, result.message_id) == b"payload bytes"


def test_enqueue_of_an_empty_body_sends_content_length_zero(
    client: D365Client, d365: Emulator
) -> None:
    client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"")
    [request] = received(d365, "enqueue")
    assert request.headers["Content-Length"] == "0"
    assert request.body_size == 0


def test_enqueue_logs_one_info_line(client: D365Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shared.clients.d365")
    result = client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"12345", external_id="p.zip")
    [line] = [r.getMessage() for r in caplog.records if r.name.startswith("shared.clients.d365")]
    assert line.startswith(f"enqueued activity={fakes.PACKAGE_ACTIVITY_ID} external_id=p.zip ")
    assert f"message_id={result.message_id} bytes=5 " in line


def test_message_lifecycle_status_execution_id_errors_and_summary(
    client: D365Client, d365: Emulator
) -> None:
    errors = [
        {"RecordId": "5637144576", "Field": "CustomerGroupId", "ErrorMessage": "Group missing"},
        {"RecordId": "5637144577", "Field": "", "ErrorMessage": "Second"},
    ]
    d365.set_outcome(fakes.CUSTOMERS_ACTIVITY_ID, "ProcessedWithErrors", errors)
    message_id = client.enqueue(fakes.CUSTOMERS_ACTIVITY_ID, CUSTOMERS, entity="CustomersV3")
    message_id = message_id.message_id

    first = client.get_message_status(message_id)
    assert (first.status, first.raw, first.is_terminal) == (
        MessageStatus.ENQUEUED,
        "Enqueued",
        False,
    )
    assert client.get_execution_id(message_id) is None  # all-zero GUID until preprocessing

    d365.clock.advance(d365.knobs.enqueued_seconds + 0.1)
    assert client.get_message_status(message_id).status is MessageStatus.PREPROCESSING
    execution_id = client.get_execution_id(message_id)
    assert execution_id == d365.messages[message_id].execution_id
    summary = client.get_execution_summary_status(execution_id)
    assert summary.status is ExecutionSummaryStatus.NOT_RUN
    assert not summary.is_terminal

    d365.clock.advance(d365.knobs.preprocessing_seconds + d365.knobs.processing_seconds)
    final = client.get_message_status(message_id)
    assert final.status is MessageStatus.PROCESSED_WITH_ERRORS
    assert final.is_terminal
    found = client.get_execution_errors(execution_id)
    assert found.strict
    assert json.loads(found.raw) == errors
    assert found.errors == (
        ExecutionError("5637144576", "CustomerGroupId", "Group missing"),
        ExecutionError("5637144577", "", "Second"),
    )
    summary = client.get_execution_summary_status(execution_id)
    assert (summary.status, summary.raw) == (
        ExecutionSummaryStatus.PARTIALLY_SUCCEEDED,
        "PartiallySucceeded",
    )
    assert summary.is_terminal

    request = received(d365, "GetExecutionIdByMessageId")[0]
    assert json.loads(request.body or b"") == {"_messageId": message_id}
    assert request.headers["Accept"] == "application/json"


def test_status_variants_map_to_the_documented_names(client: D365Client, d365: Emulator) -> None:
    d365.knobs.status_variants = True
    d365.set_outcome(fakes.PACKAGE_ACTIVITY_ID, "PostProcessingFailed")
    message_id = client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"pkg").message_id

    d365.clock.advance(d365.knobs.enqueued_seconds + 0.1)
    pre = client.get_message_status(message_id)
    assert (pre.status, pre.raw) == (MessageStatus.PREPROCESSING, "PreProcessing")

    d365.clock.advance(d365.knobs.preprocessing_seconds + d365.knobs.processing_seconds)
    post = client.get_message_status(message_id)
    assert (post.status, post.raw, post.is_terminal) == (
        MessageStatus.POST_PROCESSING_FAILED,
        "PostProcessingError",
        True,
    )


def test_unknown_status_is_kept_raw_and_not_terminal(client: D365Client, d365: Emulator) -> None:
    d365.set_outcome(fakes.PACKAGE_ACTIVITY_ID, "Archived", summary="Shelved")
    message_id = client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"pkg").message_id
    d365.clock.advance(60)
    status = client.get_message_status(message_id)
    assert (status.status, status.raw, status.is_terminal) == (None, "Archived", False)
    execution_id = client.get_execution_id(message_id)
    assert execution_id is not None
    summary = client.get_execution_summary_status(execution_id)
    assert (summary.status, summary.raw, summary.is_terminal) == (None, "Shelved", False)


def test_execution_errors_with_raw_quotes_and_newlines_parse_tolerantly(
    client: D365Client, d365: Emulator
) -> None:
    errors = [
        {"RecordId": "1", "Field": "Color", "ErrorMessage": 'The value "Blue" is not valid.\r\n'},
        {"RecordId": "2", "Field": "Name", "ErrorMessage": 'Line one\nline "two", end'},
    ]
    d365.knobs.execution_errors_raw = True
    d365.set_outcome(fakes.PACKAGE_ACTIVITY_ID, "ProcessedWithErrors", errors)
    message_id = client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"pkg").message_id
    d365.clock.advance(60)
    execution_id = client.get_execution_id(message_id)
    assert execution_id is not None

    found = client.get_execution_errors(execution_id)

    assert not found.strict
    assert '"Blue"' in found.raw
    assert found.errors == (
        ExecutionError("1", "Color", 'The value "Blue" is not valid.\r\n'),
        ExecutionError("2", "Name", 'Line one\nline "two", end'),
    )


def test_unknown_ids_read_as_not_assigned_and_unknown(client: D365Client) -> None:
    unknown = "11111111-2222-3333-4444-555555555555"
    assert client.get_execution_id(unknown) is None
    summary = client.get_execution_summary_status("Nope-2024-01-01T00:00:00-ABC")
    assert summary.status is ExecutionSummaryStatus.UNKNOWN
    assert client.get_execution_errors("Nope-2024-01-01T00:00:00-ABC").errors == ()


@pytest.mark.parametrize("http_location", [False, True])
def test_export_dequeue_download_ack(
    client: D365Client, d365: Emulator, http_location: bool
) -> None:
    d365.knobs.download_location_http = http_location
    data = b"PK\x03\x04" + bytes(range(256)) * 5000
    correlation_id = d365.add_export(fakes.EXPORT_ACTIVITY_ID, data)

    message = client.dequeue(fakes.EXPORT_ACTIVITY_ID)
    assert message is not None
    assert message.correlation_id == correlation_id
    assert message.download_location.startswith("http://" if http_location else "https://")
    destination = io.BytesIO()
    assert client.download(message.download_location, destination, chunk_size=4096) == len(data)
    assert destination.getvalue() == data
    client.ack(fakes.EXPORT_ACTIVITY_ID, message)

    assert d365.messages[correlation_id].state == "Acked"
    [ack] = received(d365, "ack")
    assert json.loads(ack.body or b"") == json.loads(message.raw)
    assert ack.headers["Content-Type"].startswith("application/json")
    assert client.dequeue(fakes.EXPORT_ACTIVITY_ID) is None


def test_ack_without_the_raw_body_posts_the_three_fields(
    client: D365Client, d365: Emulator
) -> None:
    d365.add_export(fakes.EXPORT_ACTIVITY_ID, b"data")
    message = client.dequeue(fakes.EXPORT_ACTIVITY_ID)
    assert message is not None
    client.ack(fakes.EXPORT_ACTIVITY_ID, type(message)(
        correlation_id=message.correlation_id,
        pop_receipt=message.pop_receipt,
        download_location=message.download_location,
    ))  # fmt: skip
    assert d365.messages[message.correlation_id].state == "Acked"


def test_download_rewinds_a_seekable_destination_on_retry(
    client: D365Client, d365: Emulator
) -> None:
    data = b"export" * 1000
    d365.add_export(fakes.EXPORT_ACTIVITY_ID, data)
    message = client.dequeue(fakes.EXPORT_ACTIVITY_ID)
    assert message is not None
    d365.knobs.error_status = 500
    d365.knobs.error_burst = 1
    destination = io.BytesIO()
    assert client.download(message.download_location, destination) == len(data)
    assert destination.getvalue() == data
    assert len(received(d365, "download")) == 2


def test_download_refuses_another_host(client: D365Client) -> None:
    with pytest.raises(D365UntrustedUrlError, match="not F&O's own origin"):
        client.download("https://elsewhere.example/api/connector/download/x", io.BytesIO())


def test_scope_is_the_lower_case_base_url_without_slash(
    make_client: ClientFactory, d365: Emulator
) -> None:
    upper = d365.base_url.upper().replace("HTTPS://", "https://") + "/"
    client = make_client(base_url=upper)
    assert client.scope == d365.base_url.lower() + "/.default"
    assert client.base_url == upper.rstrip("/")
    assert client.dequeue(fakes.EXPORT_ACTIVITY_ID) is None
    assert repr(client) == f"D365Client(base_url={upper.rstrip('/')!r})"


def test_enqueue_streams_a_blob_download_and_reopens_it_on_retry(
    client: D365Client,
    d365: Emulator,
    sleeps: list[float],
    storage_connection_string: str,
    unique_name: str,
) -> None:
    blobs = BlobServiceClient.from_connection_string(storage_connection_string)
    container = blobs.create_container(unique_name)
    data = os.urandom(9 * 1024 * 1024)
    container.upload_blob("in/customers.xml", data)
    downloads: list[StorageStreamDownloader[bytes]] = []

    def open_blob() -> StorageStreamDownloader[bytes]:
        downloads.append(container.download_blob("in/customers.xml"))
        return downloads[-1]

    d365.knobs.throttle_burst = 1
    result = client.enqueue(fakes.PACKAGE_ACTIVITY_ID, open_blob, external_id="customers.xml")

    assert len(downloads) == 2
    assert sleeps == [1.0]
    assert [r.headers["Content-Length"] for r in received(d365, "enqueue")] == [str(len(data))] * 2
    assert stored_bytes(d365, result.message_id) == data
