"""The DMF package API through the client, against the emulator: write URL, streamed PUT
without Authorization, ImportFromPackage (never re-sent blindly), status and error files."""

from __future__ import annotations

import io
import logging
import threading
import time

import pytest
import requests

from devtools.d365_emulator import Emulator
from shared.clients.d365 import (
    D365Client,
    D365ConnectionError,
    D365HttpError,
    D365ResponseError,
    D365UntrustedUrlError,
    ExecutionSummaryStatus,
)
from tests import package_files
from tests.shared.clients.d365.support import ClientFactory, received

MIB = 1024 * 1024
BLOCK = 4 * MIB


def _final(client: D365Client, d365: Emulator, execution_id: str) -> ExecutionSummaryStatus:
    """The execution's final status, moving the emulator clock (unpacking runs after the call)."""
    for _ in range(100):
        d365.clock.advance(5)
        status = client.get_execution_summary_status(execution_id).status
        if status is not None and status.is_terminal:
            return status
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not end")


def _upload(client: D365Client, data: bytes, name: str = "pkg-1.zip") -> str:
    write = client.get_azure_write_url(name)
    client.upload_package(write.url, lambda: io.BytesIO(data), length=len(data))
    return write.url


def test_write_url_is_parsed_from_the_json_string_and_the_braced_blob_id(
    client: D365Client,
) -> None:
    write = client.get_azure_write_url("customers-1.zip")
    assert "sig=" in write.url
    assert "{" not in write.blob_id and write.blob_id == write.blob_id.lower()
    assert "sig" not in repr(write)


def test_write_url_as_a_json_object_is_read_too(d365: Emulator, client: D365Client) -> None:
    d365.knobs.odata_values = {
        "GetAzureWriteUrl": {"BlobId": "{ABC}", "BlobUrl": "https://fno.localhost/dmf/x?sig=1"}
    }
    write = client.get_azure_write_url("x")
    assert (write.blob_id, write.url) == ("ABC", "https://fno.localhost/dmf/x?sig=1")


@pytest.mark.parametrize("value", ['{"BlobId": "{1}"}', '{"BlobId": "{1}", "BlobUrl": 7}'])
def test_write_url_without_a_url_is_a_response_error(
    d365: Emulator, client: D365Client, value: str
) -> None:
    d365.knobs.odata_values = {"GetAzureWriteUrl": value}
    with pytest.raises(
        D365ResponseError, match=r"expected BlobUrl to be a URL, got (none|a number)"
    ):
        client.get_azure_write_url("x")


@pytest.mark.parametrize(
    ("blob_url", "problem"),
    [
        ("ftp://x/dmf/a.zip?sig=s", "its scheme is 'ftp', not https"),
        ("/dmf/a.zip?sig=s", "it is not an absolute URL"),
        ("http://x/dmf/a.zip?sig=s", "its scheme is 'http', not https"),
    ],
)
def test_a_blob_url_of_any_unfit_scheme_is_refused_by_the_url_guard_unsent(
    d365: Emulator, client: D365Client, blob_url: str, problem: str
) -> None:
    """An ftp or relative BlobUrl was a ValueError (a D365ResponseError, retried for a day)
    while an http one was refused as untrusted; all three now meet the URL guard."""
    d365.knobs.odata_values = {
        "GetAzureWriteUrl": f'{{"BlobId": "{{1}}", "BlobUrl": "{blob_url}"}}'
    }
    write = client.get_azure_write_url("x")
    with pytest.raises(D365UntrustedUrlError, match=problem) as caught:
        client.upload_package(write.url, lambda: io.BytesIO(b"PK"), length=2)
    assert "sig=s" not in str(caught.value)
    assert received(d365, "blob_block") == received(d365, "blob_put") == []


def test_upload_stages_4_mib_blocks_and_commits_them_without_authorization(
    d365: Emulator, client: D365Client
) -> None:
    data = b"PK" + bytes(range(256)) * (9 * 4096)  # 9 MiB + 2 bytes: three blocks
    url = _upload(client, data)

    blocks = sorted(received(d365, "blob_block"), key=lambda r: r.query["blockid"])
    assert [(r.status, r.body_size) for r in blocks] == [
        (201, BLOCK),
        (201, BLOCK),
        (201, len(data) - 2 * BLOCK),
    ]
    assert len({len(r.query["blockid"]) for r in blocks}) == 1
    [commit] = received(d365, "blob_block_list")
    assert commit.status == 201
    assert commit.headers["x-ms-blob-content-type"] == "application/zip"
    assert all("Authorization" not in r.headers for r in [*blocks, commit])
    assert received(d365, "blob_put") == []
    stored = io.BytesIO()
    client.download_sas_file(url, stored)
    assert stored.getvalue() == data


def test_a_block_is_retried_after_a_dropped_connection(
    d365: Emulator, client: D365Client, sleeps: list[float]
) -> None:
    d365.knobs.operations = frozenset({"blob_block"})
    d365.knobs.drop_after_body_burst = 1
    _upload(client, b"PK package")
    assert [r.status for r in received(d365, "blob_block")] == [None, 201]
    assert [r.status for r in received(d365, "blob_block_list")] == [201]


