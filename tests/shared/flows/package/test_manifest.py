"""Templates and packages read (shared/flows/package/manifest.py): a broken, missing, replaced
or refused template or manifest ends the file naming it, before anything reaches F&O."""

from __future__ import annotations

import struct
import tracemalloc

import pytest

from shared.tracking import TrackingState
from tests import package_files
from tests.e2e.conftest import TEMPLATES
from tests.shared.conftest import scheduled
from tests.shared.flows.package.conftest import (
    Packaged,
    imports,
    nothing_sent,
    puts,
    resubmit,
    zip_of,
)

_MANIFEST = "Manifest.xml"


def test_a_missing_template_ends_the_file_naming_it_and_the_fix(packaged: Packaged) -> None:
    record = packaged.send("pkg-plain/USMF/customers.xml", b"<Document/>")
    assert record.state is TrackingState.ENQUEUE_FAILED
    assert "customers.zip' was not found" in (record.last_error or "")
    assert "upload the data project's exported package" in (record.last_error or "")
    assert "then resubmit the file" in (record.last_error or "")
    assert scheduled(packaged.domain.context.store, record.record_id) is None
    assert puts(packaged) == []
    packaged.upload_template()
    final = packaged.until_final(resubmit(packaged, record))
    assert final.state is TrackingState.PROCESSED


_DEFECT_TEXTS = {
    "bad-deflate": (
        "its deflate data is broken (Error -3 while decompressing data: invalid block type)"
    ),
    "encrypted": "it is encrypted (password-protected zips are not read)",
    "method-99": "it uses compression method 99 (AES); only deflate and no compression are read",
}


@pytest.mark.parametrize("defect", package_files.DEFECTS)
def test_a_broken_template_ends_the_file_at_once_naming_the_template_and_the_defect(
    packaged: Packaged, defect: str
) -> None:
    """Finding 4: zlib.error, RuntimeError and NotImplementedError escaped; the file sat
    Received and ended "last error: none"."""
    template = f"{TEMPLATES}/{packaged.domain.folder}/customers.zip"
    packaged.upload_template(
        package_files.break_member(package_files.template(), _MANIFEST, defect)
    )

    record = packaged.send("pkg-plain/USMF/customers.xml", b"<Document/>")

    assert record.state is TrackingState.ENQUEUE_FAILED
    assert record.last_error == (
        f"template package {template!r} is not a readable zip: member 'Manifest.xml': "
        f"{_DEFECT_TEXTS[defect]}; F&O imported nothing: build the zip again (deflate or no "
        "compression, no password); then resubmit the file (or upload it again)."
    )
    assert scheduled(packaged.domain.context.store, record.record_id) is None
    assert nothing_sent(packaged)


@pytest.mark.parametrize("defect", package_files.DEFECTS)
def test_a_package_whose_manifest_is_broken_ends_at_once_naming_the_defect(
    packaged: Packaged, defect: str
) -> None:
    """Finding 5: the same for an uploaded .zip whose Manifest.xml is broken."""
    data = package_files.break_member(package_files.customers_package(), _MANIFEST, defect)

    record = packaged.send("pkg/USMF/broken.zip", data)

    assert record.state is TrackingState.ENQUEUE_FAILED
    assert record.last_error == (
        f"package {record.blob!r} is not a readable zip: member 'Manifest.xml': "
        f"{_DEFECT_TEXTS[defect]}; F&O imported nothing: build the zip again (deflate or no "
        "compression, no password); then resubmit the file (or upload it again)."
    )
    assert scheduled(packaged.domain.context.store, record.record_id) is None
    assert nothing_sent(packaged)


def test_a_manifest_zip_bomb_is_refused_before_it_inflates(packaged: Packaged) -> None:
    """Finding 6: a 127 KB upload whose Manifest.xml inflates to 130 MB peaked at 270 MiB
    in the worker; now it is refused from the directory, naming the limit."""
    blob = packaged.domain.upload("pkg/USMF/bomb.zip", package_files.manifest_bomb(130_000_000))
    client = packaged.domain.context.blob_service.get_blob_client("d365-inbound", blob)

    tracemalloc.start()
    try:
        record = packaged.enqueuer.handle(client)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert record is not None and record.state is TrackingState.ENQUEUE_FAILED
    assert record.last_error == (
        f"package {blob!r} holds member 'Manifest.xml', which declares 130,000,000 bytes, over "
        "the 4,194,304-byte limit of ZIP_MAX_MANIFEST_BYTES; F&O imported nothing: if the zip "
        "is genuine, raise ZIP_MAX_MANIFEST_BYTES; then resubmit the file (or upload it again)."
    )
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1024 / 1024:.1f} MiB"
    assert nothing_sent(packaged)


def test_a_lying_manifest_header_is_caught_by_what_is_inflated(packaged: Packaged) -> None:
    """A directory that declares a small Manifest.xml over 30 MB of deflate: zipfile stops
    at the declared size, and the check of the data's CRC refuses it."""
    bomb = bytearray(package_files.manifest_bomb(30_000_000))
    central = bytes(bomb).index(b"PK\x01\x02")
    struct.pack_into("<L", bomb, central + 24, 1_000_000)  # its uncompressed size

    tracemalloc.start()
    try:
        record = packaged.send("pkg/USMF/liar.zip", bytes(bomb))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert record.state is TrackingState.ENQUEUE_FAILED
    assert "is not a readable zip: member 'Manifest.xml': Bad CRC-32" in (record.last_error or "")
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1024 / 1024:.1f} MiB"
    assert nothing_sent(packaged)


