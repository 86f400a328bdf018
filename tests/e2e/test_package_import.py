"""The package route end to end through the local host: packages, plain files wrapped from
the template, a file too large to enqueue, a client timeout during ImportFromPackage, and two
host processes importing at once (never two calls in flight)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError

from devtools.azurite import Azurite
from devtools.d365_emulator import Emulator
from tests import package_files
from tests.e2e.conftest import TEMPLATES, TERMINAL, App, app_environment, host_process, stop_hosts

# The emulator's SAS signatures: 64 hex digits after sig=.
_SIGNATURE = re.compile(r"sig=[0-9a-f]{64}")
_CSV_HEADER = (
    b"CUSTOMERACCOUNT,CUSTOMERGROUPID,SALESCURRENCYCODE,ORGANIZATIONNAME,PARTYTYPE,"
    b"ADDRESSCOUNTRYREGIONID,CREDITLIMIT,PAYMENTTERMS,LANGUAGEID\r\n"
)


def _csv_rows(count: int) -> Iterator[bytes]:
    """A customers CSV of `count` valid rows, in blocks of 10,000 rows (about 1 MB)."""
    yield _CSV_HEADER
    for start in range(0, count, 10_000):
        yield "".join(
            f"US-{index:08d},10,USD,Fabrikam Sample Wholesale {index},Organization,USA,"
            "25000,Net30,en-us\r\n"
            for index in range(start, min(count, start + 10_000))
        ).encode()


def _template(app: App, input_file: str) -> None:
    container = app.blobs.get_container_client(TEMPLATES)
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    container.upload_blob(
        f"{app.folder}/customers.zip",
        package_files.template(input_file=input_file),
        overwrite=True,
    )


@pytest.fixture(autouse=True)
def _quick_executions(d365: Emulator) -> None:
    d365.knobs.package_run_seconds = 0.3
    d365.knobs.error_keys_seconds = 0.2


def test_a_package_over_zip_max_manifest_bytes_ends_enqueue_failed_naming_it(
    app_factory: Callable[..., App],
) -> None:
    """The ZIP_* settings reach the package route: nothing goes to F&O."""
    app = app_factory(ZIP_MAX_MANIFEST_BYTES="256")
    blob = app.upload("pkg/USMF/customers.zip", package_files.customers_package())

    record = app.run_until_terminal([blob])[blob]

    assert record["state"] == "EnqueueFailed"
    assert record["last_error"] == (
        f"package {blob!r} holds member 'Manifest.xml', which declares 510 bytes, over the "
        "256-byte limit of ZIP_MAX_MANIFEST_BYTES; F&O imported nothing: if the zip is genuine, "
        "raise ZIP_MAX_MANIFEST_BYTES; then resubmit the file (or upload it again)."
    )
    assert not [r for r in app.d365.requests if r.operation == "GetAzureWriteUrl"]


def test_a_valid_package_ends_processed(app: App) -> None:
    blob = app.upload("pkg/USMF/customers.zip", package_files.customers_package())
    record = app.run_until_terminal([blob])[blob]
    assert (record["state"], record["d365_status"], record["api"]) == (
        "Processed",
        "Succeeded",
        "package",
    )
    assert record["execution_id"] == f"pkg-{record['execution_id'].split('-', 1)[1]}"
    assert app.d365.packages.import_calls == 1


def test_bad_rows_give_row_errors_and_error_files_in_the_errors_container(app: App) -> None:
    blob = app.upload("pkg/USMF/customers.zip", package_files.customers_package(with_errors=True))
    record = app.run_until_terminal([blob])[blob]
    assert (record["state"], record["d365_status"]) == ("ProcessedWithErrors", "PartiallySucceeded")
    assert record["error_count"] > 0 and record["errors"]
    [location] = record["error_files"]
    container, _, name = location.partition("/")
    assert container == app.env["ERRORS_CONTAINER"]
    data = app.blobs.get_blob_client(container, name).download_blob().readall()
    assert data.startswith(b"RECID\n")


def test_a_plain_csv_is_wrapped_from_the_template_and_succeeds(app: App) -> None:
    _template(app, "Customers V3.csv")
    blob = app.upload("pkg-plain/USMF/customers.csv", b"".join(_csv_rows(20)))
    record = app.run_until_terminal([blob])[blob]
    assert (record["state"], record["d365_status"]) == ("Processed", "Succeeded")


def test_a_60_mb_file_on_an_enqueue_route_takes_the_package_path(app: App) -> None:
    _template(app, "Customers V3.csv")
    rows = 63 * 1000 * 1000 // 90
    name = f"{app.folder}/big/customers.csv"
    app.inbound.get_blob_client(name).upload_blob(_csv_rows(rows), overwrite=True)
    size = app.inbound.get_blob_client(name).get_blob_properties().size
    assert size >= 60 * 1000 * 1000
    record = app.run_until_terminal([name], timeout=240)[name]
    assert (record["state"], record["api"]) == ("Processed", "package")
    assert "on_too_large" in record["api_note"]
    assert not [r for r in app.d365.requests if r.operation == "enqueue"]
    blocks = [r for r in app.d365.requests if r.operation == "blob_block" and r.status == 201]
    assert sum(block.body_size for block in blocks) > size


def test_a_package_over_an_old_sas_versions_put_blob_limit_goes_up_in_blocks(
    app: App, d365: Emulator
) -> None:
    """Finding 16: F&O hands out SAS URLs of version 2015-12-11, whose Put Blob takes at most
    64 MiB (lowered to 4 MiB here to keep the file small) and Put Block 4 MiB: a 9 MB file
    wrapped from the template goes through in blocks."""
    d365.knobs.sas_version = "2015-12-11"
    d365.knobs.put_blob_max_bytes = 4 * 1024 * 1024
    _template(app, "Customers V3.csv")
    blob = app.upload("pkg-plain/USMF/customers.csv", b"".join(_csv_rows(100_000)))

    record = app.run_until_terminal([blob], timeout=120)[blob]

    assert (record["state"], record["d365_status"]) == ("Processed", "Succeeded")
    blocks = [r for r in d365.requests if r.operation == "blob_block"]
    assert len(blocks) == 3 and {r.status for r in blocks} == {201}
    assert max(r.body_size for r in blocks) == 4 * 1024 * 1024
    assert [r.status for r in d365.requests if r.operation == "blob_block_list"] == [201]
    assert [r for r in d365.requests if r.operation == "blob_put"] == []


def test_the_execution_id_f_and_o_answers_is_followed_and_shown_with_ours(
    app: App, d365: Emulator
) -> None:
    """Finding 17, over the HTTP API: F&O's execution id is followed, ours kept beside it."""
    d365.knobs.import_own_execution_id = True
    blob = app.upload("pkg/USMF/customers.zip", package_files.customers_package())

    record = app.run_until_terminal([blob])[blob]

    [fnos] = d365.packages.executions
    assert (record["state"], record["execution_id"]) == ("Processed", fnos)
    assert record["sent_execution_id"] == f"pkg-{record['record_id']}" != fnos