def test_a_package_over_an_old_sas_versions_put_blob_limit_goes_up_in_blocks(
    d365: Emulator, client: D365Client
) -> None:
    """Finding 16: an SAS of version 2015-12-11 takes one Put Blob of at most 64 MiB (here
    lowered to 6 MiB) and Put Blocks of 4 MiB: a 9 MiB package goes through in blocks."""
    d365.knobs.sas_version = "2015-12-11"
    d365.knobs.put_blob_max_bytes = 6 * MIB
    data = bytes(9 * MIB)
    write = client.get_azure_write_url("old-version.zip")
    assert "sv=2015-12-11" in write.url

    refused = requests.put(
        write.url, data=data, headers={"x-ms-blob-type": "BlockBlob"}, timeout=30
    )
    client.upload_package(write.url, lambda: io.BytesIO(data), length=len(data))

    assert (refused.status_code, refused.headers["x-ms-error-code"]) == (
        413,
        "RequestBodyTooLarge",
    )
    assert [r.status for r in received(d365, "blob_block")] == [201, 201, 201]
    stored = io.BytesIO()
    client.download_sas_file(write.url, stored)
    assert stored.getvalue() == data


def test_import_of_a_valid_package_succeeds_with_our_execution_id(
    d365: Emulator, client: D365Client
) -> None:
    url = _upload(client, package_files.customers_package())
    execution = client.import_from_package(
        url, "CustomersPackage", "route-abc", legal_entity_id="USMF"
    )
    assert execution == "route-abc"
    assert client.get_execution_summary_status(execution).status in (
        ExecutionSummaryStatus.NOT_RUN,
        ExecutionSummaryStatus.EXECUTING,
    )
    assert _final(client, d365, execution) is ExecutionSummaryStatus.SUCCEEDED
    assert client.get_execution_errors(execution).errors == ()
    [call] = received(d365, "ImportFromPackage")
    assert b'"execute": true' in (call.body or b"") and b'"overwrite": true' in (call.body or b"")


def test_bad_rows_give_partial_success_row_errors_and_an_error_keys_file(
    d365: Emulator, client: D365Client
) -> None:
    url = _upload(client, package_files.customers_package(with_errors=True))
    execution = client.import_from_package(url, "CustomersPackage", "exec-bad")
    assert _final(client, d365, execution) is ExecutionSummaryStatus.PARTIALLY_SUCCEEDED
    assert client.get_execution_errors(execution).errors
    assert client.get_import_staging_error_file_url(execution, "Customers V3") is None
    assert client.generate_import_target_error_keys_file(execution, "Customers V3") is True
    assert client.get_import_target_error_keys_file_url(execution, "Customers V3") is None
    d365.clock.advance(2)
    keys_url = client.get_import_target_error_keys_file_url(execution, "Customers V3")
    assert keys_url
    out = io.BytesIO()
    client.download_sas_file(keys_url, out)
    assert out.getvalue().startswith(b"RECID\n")
    [get] = received(d365, "blob_get")
    assert "Authorization" not in get.headers


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (
            package_files.package([("Customers V3", "c.xml", b"<a/>")], with_manifest=False),
            "does not contain Manifest.xml",
        ),
        (
            package_files.package([("Customers V3", "c.xml", b"<a/>")], with_header=False),
            "does not contain PackageHeader.xml",
        ),
        (
            package_files.package([("Nope Entity", "c.xml", b"<a/>")]),
            "Entity Nope Entity does not exist in the target environment",
        ),
        (b"not a zip", "not a valid zip file"),
    ],
)
def test_a_bad_package_is_refused_with_fno_text(client: D365Client, data: bytes, text: str) -> None:
    url = _upload(client, data)
    with pytest.raises(D365HttpError, match=text) as caught:
        client.import_from_package(url, "CustomersPackage", "exec-x")
    assert caught.value.status_code == 400
    assert "sig=" not in str(caught.value)


def test_a_parallel_import_is_refused_and_counted(d365: Emulator, client: D365Client) -> None:
    d365.knobs.import_call_seconds = 1.0
    url = _upload(client, package_files.customers_package())
    first = threading.Thread(
        target=client.import_from_package, args=(url, "CustomersPackage", "exec-1")
    )
    first.start()
    try:
        for _ in range(100):
            if d365.packages.in_flight:
                break
            threading.Event().wait(0.01)
        with pytest.raises(D365HttpError, match="cannot run in parallel"):
            client.import_from_package(url, "CustomersPackage", "exec-2")
    finally:
        first.join()
    assert d365.packages.import_calls == 1
    assert d365.packages.max_in_flight == 2


def test_a_client_timeout_during_import_is_not_re_sent_and_f_and_o_goes_on(
    d365: Emulator, make_client: ClientFactory, sleeps: list[float]
) -> None:
    client = make_client(read_timeout=0.5)
    d365.knobs.import_call_seconds = 1.5
    url = _upload(client, package_files.customers_package())
    with pytest.raises(D365ConnectionError) as caught:
        client.import_from_package(url, "CustomersPackage", "exec-slow")
    assert caught.value.sent_body
    threading.Event().wait(1.5)
    # Recorded once the emulator answered (to nobody): one call, no re-send.
    assert len(received(d365, "ImportFromPackage")) == 1
    assert _final(client, d365, "exec-slow") is ExecutionSummaryStatus.SUCCEEDED
    assert d365.packages.import_calls == 1


def test_a_400_were_not_found_soon_after_import_reads_as_no_status_yet(
    d365: Emulator, client: D365Client
) -> None:
    d365.knobs.execution_not_found_seconds = 30
    url = _upload(client, package_files.customers_package())
    client.import_from_package(url, "CustomersPackage", "exec-early")
    summary = client.get_execution_summary_status("exec-early")
    assert (summary.status, summary.not_found) == (None, True)


def test_the_sas_never_reaches_a_log_line(
    client: D365Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = _upload(client, package_files.customers_package())
    client.import_from_package(url, "CustomersPackage", "exec-log")
    signature = url.split("sig=", 1)[1]
    # The app's own loggers and the HTTP stack's; the emulator (F&O's side) is not ours.
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("devtools")]
    assert ours and not [line for line in ours if signature in line]
