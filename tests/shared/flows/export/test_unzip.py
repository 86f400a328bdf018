"""The unzip of an exported package: members written, packages refused by the zip limits
kept unopened."""

from __future__ import annotations

import io
import zipfile
from contextlib import nullcontext
from dataclasses import replace

import pytest

from devtools.d365_emulator._exports import customers_export, export_package
from shared.config.exports import ExportRoute
from shared.flows.export import Exporter
from shared.tracking import ExportState
from shared.views.exports import list_exports
from shared.zips import ZipLimits
from tests import fakes, package_files
from tests.shared.conftest import Domain
from tests.shared.flows.export.conftest import (
    REDELIVERY,
    assert_given_up_and_acked,
    blobs,
    downloads,
    given_up_text,
    kept,
    make_exporter,
)


def test_an_export_that_is_not_a_zip_is_kept_given_up_and_acked_on_an_unzip_route(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    unzip = replace(route, prefix="pkg/{message_id}/", unzip=True)
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)

    exporter.run_route(unzip)

    error = assert_given_up_and_acked(domain, exporter, route, message_id, customers_export())
    assert error == (
        f"the exported package of message {message_id} is not a zip file: it does not start "
        f"with a zip entry (PK\\x03\\x04). {given_up_text(route, message_id)}"
    )


