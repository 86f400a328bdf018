"""The upload, the import lease and the package's size (shared/flows/package/importer.py), each
failure injected at its step."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from datetime import timedelta

import pytest

from shared.clients.d365 import _packages as d365_packages
from shared.flows.package import importer as package_importer
from shared.tracking import TrackingState
from tests import package_files
from tests.shared.conftest import Domain, scheduled
from tests.shared.flows.package.conftest import (
    Packaged,
    build_packaged,
    imports,
    nothing_sent,
    puts,
    zip_of,
)


def test_a_held_import_lease_makes_the_file_wait_not_fail(domain: Domain) -> None:
    packaged = build_packaged(domain)
    domain.d365.knobs.package_run_seconds = 1
    other = domain.context.store.import_lease.acquire(
        "other-instance", until=domain.clock() + timedelta(seconds=30)
    )
    assert other is not None
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert record.state is TrackingState.RECEIVED
    assert "in flight" in (record.last_error or "")
    assert imports(packaged) == 0
    # Checked before the upload: a busy environment costs no upload per try.
    assert puts(packaged) == []
    domain.context.store.import_lease.release(other)
    final = packaged.until_final(record)
    assert final.state is TrackingState.PROCESSED
    assert imports(packaged) == 1


@pytest.mark.parametrize("status", [400, 403, 413])
def test_a_put_the_storage_refuses_ends_the_file_with_the_fix(
    packaged: Packaged, status: int
) -> None:
    knobs = packaged.domain.d365.knobs
    knobs.operations = frozenset({"blob_block"})
    knobs.error_burst, knobs.error_status = 1, status

    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())

    assert record.state is TrackingState.ENQUEUE_FAILED
    assert f"HTTP {status}" in (record.last_error or "")
    assert "F&O imported nothing" in (record.last_error or "")
    assert "then resubmit the file" in (record.last_error or "")
    assert puts(packaged) == [status]
    assert imports(packaged) == 0
    assert scheduled(packaged.domain.context.store, record.record_id) is None
    if status == 413:
        assert "refused a part of the package" in (record.last_error or "")
        assert "through enqueue" not in (record.last_error or "")


@pytest.mark.parametrize("status", [408, 429, 503])
def test_a_put_that_fails_for_now_is_retried_later(packaged: Packaged, status: int) -> None:
    knobs = packaged.domain.d365.knobs
    knobs.operations = frozenset({"blob_block"})
    knobs.error_burst, knobs.error_status = 50, status

    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())

    assert record.state is TrackingState.RECEIVED
    assert f"HTTP {status}" in (record.last_error or "")
    knobs.error_burst = 0
    assert packaged.until_final(record).state is TrackingState.PROCESSED
    assert imports(packaged) == 1


_IMPORT_LEASE = "RowKey='~lease-package-import'"


@pytest.mark.parametrize(
    "fault",
    [
        ("POST", "", 0),  # the first import creates the lease row
        ("PUT", _IMPORT_LEASE, 0),  # a later one takes the row over
        ("PUT", _IMPORT_LEASE, 1),  # the release after ImportFromPackage answered
    ],
    ids=["acquire-insert", "acquire-takeover", "release"],
)
def test_an_import_lease_write_whose_answer_was_lost_is_still_ours(
    packaged: Packaged, fault: tuple[str, str, int]
) -> None:
    """Issue 17, finding 18: the import goes on at once (the lease is not taken for another
    instance's), and the lease is free for the next file."""
    method, row, skip = fault
    store = packaged.domain.context.store
    if row:
        first = packaged.send("pkg/USMF/first.zip", package_files.customers_package())
        assert first.state is TrackingState.IMPORTING
    packaged.domain.faults.fail("lost", method, row or store.table_name, skip=skip)

    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())

    assert packaged.domain.faults.injected["lost"] == 1
    assert record.state is TrackingState.IMPORTING, record.last_error
    assert store.import_lease.holder() is None
    later = packaged.send("pkg/USMF/later.zip", package_files.customers_package())
    assert later.state is TrackingState.IMPORTING, later.last_error
    assert imports(packaged) == (3 if row else 2)


def _package_of_many_entities(count: int) -> tuple[bytes, list[str]]:
    """A package whose manifest names ``count`` entities (one file serves them all)."""
    names = [f"CustCustomerV3Entity{' ' * (i % 7)}" for i in range(count)]
    manifest = package_files.manifest("CustomersPackage", [(n, "Customers V3.xml") for n in names])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Manifest.xml", manifest)
        archive.writestr("PackageHeader.xml", package_files.HEADER)
        archive.writestr("Customers V3.xml", package_files.CUSTOMERS_VALID.read_bytes())
    return buffer.getvalue(), [n.strip() for n in names]