def test_a_client_timeout_during_import_is_recovered_by_its_execution_id(
    app_factory: object, d365: Emulator
) -> None:
    app = app_factory(D365_HTTP_TIMEOUT="1s")  # type: ignore[operator]
    d365.knobs.import_call_seconds = 2.0
    blob = app.upload("pkg/USMF/customers.zip", package_files.customers_package())
    record = app.run_until_terminal([blob], timeout=60)[blob]
    assert record["state"] == "Processed"
    assert "Importing" in [item["state"] for item in record["history"]]
    calls = [r for r in d365.requests if r.operation == "ImportFromPackage"]
    assert len(calls) == 1 and calls[0].status == 200  # answered, to a client gone
    assert d365.packages.import_calls == 1


def test_two_instances_never_have_two_imports_in_flight(
    d365: Emulator, azurite: Azurite, unique_name: str, tmp_path: Path, app_factory: object
) -> None:
    app = app_factory()  # type: ignore[operator]  # the HTTP API to read the records
    d365.knobs.import_call_seconds = 1.0
    env = {**os.environ, **app_environment(d365, azurite, unique_name, unique_name)}
    hosts = [host_process(env, tmp_path / f"host-{index}.log") for index in range(2)]
    try:
        blobs = [
            app.upload(f"pkg/USMF/customers-{index}.zip", package_files.customers_package())
            for index in range(4)
        ]
        deadline = time.monotonic() + 90
        while True:
            # Not tracked yet (404) until a host's listing fires for the blob.
            answers = {blob: app.get("messages", blob=blob) for blob in blobs}
            states = {b: r.json().get("state", "untracked") for b, r in answers.items()}
            if all(state in TERMINAL for state in states.values()):
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.5)
    finally:
        stop_hosts(hosts)
    assert set(states.values()) == {"Processed"}
    assert d365.packages.import_calls == 4
    assert d365.packages.max_in_flight == 1


def test_no_sas_signature_in_any_log_line_or_response(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _template(app, "Customers V3.csv")
    blobs = [
        app.upload("pkg/USMF/bad.zip", package_files.customers_package(with_errors=True)),
        app.upload("pkg-plain/USMF/customers.csv", b"".join(_csv_rows(5))),
    ]
    records = app.run_until_terminal(blobs)
    assert {r["state"] for r in records.values()} == {"ProcessedWithErrors", "Processed"}
    texts = [app.get("messages").text, *(app.get("messages", blob=b).text for b in blobs)]
    # The emulator plays F&O and storage: its own log lines are not the app's.
    texts += [r.getMessage() for r in caplog.records if not r.name.startswith("devtools")]
    leaks = [text[:300] for text in texts if _SIGNATURE.search(text)]
    assert not leaks
    assert any("sig=REDACTED" in text for text in texts)  # the redaction did run