def _corrupt_deflate_package() -> bytes:
    """A zip whose one member's compressed data is junk: zipfile raises zlib.error on it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Customers V3.xml", customers_export() * 50)
    data = bytearray(buffer.getvalue())
    start = 30 + len("Customers V3.xml")  # the local file header, then the compressed data
    data[start : start + 64] = b"\xff" * 64  # deflate block type 3: invalid
    return bytes(data)


def test_a_corrupt_package_member_is_given_up_once_and_the_tick_goes_on(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    unzip = replace(route, prefix="pkg/{message_id}/", unzip=True)
    package = _corrupt_deflate_package()
    corrupt = domain.d365.add_export(fakes.EXPORT_ACTIVITY_ID, package)
    valid = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID, file_format="package")

    exporter.run_route(unzip)

    assert exporter.store.get(valid).state is ExportState.ACKED
    assert len([name for name in blobs(domain, route) if name.startswith(f"pkg/{valid}/")]) == 3
    error = assert_given_up_and_acked(domain, exporter, route, corrupt, package)
    assert error == (
        f"the exported package of message {corrupt} is not a readable zip: member 'Customers "
        "V3.xml': its deflate data is broken (Error -3 while decompressing data: invalid block "
        f"type). {given_up_text(route, corrupt)}"
    )
    domain.d365.clock.advance(REDELIVERY)
    exporter.run_route(unzip)
    assert downloads(domain) == 2  # F&O offers neither again


def test_an_unzip_of_many_members_with_long_names_is_recorded_and_acked(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    """Finding 2: the blob names of a 150-member unzip were too large for the row, so the
    Downloaded write failed, nothing was acked and every member was written again for ever."""
    unzip = replace(route, prefix="pkg/{message_id}/", unzip=True)
    message_id = domain.d365.add_export(
        fakes.EXPORT_ACTIVITY_ID, package_files.many_members(150, customers_export())
    )

    exporter.run_route(unzip)

    record = exporter.store.get(message_id)
    assert record.state is ExportState.ACKED
    assert domain.d365.messages[message_id].state == "Acked"
    written = sorted(name for name in blobs(domain, route) if name.startswith("pkg/"))
    assert len(written) == 150
    assert record.blob_count == 150
    assert 0 < len(record.blobs) < 150
    assert sorted(exporter.store.list_blobs(record)) == written
    container, _, name = (record.blobs_blob or "").partition("/")
    assert container == domain.context.settings.errors_container
    assert name.startswith(f"exports/{message_id}/blobs-")
    status, body = list_exports(domain.context, message_id, {"direction": "export"})
    assert (status, sorted(body["blobs"]), body["blob_count"]) == (200, written, 150)


def test_a_package_that_inflates_a_thousandfold_is_kept_unopened_naming_the_ratio(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    """Finding 7: a 65 KB package wrote 64 MiB; no limit of size, ratio, total or count."""
    unzip = replace(route, prefix="pkg/{message_id}/", unzip=True)
    bomb = package_files.member_bomb("Customers V3.xml", 64 * 1024 * 1024)
    assert len(bomb) < 66_000
    message_id = domain.d365.add_export(fakes.EXPORT_ACTIVITY_ID, bomb)

    exporter.run_route(unzip)

    error = assert_given_up_and_acked(domain, exporter, route, message_id, bomb)
    compressed = zipfile.ZipFile(io.BytesIO(bomb)).getinfo("Customers V3.xml").compress_size
    assert error == (
        f"the exported package of message {message_id} holds member 'Customers V3.xml', which "
        f"declares 67,108,864 bytes from {compressed:,} compressed, over the ratio of 200 to 1 "
        "of ZIP_MAX_RATIO (a zip bomb, or data that compresses unusually well). "
        f"{given_up_text(route, message_id)}; if it is genuine, unzip it from there, and raise "
        "ZIP_MAX_RATIO for the next ones"
    )


@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        (
            ZipLimits(max_members=2),
            "holds 3 members, over the limit of 2 of ZIP_MAX_MEMBERS",
        ),
        (
            ZipLimits(max_member_bytes=1000, max_total_bytes=10_000),
            "holds member 'Customers V3.xml', which declares 1,282 bytes, over the 1,000-byte "
            "limit of ZIP_MAX_MEMBER_BYTES",
        ),
        (
            ZipLimits(max_total_bytes=2000),
            "declares 2,230 bytes in all, over the 2,000-byte limit of ZIP_MAX_TOTAL_BYTES",
        ),
    ],
)
def test_a_package_over_a_limit_writes_no_member(
    domain: Domain, route: ExportRoute, limits: ZipLimits, problem: str
) -> None:
    unzip = replace(route, prefix="pkg/{message_id}/", unzip=True)
    package = export_package()
    message_id = domain.d365.add_export(fakes.EXPORT_ACTIVITY_ID, package)

    with make_exporter(domain, unzip, zip_limits=limits) as exporter:
        exporter.run_route(unzip)

    error = assert_given_up_and_acked(domain, exporter, route, message_id, package)
    assert error.startswith(f"the exported package of message {message_id} {problem}. Given up")


def test_members_committed_before_a_refusal_are_named_and_listed(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    """A member refused part way, after others were committed: the record named only the
    package kept unopened, hiding the members already written."""
    unzip = replace(route, prefix="pkg/{message_id}/", unzip=True)
    package = package_files.break_member(export_package(), "Customers V3.xml", "bad-deflate")
    message_id = domain.d365.add_export(fakes.EXPORT_ACTIVITY_ID, package)

    exporter.run_route(unzip)

    folder = f"pkg/{message_id}/"
    members = (f"{folder}Manifest.xml", f"{folder}PackageHeader.xml")
    record = exporter.store.get(message_id)
    assert record.state is ExportState.EXPORT_FAILED and record.acked_at is not None
    assert record.blobs == (*members, kept(route, message_id))
    assert sorted(n for n in blobs(domain, route) if n.startswith(folder)) == sorted(record.blobs)
    assert (record.error or "").endswith(
        f"{given_up_text(route, message_id)}; 2 members written before the refusal stay beside "
        f"it ('{route.container}/{members[0]}', '{route.container}/{members[1]}')"
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [("Customers.csv", "Customers.csv"), ("data/Customers.csv", "data\\Customers.csv")],
    ids=["same-name", "same-blob"],
)
def test_a_package_with_two_members_for_one_blob_is_kept_unopened(
    domain: Domain, exporter: Exporter, route: ExportRoute, first: str, second: str
) -> None:
    """The second member's commit met the first's blob (ours, by its metadata) and was taken
    for a retry's: its bytes were lost while the record said written."""
    buffer = io.BytesIO()
    with (
        pytest.warns(UserWarning, match="Duplicate name") if first == second else nullcontext(),
        zipfile.ZipFile(buffer, "w") as archive,
    ):
        archive.writestr(first, b"first")
        archive.writestr(second, b"second")
    package = buffer.getvalue()
    unzip = replace(route, prefix="pkg/{message_id}/", unzip=True)
    message_id = domain.d365.add_export(fakes.EXPORT_ACTIVITY_ID, package)

    exporter.run_route(unzip)

    error = assert_given_up_and_acked(domain, exporter, route, message_id, package)
    assert error.startswith(
        f"the exported package of message {message_id} holds two members written to one blob "
        f"({second!r}). Given up"
    )