def test_a_manifest_of_2000_entities_is_uploaded_once_and_imported(packaged: Packaged) -> None:
    """Finding 3: the entity names of a 2,000-entity manifest were too large for the row, so
    the Importing write failed after the upload, and the file was uploaded again at every
    claim lease until it ended EnqueueFailed "last error: none"."""
    data, names = _package_of_many_entities(2_000)

    record = packaged.send("pkg/USMF/many-entities.zip", data)

    assert record.state is TrackingState.IMPORTING
    assert record.package_entity_count == 2_000
    assert record.package_entities_blob is not None
    assert packaged.domain.context.store.list_package_entities(record) == tuple(names)
    execution = packaged.domain.d365.packages.executions[record.execution_id or ""]
    for _ in range(600):  # the emulator imports the 2,000 entities in the background
        if execution.entities:
            break
        time.sleep(0.1)
    final = packaged.until_final(record)
    assert final.state is TrackingState.PROCESSED
    assert puts(packaged) == [201, 201]  # one Put Block, one Put Block List: uploaded once
    writes = [r for r in packaged.domain.d365.requests if r.operation == "GetAzureWriteUrl"]
    assert len(writes) == 1
    assert imports(packaged) == 1


_UNFIT_BLOB_URLS = {
    "http": ("http://", "http://127.0.0.1:{port}/dmf/", "its scheme is 'http', not https"),
    "ftp": ("ftp://", "ftp://127.0.0.1:{port}/dmf/", "its scheme is 'ftp', not https"),
    "relative": ("/", "/dmf/", "it is not an absolute URL"),
}


@pytest.mark.parametrize("kind", sorted(_UNFIT_BLOB_URLS))
def test_a_blob_url_that_is_no_sas_url_of_f_and_o_storage_ends_the_file_unsent(
    packaged: Packaged, kind: str
) -> None:
    """Finding 8: GetAzureWriteUrl's BlobUrl over plain http is refused before a byte is sent.
    One of another scheme, or relative, was a D365ResponseError retried for a day: the URL
    guard refuses all three the same way."""
    start, shown, problem = _UNFIT_BLOB_URLS[kind]
    d365 = packaged.domain.d365
    url = d365.blobs.write_url("customers.zip")
    unfit = start + url.split("://", 1)[1].split("/", 1)[1] if kind == "relative" else url
    unfit = unfit.replace("https://", start, 1)
    d365.knobs.odata_values = {
        "GetAzureWriteUrl": json.dumps(
            {"BlobId": "{00000000-0000-0000-0000-0000000000b1}", "BlobUrl": unfit}
        )
    }

    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())

    assert record.state is TrackingState.ENQUEUE_FAILED
    text = record.last_error or ""
    assert f"refused the BlobUrl F&O handed out, {shown.format(port=d365.port)}" in text
    assert problem in text
    assert "Nothing was sent to it" in text and "then resubmit the file" in text
    assert "sig=" not in text
    assert puts(packaged) == []
    assert imports(packaged) == 0


def _stored_template(manifest_bytes: int) -> bytes:
    """A template (stored, not deflated) whose Manifest.xml is padded to about
    ``manifest_bytes`` with a comment of random hex."""
    manifest = package_files.manifest("CustomersPackage", [("Customers V3", "Customers V3.xml")])
    padding = os.urandom(manifest_bytes // 2).hex()
    return zip_of(
        {
            "Manifest.xml": f"{manifest}<!-- {padding} -->\n".encode(),
            "PackageHeader.xml": package_files.HEADER.encode(),
        },
        zipfile.ZIP_STORED,
    )


def test_a_package_over_what_a_block_blob_holds_is_refused_before_get_azure_write_url(
    domain: Domain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package path keeps 1 MiB for what a template adds, but Manifest.xml may be 4 MiB:
    a file near the limit made upload_package raise ValueError after GetAzureWriteUrl,
    retried for a day. Scaled down: a block blob of 1 block of 4 MiB."""
    monkeypatch.setattr(package_importer, "MAX_BLOCKS", 1)
    monkeypatch.setattr(d365_packages, "MAX_BLOCKS", 1)
    packaged = build_packaged(domain, package_max_bytes=3 << 20)
    packaged.upload_template(_stored_template(3 << 19))

    record = packaged.send("pkg-plain/USMF/customers.xml", b"x" * (3 << 20))

    assert record.state is TrackingState.ENQUEUE_FAILED
    text = record.last_error or ""
    assert f"the package for {record.blob!r} would be 4,7" in text
    assert "bytes, over the 4,194,304 bytes a block blob holds (1 blocks of 4 MiB)" in text
    assert "F&O imported nothing: split the data into smaller files" in text
    assert nothing_sent(packaged)