def _manifest_declaring(encoding: str) -> bytes:
    text = package_files.manifest("CustomersPackage", [("Customers V3", "Customers V3.xml")])
    return text.replace('encoding="utf-8"', f'encoding="{encoding}"', 1).encode()


_UNREADABLE_MANIFESTS = {
    "unknown-encoding": (
        _manifest_declaring("bogus"),
        "declares an encoding Python does not know (unknown encoding: bogus)",
    ),
    "multi-byte-encoding": (
        _manifest_declaring("utf-32"),
        "declares an encoding the XML parser does not read (multi-byte encodings are not "
        "supported)",
    ),
    "not-well-formed": (
        b"<DataManagementPackageManifest><PackageEntityList>",
        "is not well-formed XML (no element found: line 1, column 50)",
    ),
}


@pytest.mark.parametrize("kind", sorted(_UNREADABLE_MANIFESTS))
def test_a_package_whose_manifest_is_not_readable_xml_ends_at_once_naming_it(
    packaged: Packaged, kind: str
) -> None:
    """An encoding="bogus" manifest raised LookupError out of the upload: the file sat
    Received with no last_error and ended "last error: none"; utf-32 raised ValueError and
    was retried for a day."""
    manifest, problem = _UNREADABLE_MANIFESTS[kind]
    data = zip_of(
        {
            "Manifest.xml": manifest,
            "PackageHeader.xml": package_files.HEADER.encode(),
            "Customers V3.xml": package_files.CUSTOMERS_VALID.read_bytes(),
        }
    )

    record = packaged.send("pkg/USMF/unreadable.zip", data)

    assert record.state is TrackingState.ENQUEUE_FAILED
    assert record.last_error == (
        f"package {record.blob!r} has a Manifest.xml that {problem}; F&O imported nothing: "
        "export the package from F&O again, or save its Manifest.xml as well-formed UTF-8 "
        "XML; then resubmit the file (or upload it again)."
    )
    assert scheduled(packaged.domain.context.store, record.record_id) is None
    assert nothing_sent(packaged)


def _template_of(manifest: bytes) -> bytes:
    return zip_of({"Manifest.xml": manifest, "PackageHeader.xml": package_files.HEADER.encode()})


@pytest.mark.parametrize("kind", sorted(_UNREADABLE_MANIFESTS))
def test_a_template_whose_manifest_is_not_readable_xml_ends_the_file_naming_it(
    packaged: Packaged, kind: str
) -> None:
    """The same for a template; one not well-formed was reported as "names 0 entities"."""
    manifest, problem = _UNREADABLE_MANIFESTS[kind]
    packaged.upload_template(_template_of(manifest))
    template = f"{TEMPLATES}/{packaged.domain.folder}/customers.zip"

    record = packaged.send("pkg-plain/USMF/customers.xml", b"<Document/>")

    assert record.state is TrackingState.ENQUEUE_FAILED
    assert record.last_error == (
        f"template package {template!r} has a Manifest.xml that {problem}; export the data "
        "project's package from F&O again and upload it; then resubmit the file (or upload it "
        "again)."
    )
    assert nothing_sent(packaged)


def test_a_template_input_file_path_too_long_for_a_zip_ends_the_file_naming_it(
    packaged: Packaged,
) -> None:
    """An InputFilePath over 65,535 bytes made the zip writer raise struct.error out of the
    upload (the file sat Received and ended "last error: none")."""
    name = "C" * 65_532 + ".xml"
    packaged.upload_template(package_files.template(input_file=name))
    template = f"{TEMPLATES}/{packaged.domain.folder}/customers.zip"

    record = packaged.send("pkg-plain/USMF/customers.xml", b"<Document/>")

    assert record.state is TrackingState.ENQUEUE_FAILED
    assert record.last_error == (
        f"template package {template!r} names an InputFilePath of 65,536 bytes, and a zip "
        "member's name holds at most 65,535; set InputFilePath in its Manifest.xml to the "
        "data file's name (e.g. 'Customers V3.xml') and upload it again; then resubmit the "
        "file (or upload it again)."
    )
    assert nothing_sent(packaged)


@pytest.mark.parametrize("replacements", [1, 2])
def test_a_template_replaced_while_it_is_read_never_rejects_the_file(
    packaged: Packaged, replacements: int
) -> None:
    """The template's ranged reads are conditional on its ETag: a new template meanwhile
    (412) ended the inbound file Rejected "Superseded", a false reason. It is read again
    once; replaced again, the file is retried later."""
    packaged.upload_template()
    template = f"{TEMPLATES}/{packaged.domain.folder}/customers.zip"
    for _ in range(replacements):
        packaged.domain.faults.meanwhile("GET", template, packaged.upload_template)
    source = package_files.CUSTOMERS_VALID.read_bytes()

    record = packaged.send("pkg-plain/USMF/customers.xml", source)

    assert packaged.domain.faults.injected["meanwhile"] == replacements
    if replacements == 1:
        assert record.state is TrackingState.IMPORTING, record.last_error
    else:
        assert record.state is TrackingState.RECEIVED
        assert f"template package {template!r} was replaced while it was read, twice" in (
            record.last_error or ""
        )
        assert nothing_sent(packaged)
    final = packaged.until_final(record)
    assert (final.state, final.reject_reason) == (TrackingState.PROCESSED, None)
    assert imports(packaged) == 1
