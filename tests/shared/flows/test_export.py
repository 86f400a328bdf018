"""The exporter's steps against Azurite and the emulator, each with the failure its module
docstring names injected at exactly that step."""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from devtools.d365_emulator._exports import customers_export, export_package
from shared.clients.d365 import D365Client, RetryPolicy
from shared.config.exports import ExportRoute, ExportRoutes
from shared.flows.export import Exporter, ExportPolicy, ExportTickResult
from shared.tracking import ExportState
from shared.views.exports import list_exports
from shared.zips import ZipLimits
from tests import fakes, package_files
from tests.shared.conftest import Domain

REDELIVERY = 1801
WRITE_TRIES = 3 * 4
"""Tries of one record write: 3 conditional writes (a lost answer is read back), each the
SDK's call with its 3 retries. Failing them all fails the write; the next write goes through."""
BLOCK = 256 * 1024


@pytest.fixture
def route(unique_name: str) -> ExportRoute:
    return ExportRoute(
        name="customers-out",
        activity_id=fakes.EXPORT_ACTIVITY_ID,
        container=f"{unique_name}-exports",
        prefix="out/{date}/",
        extension=".xml",
    )


@pytest.fixture
def exporter(domain: Domain, route: ExportRoute) -> Iterator[Exporter]:
    with _exporter(domain, route) as built:
        yield built


@contextlib.contextmanager
def _exporter(domain: Domain, route: ExportRoute, **policy: Any) -> Iterator[Exporter]:
    """An exporter of ``route`` on the domain; ``policy``: ExportPolicy fields to change."""
    client = D365Client(
        domain.context.settings.d365.base_url,
        domain.context.credential,
        retry=RetryPolicy(backoff_base=0.01, backoff_max=0.05, default_retry_after=0.01),
    )
    yield Exporter(
        domain.context.exporter.store,
        client,
        domain.context.blob_service,
        ExportRoutes((route,)),
        policy=ExportPolicy(block_size=BLOCK, blocks_in_flight=2, **policy),
        clock=domain.clock,
    )
    client.close()


def _blobs(domain: Domain, route: ExportRoute) -> dict[str, bytes]:
    container = domain.context.blob_service.get_container_client(route.container)
    return {b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}


def _downloads(domain: Domain) -> int:
    return sum(1 for r in domain.d365.requests if r.operation == "download" and r.status == 200)


def test_record_write_lost_after_the_commit_acks_on_redelivery_without_writing(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    # The Downloaded write of the record fails for good: the process "dies" after the commit.
    domain.faults.fail("reset", "PUT", f"RowKey='{message_id}'", times=1000)

    result = exporter.tick()

    assert result.errors
    assert list(_blobs(domain, route).values()) == [customers_export()]
    record = exporter.store.get(message_id)
    assert record is not None and record.state is ExportState.DEQUEUED
    assert domain.d365.messages[message_id].state != "Acked"

    domain.faults.clear()
    domain.d365.clock.advance(REDELIVERY)
    exporter.tick()

    assert len(_blobs(domain, route)) == 1
    assert _downloads(domain) == 1
    record = exporter.store.get(message_id)
    assert record is not None and record.state is ExportState.ACKED
    assert record.history[-2][2] == "found committed; not again"
    assert domain.d365.messages[message_id].state == "Acked"


def test_a_block_that_cannot_be_staged_leaves_no_blob(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    data = bytes(range(256)) * (4 * BLOCK // 256)
    message_id = domain.d365.add_export(fakes.EXPORT_ACTIVITY_ID, data)
    domain.faults.fail("reset", "PUT", "comp=block&", skip=1, times=1000)

    exporter.tick()

    blob = domain.context.blob_service.get_blob_client(
        route.container, exporter.store.get(message_id).target
    )
    with pytest.raises(ResourceNotFoundError):
        blob.get_blob_properties()
    record = exporter.store.get(message_id)
    assert record.state is ExportState.EXPORT_FAILED
    assert "download not written" in (record.error or "")

    domain.faults.clear()
    domain.d365.clock.advance(REDELIVERY)
    exporter.tick()

    assert list(_blobs(domain, route).values()) == [data]
    assert exporter.store.get(message_id).state is ExportState.ACKED


def test_the_dequeued_write_failing_downloads_nothing(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    table = "s" + domain.folder.replace("-", "")
    domain.faults.fail("reset", "POST", table, skip=1, times=1000)  # the record insert

    exporter.tick()

    assert _downloads(domain) == 0
    assert exporter.store.get(message_id) is None

    domain.faults.clear()
    domain.d365.clock.advance(REDELIVERY)
    exporter.tick()

    assert exporter.store.get(message_id).state is ExportState.ACKED
    assert len(_blobs(domain, route)) == 1


def test_a_route_leased_by_another_tick_is_skipped(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    lease = exporter.store.lease(route.name).acquire(
        "someone-else", until=domain.clock() + timedelta(minutes=5)
    )
    assert lease is not None

    result = exporter.tick()

    assert result.skipped_leased == 1
    assert not any(r.operation == "dequeue" for r in domain.d365.requests)

    exporter.store.lease(route.name).release(lease)
    assert exporter.tick().acked == 1


def test_the_per_tick_budget_bounds_the_dequeues(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    for _ in range(3):
        domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    budgeted = replace(route, max_messages=2)

    exporter.run_route(budgeted)

    assert len(_blobs(domain, route)) == 2
    exporter.run_route(budgeted)
    assert len(_blobs(domain, route)) == 3


def _kept(route: ExportRoute, message_id: str) -> str:
    """Where an unzip route keeps a package it gave up, unopened."""
    return f"pkg/{message_id}/{message_id}.zip"


def _given_up_text(route: ExportRoute, message_id: str) -> str:
    return (
        f"Given up: the package is kept unopened as '{route.container}/"
        f"{_kept(route, message_id)}', and acknowledged so that F&O stops offering it"
    )


def _assert_given_up_and_acked(
    domain: Domain, exporter: Exporter, route: ExportRoute, message_id: str, data: bytes
) -> str:
    """The message is ExportFailed for good, its package kept whole, F&O acknowledged; the
    record's error is returned."""
    record = exporter.store.get(message_id)
    assert record.state is ExportState.EXPORT_FAILED
    assert record.gave_up_at is not None and record.acked_at is not None
    assert record.blobs == (_kept(route, message_id),) and record.size == len(data)
    assert [entry[0] for entry in record.history] == ["Dequeued", "ExportFailed", "ExportFailed"]
    assert domain.d365.messages[message_id].state == "Acked"
    mine = {k: v for k, v in _blobs(domain, route).items() if k.startswith(f"pkg/{message_id}/")}
    assert mine == {_kept(route, message_id): data}
    return record.error or ""


def test_an_export_that_is_not_a_zip_is_kept_given_up_and_acked_on_an_unzip_route(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    unzip = replace(route, prefix="pkg/{message_id}/", unzip=True)
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)

    exporter.run_route(unzip)

    error = _assert_given_up_and_acked(domain, exporter, route, message_id, customers_export())
    assert error == (
        f"the exported package of message {message_id} is not a zip file: it does not start "
        f"with a zip entry (PK\\x03\\x04). {_given_up_text(route, message_id)}"
    )


def test_a_message_without_a_file_is_acked_with_nothing_written(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    domain.d365.knobs.dequeue_without_file = True

    exporter.tick()

    record = exporter.store.get(message_id)
    assert record.state is ExportState.ACKED
    assert record.blobs == ()
    assert [entry[2] for entry in record.history if entry[0] == "Downloaded"] == [
        "F&O has no file for this message (The file was not uploaded to the blob storage for "
        "this message.); acknowledged with nothing written"
    ]
    assert _downloads(domain) == 0
    assert domain.d365.messages[message_id].state == "Acked"


def test_a_record_keeps_a_size_past_2_gib(domain: Domain, exporter: Exporter) -> None:
    store = exporter.store
    record = store.dequeued(
        message_id="00000000-0000-0000-0000-0000000000e1",
        route="r",
        activity_id=fakes.EXPORT_ACTIVITY_ID,
        container="c",
        target="t",
    )
    store.downloaded(record, ["t"], 5 * 1024**3)

    assert store.get(record.message_id).size == 5 * 1024**3


def test_an_empty_export_lands_as_an_empty_blob(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    message_id = domain.d365.add_export(fakes.EXPORT_ACTIVITY_ID, b"")

    exporter.tick()

    assert list(_blobs(domain, route).values()) == [b""]
    assert exporter.store.get(message_id).state is ExportState.ACKED


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
    assert len([name for name in _blobs(domain, route) if name.startswith(f"pkg/{valid}/")]) == 3
    error = _assert_given_up_and_acked(domain, exporter, route, corrupt, package)
    assert error == (
        f"the exported package of message {corrupt} is not a readable zip: member 'Customers "
        "V3.xml': its deflate data is broken (Error -3 while decompressing data: invalid block "
        f"type). {_given_up_text(route, corrupt)}"
    )
    domain.d365.clock.advance(REDELIVERY)
    exporter.run_route(unzip)
    assert _downloads(domain) == 2  # F&O offers neither again


# -- writes whose answer was lost (issue 17, findings 18 and 19) ----------------------------------


def _acked_once(domain: Domain, exporter: Exporter, message_id: str) -> None:
    """The message went the whole way once: one download, its record Acked, F&O told."""
    record = exporter.store.get(message_id)
    assert record is not None and record.state is ExportState.ACKED, record
    assert [entry[0] for entry in record.history][-2:] == ["Downloaded", "Acked"]
    assert domain.d365.messages[message_id].state == "Acked"
    assert _downloads(domain) == 1


_LEASE_ROW = "RowKey='~lease-customers-out'"


@pytest.mark.parametrize(
    "fault",
    [
        ("POST", "", 0),  # the first tick creates the lease row
        ("PUT", _LEASE_ROW, 0),  # a later tick takes the row over
        ("PUT", _LEASE_ROW, 1),  # the release
    ],
    ids=["acquire-insert", "acquire-takeover", "release"],
)
def test_a_route_lease_write_whose_answer_was_lost_is_still_ours(
    domain: Domain, exporter: Exporter, route: ExportRoute, fault: tuple[str, str, int]
) -> None:
    """Finding 18: the route is not skipped, and its lease is free again after the tick."""
    method, row, skip = fault
    if row:
        exporter.tick()  # the lease row exists, released
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    domain.faults.fail("lost", method, row or domain.context.store.table_name, skip=skip)

    result = exporter.tick()

    assert domain.faults.injected["lost"] == 1
    assert (result.skipped_leased, result.acked, result.errors) == (0, 1, [])
    _acked_once(domain, exporter, message_id)
    assert exporter.store.lease(route.name).holder() is None
    second = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    assert exporter.tick().acked == 1
    assert exporter.store.get(second).state is ExportState.ACKED


@pytest.mark.parametrize(
    "fault",
    [("POST", 1), ("PUT", 0), ("PUT", 1)],
    # POST: the lease row, then the record's insert; PUT: Downloaded, then Acked.
    ids=["Dequeued", "Downloaded", "Acked"],
)
def test_a_record_write_whose_answer_was_lost_goes_on_to_the_ack(
    domain: Domain, exporter: Exporter, caplog: pytest.LogCaptureFixture, fault: tuple[str, int]
) -> None:
    """Finding 18: the record's own write is recognised; the message is not left to "another
    writer" (nor the tick ended) and is acked at once."""
    method, skip = fault
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    contains = domain.context.store.table_name if method == "POST" else f"RowKey='{message_id}'"
    domain.faults.fail("lost", method, contains, skip=skip)

    result = exporter.tick()

    assert domain.faults.injected["lost"] == 1
    assert (result.acked, result.failed, result.errors) == (1, 0, [])
    _acked_once(domain, exporter, message_id)
    assert "left to another writer" not in caplog.text


def test_a_redelivery_whose_dequeued_write_answer_was_lost_is_acked(
    domain: Domain, exporter: Exporter, route: ExportRoute, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 18: the replace that records a re-delivery lands with its answer lost."""
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    domain.faults.fail("reset", "PUT", f"RowKey='{message_id}'", times=1000)  # no Downloaded
    exporter.tick()
    domain.faults.clear()
    domain.d365.clock.advance(REDELIVERY)
    domain.faults.fail("lost", "PUT", f"RowKey='{message_id}'")  # Dequeued (dequeue 2)

    result = exporter.tick()

    assert domain.faults.injected["lost"] == 1
    assert (result.acked, result.errors) == (1, [])
    _acked_once(domain, exporter, message_id)
    assert exporter.store.get(message_id).dequeue_count == 2
    assert "left to another writer" not in caplog.text


def test_a_failure_record_whose_answer_was_lost_is_counted_and_retried(
    domain: Domain, exporter: Exporter, route: ExportRoute, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 18: the ExportFailed write is ours too: counted as failed, not left to another."""
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    domain.faults.fail("reset", "PUT", "comp=block&", times=1000)
    domain.faults.fail("lost", "PUT", f"RowKey='{message_id}'")  # ExportFailed

    result = exporter.tick()

    assert domain.faults.injected["lost"] == 1
    assert (result.failed, result.acked) == (1, 0)
    assert exporter.store.get(message_id).state is ExportState.EXPORT_FAILED
    assert "left to another writer" not in caplog.text
    domain.faults.clear()
    domain.d365.clock.advance(REDELIVERY)
    assert exporter.tick().acked == 1


def test_a_commit_whose_answer_was_lost_is_not_committed_again(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    """Finding 19: the SDK's retry of the commit meets the blob it committed, ETag unchanged
    (in Azure, no second BlobCreated event)."""
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    container = BlobServiceClient.from_connection_string(
        domain.context.settings.storage.connection_string
    ).get_container_client(route.container)
    first: list[str] = []

    def before_the_retry() -> None:
        [blob] = container.list_blobs()
        first.append(blob.etag)

    domain.faults.fail("lost", "PUT", "comp=blocklist")
    domain.faults.meanwhile("PUT", "comp=blocklist", before_the_retry, skip=1)

    result = exporter.tick()

    assert domain.faults.injected["lost"] == 1
    assert domain.faults.count("PUT", "comp=blocklist") == 2
    assert (result.acked, result.errors) == (1, [])
    [blob] = container.list_blobs(include=["metadata"])
    assert [blob.etag] == first
    assert blob.metadata["d365_message_id"] == message_id
    assert container.download_blob(blob.name).readall() == customers_export()
    _acked_once(domain, exporter, message_id)
    assert exporter.store.get(message_id).error is None


def test_a_target_another_writer_committed_is_a_clear_failure_left_in_place(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    """Finding 19: a blob under the target name that is not this message's is never replaced."""
    flat = replace(route, prefix="out/")
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    container = domain.context.blob_service.get_container_client(route.container)
    container.create_container()
    target = f"out/{message_id}.xml"
    container.upload_blob(target, b"theirs", metadata={"d365_message_id": "someone-else"})

    exporter.run_route(flat)

    assert container.download_blob(target).readall() == b"theirs"
    record = exporter.store.get(message_id)
    assert record.state is ExportState.EXPORT_FAILED
    assert record.error == (
        f"download not written: BlobTakenError: the export blob {target!r} in container "
        f"{route.container!r} already exists and was not written for this message (its "
        "d365_message_id is 'someone-else'); it was left as it is: move or delete it; retried "
        "when F&O offers it again (attempt 1 of 10, EXPORT_MAX_ATTEMPTS)"
    )
    assert domain.d365.messages[message_id].state != "Acked"


# F&O's service-protection text, localized: every character non-ASCII (six characters each
# in JSON that escapes it), about 1,900 of them.
LOCALIZED = "要求の数が時間枠内の上限を超えました。しばらくしてから再試行してください。" * 50


def test_an_export_failing_for_many_deliveries_with_long_localized_errors_is_acked_later(
    domain: Domain, route: ExportRoute
) -> None:
    """Finding 1: the history of a message that fails at every delivery kept growing until its
    row passed 32K characters; then every write, the Dequeued one included, was refused.
    (EXPORT_MAX_ATTEMPTS raised past the 15 deliveries, so it is not given up first.)"""
    with _exporter(domain, route, max_attempts=20) as exporter:
        _fail_15_times_then_ack(domain, exporter)


def _fail_15_times_then_ack(domain: Domain, exporter: Exporter) -> None:
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    knobs = domain.d365.knobs
    knobs.operations = frozenset({"download"})
    knobs.throttle_message = LOCALIZED
    knobs.retry_after = None
    knobs.throttle_burst = 1_000_000

    for delivery in range(1, 16):
        result = exporter.tick()
        record = exporter.store.get(message_id)
        assert (record.state, record.dequeue_count) == (ExportState.EXPORT_FAILED, delivery)
        assert result.errors == []
        domain.d365.clock.advance(REDELIVERY)
    assert LOCALIZED[:100] in (record.error or "")

    knobs.throttle_burst = 0
    exporter.tick()

    record = exporter.store.get(message_id)
    assert record.state is ExportState.ACKED
    assert domain.d365.messages[message_id].state == "Acked"
    assert record.dequeue_count == 16
    assert record.history_dropped > 0
    assert len(record.history) + record.history_dropped == 1 + 15 * 2 + 2
    assert [entry[0] for entry in record.history[-3:]] == ["Dequeued", "Downloaded", "Acked"]


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
    written = sorted(name for name in _blobs(domain, route) if name.startswith("pkg/"))
    assert len(written) == 150
    assert record.blob_count == 150
    assert 0 < len(record.blobs) < 150
    assert sorted(exporter.store.list_blobs(record)) == written
    container, _, name = (record.blobs_blob or "").partition("/")
    assert container == domain.context.settings.errors_container
    assert name.startswith(f"exports/{message_id}/blobs-")
    status, body = list_exports(domain.context, message_id, {"direction": "export"})
    assert (status, sorted(body["blobs"]), body["blob_count"]) == (200, written, 150)


def test_a_downloaded_write_that_fails_is_recorded_and_the_tick_goes_on(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    """Finding 2: the Downloaded write failed outside the code that records failures, so the
    record stayed Dequeued with no reason and the route's tick ended there."""
    unzip = replace(route, prefix="pkg/{message_id}/", unzip=True)
    large = domain.d365.add_export(
        fakes.EXPORT_ACTIVITY_ID, package_files.many_members(150, customers_export())
    )
    small = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID, file_format="package")
    # The list of the large one's blobs cannot be stored: its Downloaded write fails.
    domain.faults.fail("reset", "PUT", f"/exports/{large}/blobs-", times=1000)

    exporter.run_route(unzip)

    record = exporter.store.get(large)
    assert record.state is ExportState.EXPORT_FAILED
    assert (record.error or "").startswith("blobs written, but the record of them was not: ")
    assert domain.d365.messages[large].state != "Acked"
    assert exporter.store.get(small).state is ExportState.ACKED

    domain.faults.clear()
    domain.d365.clock.advance(REDELIVERY)
    exporter.run_route(unzip)

    record = exporter.store.get(large)
    assert record.state is ExportState.ACKED
    assert record.blob_count == 150


def test_a_package_that_inflates_a_thousandfold_is_kept_unopened_naming_the_ratio(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    """Finding 7: a 65 KB package wrote 64 MiB; no limit of size, ratio, total or count."""
    unzip = replace(route, prefix="pkg/{message_id}/", unzip=True)
    bomb = package_files.member_bomb("Customers V3.xml", 64 * 1024 * 1024)
    assert len(bomb) < 66_000
    message_id = domain.d365.add_export(fakes.EXPORT_ACTIVITY_ID, bomb)

    exporter.run_route(unzip)

    error = _assert_given_up_and_acked(domain, exporter, route, message_id, bomb)
    compressed = zipfile.ZipFile(io.BytesIO(bomb)).getinfo("Customers V3.xml").compress_size
    assert error == (
        f"the exported package of message {message_id} holds member 'Customers V3.xml', which "
        f"declares 67,108,864 bytes from {compressed:,} compressed, over the ratio of 200 to 1 "
        "of ZIP_MAX_RATIO (a zip bomb, or data that compresses unusually well). "
        f"{_given_up_text(route, message_id)}; if it is genuine, unzip it from there, and raise "
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

    with _exporter(domain, unzip, zip_limits=limits) as exporter:
        exporter.run_route(unzip)

    error = _assert_given_up_and_acked(domain, exporter, route, message_id, package)
    assert error.startswith(f"the exported package of message {message_id} {problem}. Given up")


def test_an_export_failing_every_time_is_given_up_after_max_attempts_and_acked(
    domain: Domain, route: ExportRoute
) -> None:
    """Finding 12: it was retried every 30 minutes for ever, and nothing told an operator."""
    lost = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    domain.d365.lose_export_file(lost)

    with _exporter(domain, route, max_attempts=3) as exporter:
        errors = []
        for _ in range(3):
            exporter.tick()
            errors.append(exporter.store.get(lost).error)
            domain.d365.clock.advance(REDELIVERY)
        later = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
        for _ in range(2):
            exporter.tick()
            domain.d365.clock.advance(REDELIVERY)

    not_found = (
        "D365NotFoundError: download (GET "
        f"{domain.context.settings.d365.base_url}/api/connector/download/{lost}) failed: HTTP "
        f"404 Not Found. F&O says: No file was found for '{lost}'."
    )
    for attempt in (1, 2):
        assert errors[attempt - 1].startswith(f"download not written: {not_found}")
        assert errors[attempt - 1].endswith(
            f"; retried when F&O offers it again (attempt {attempt} of 3, EXPORT_MAX_ATTEMPTS)"
        )
    assert errors[2].startswith(
        "given up after 3 attempts (EXPORT_MAX_ATTEMPTS) and acknowledged, so that F&O stops "
        "offering it; nothing was kept: F&O still has the export in the job's history (Data "
        "management > Job history), or run the export job again. The last attempt: download "
        f"not written: {not_found}"
    )
    record = exporter.store.get(lost)
    assert (record.state, record.error, record.dequeue_count) == (
        ExportState.EXPORT_FAILED,
        errors[2],
        3,
    )
    assert record.gave_up_at is not None and record.acked_at is not None
    assert domain.d365.messages[lost].state == "Acked"
    downloads = [r for r in domain.d365.requests if r.operation == "download"]
    assert len([r for r in downloads if lost in r.path]) == 3  # not a fourth time
    assert exporter.store.get(later).state is ExportState.ACKED
    assert list(_blobs(domain, route).values()) == [customers_export()]


def test_a_given_up_message_whose_ack_failed_keeps_its_reason_and_is_counted_once(
    domain: Domain, route: ExportRoute
) -> None:
    """The ack's failure replaced the reason the message was given up (now in history only),
    and the message was counted twice in ``failed``; the next offer only acks it."""
    unzip = replace(route, prefix="pkg/{message_id}/", unzip=True)
    bomb = package_files.member_bomb("Customers V3.xml", 64 * 1024 * 1024)
    message_id = domain.d365.add_export(fakes.EXPORT_ACTIVITY_ID, bomb)
    knobs = domain.d365.knobs
    knobs.operations, knobs.error_status, knobs.error_burst = frozenset({"ack"}), 500, 5

    with _exporter(domain, unzip) as exporter:
        result = ExportTickResult()
        exporter.run_route(unzip, result)
        failed = exporter.store.get(message_id)
        domain.d365.clock.advance(REDELIVERY)
        exporter.run_route(unzip)

    assert failed.state is ExportState.EXPORT_FAILED and failed.gave_up_at is not None
    assert failed.error.startswith(f"the exported package of message {message_id} holds member")
    assert failed.error.endswith("raise ZIP_MAX_RATIO for the next ones")
    ack_failure = failed.history[-1][2]
    assert ack_failure.startswith("ack failed: ")
    assert ack_failure.endswith(
        "; it was given up, the ack is retried when F&O offers the message again"
    )
    assert domain.d365.messages[message_id].state == "Acked"
    record = exporter.store.get(message_id)
    assert (record.state, record.blobs) == (ExportState.EXPORT_FAILED, (_kept(route, message_id),))
    assert record.acked_at is not None and record.gave_up_at == failed.gave_up_at
    assert record.error == failed.error
    assert [entry[0] for entry in record.history][-2:] == ["ExportFailed", "ExportFailed"]
    assert record.history[-1][2] == "acknowledged: F&O will not offer it again"
    assert _downloads(domain) == 1
    assert (result.dequeued, result.failed, result.acked) == (1, 1, 0)


def _gave_up_events(caplog: pytest.LogCaptureFixture, message_id: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if getattr(r, "gave_up", False) and getattr(r, "message_id", None) == message_id
    ]


def test_the_given_up_alert_follows_its_record_and_a_failed_write_lets_the_tick_go_on(
    domain: Domain, exporter: Exporter, route: ExportRoute, caplog: pytest.LogCaptureFixture
) -> None:
    """The ``export_failed`` event with ``gave_up`` was logged before the record was written,
    and storage refusing that write ended the route's tick."""
    unzip = replace(route, prefix="pkg/{message_id}/", unzip=True)
    refused = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)  # not a zip
    later = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID, file_format="package")
    domain.faults.fail("reset", "PUT", f"RowKey='{refused}'", times=WRITE_TRIES)

    result = ExportTickResult()
    exporter.run_route(unzip, result)

    assert domain.faults.injected["reset"] == WRITE_TRIES
    assert (result.errors, result.failed, result.acked) == ([], 1, 1)
    assert _gave_up_events(caplog, refused) == []
    record = exporter.store.get(refused)
    assert (record.state, record.gave_up_at) == (ExportState.EXPORT_FAILED, None)
    assert (record.error or "").startswith("to be given up, but the record of it was not written: ")
    assert domain.d365.messages[refused].state != "Acked"
    assert exporter.store.get(later).state is ExportState.ACKED

    domain.d365.clock.advance(REDELIVERY)
    exporter.run_route(unzip)

    record = exporter.store.get(refused)
    assert record.gave_up_at is not None and record.acked_at is not None
    assert (record.error or "").endswith(_given_up_text(route, refused))
    assert domain.d365.messages[refused].state == "Acked"
    assert len(_gave_up_events(caplog, refused)) == 1


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
    assert record.blobs == (*members, _kept(route, message_id))
    assert sorted(n for n in _blobs(domain, route) if n.startswith(folder)) == sorted(record.blobs)
    assert (record.error or "").endswith(
        f"{_given_up_text(route, message_id)}; 2 members written before the refusal stay beside "
        f"it ('{route.container}/{members[0]}', '{route.container}/{members[1]}')"
    )


def test_members_committed_before_the_last_failed_attempt_are_named_and_listed(
    domain: Domain, route: ExportRoute
) -> None:
    """Given up "nothing was kept" while the members written before the failure stayed."""
    unzip = replace(route, prefix="pkg/{message_id}/", unzip=True)
    message_id = domain.d365.add_export(fakes.EXPORT_ACTIVITY_ID, export_package())
    folder = f"pkg/{message_id}/"
    container = domain.context.blob_service.get_container_client(route.container)
    container.create_container()
    taken = f"{folder}PackageHeader.xml"
    container.upload_blob(taken, b"theirs", metadata={"d365_message_id": "someone-else"})

    with _exporter(domain, unzip, max_attempts=1) as exporter:
        exporter.run_route(unzip)

    record = exporter.store.get(message_id)
    assert record.gave_up_at is not None and record.acked_at is not None
    assert record.blobs == (f"{folder}Manifest.xml",)
    assert (record.error or "").startswith(
        "given up after 1 attempt (EXPORT_MAX_ATTEMPTS) and acknowledged, so that F&O stops "
        "offering it; the package is incomplete: 1 member written before the failure stays "
        f"('{route.container}/{folder}Manifest.xml'): F&O still has the export"
    )
    assert "BlobTakenError" in (record.error or "")
    assert container.download_blob(taken).readall() == b"theirs"


def test_our_storage_failing_at_every_offer_never_gives_a_message_up(
    domain: Domain, route: ExportRoute, caplog: pytest.LogCaptureFixture
) -> None:
    """A storage outage counted toward EXPORT_MAX_ATTEMPTS: every message it met was given up
    and acked with nothing kept."""
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    domain.faults.fail("reset", "PUT", "comp=block&", times=1000)

    with _exporter(domain, route, max_attempts=1) as exporter:
        errors = []
        for _ in range(3):
            exporter.tick()
            errors.append(exporter.store.get(message_id).error or "")
            domain.d365.clock.advance(REDELIVERY)
        assert domain.d365.messages[message_id].state != "Acked"
        domain.faults.clear()
        assert exporter.tick().acked == 1

    for error in errors:
        assert error.startswith("download not written: ServiceRequestError")
        assert error.endswith(
            "; our storage failed, which does not count toward EXPORT_MAX_ATTEMPTS (0 of 1 so "
            "far): retried when F&O offers it again"
        )
    record = exporter.store.get(message_id)
    assert (record.state, record.gave_up_at, record.failed_attempts) == (
        ExportState.ACKED,
        None,
        0,
    )
    assert list(_blobs(domain, route).values()) == [customers_export()]
    events = [r for r in caplog.records if getattr(r, "event", None) == "export_failed"]
    assert [getattr(r, "cause", None) for r in events] == ["storage"] * 3


def test_a_commit_that_landed_with_every_answer_lost_is_not_given_up_as_nothing_kept(
    domain: Domain, route: ExportRoute
) -> None:
    """The commit landed, its answer lost and the SDK's retries refused: on the last attempt
    it was given up as "nothing was kept" and acked, beside its blob. Now it is retried, and
    the next offer finds the blob and acks it."""
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    domain.faults.fail("reset", "PUT", "comp=blocklist", skip=1, times=1000)
    domain.faults.fail("lost", "PUT", "comp=blocklist")

    with _exporter(domain, route, max_attempts=1) as exporter:
        exporter.tick()
        first = exporter.store.get(message_id)
        domain.faults.clear()
        domain.d365.clock.advance(REDELIVERY)
        assert exporter.tick().acked == 1

    assert domain.faults.injected["lost"] == 1
    assert (first.state, first.gave_up_at) == (ExportState.EXPORT_FAILED, None)
    assert "our storage failed" in (first.error or "")
    record = exporter.store.get(message_id)
    assert (record.state, record.gave_up_at) == (ExportState.ACKED, None)
    assert record.history[-2][2] == "found committed; not again"
    assert list(_blobs(domain, route).values()) == [customers_export()]
    assert _downloads(domain) == 1


def test_a_downloaded_write_failing_past_max_attempts_is_retried_and_alerted(
    domain: Domain, route: ExportRoute, caplog: pytest.LogCaptureFixture
) -> None:
    """Our own storage refusing the Downloaded write: retried at every offer, never given up
    (the blob is committed; only its record is missing), each time an ``export_failed`` event
    whose ``cause`` says it is our storage."""
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    row = f"RowKey='{message_id}'"
    with _exporter(domain, route, max_attempts=1) as exporter:
        errors = []
        for offer in range(3):
            # Every try of the Downloaded write (after the re-delivery's Dequeued replace).
            domain.faults.fail("reset", "PUT", row, skip=min(offer, 1), times=WRITE_TRIES)
            result = exporter.tick()
            assert (result.failed, result.errors) == (1, [])
            errors.append(exporter.store.get(message_id).error or "")
            domain.d365.clock.advance(REDELIVERY)
        assert domain.d365.messages[message_id].state != "Acked"
        assert exporter.tick().acked == 1

    assert domain.faults.injected["reset"] == 3 * WRITE_TRIES
    for error in errors:
        assert error.startswith("blobs written, but the record of them was not: ")
    record = exporter.store.get(message_id)
    assert (record.state, record.gave_up_at) == (ExportState.ACKED, None)
    assert _downloads(domain) == 1  # later offers found the blob by its metadata
    events = [r for r in caplog.records if getattr(r, "event", None) == "export_failed"]
    assert [(r.levelname, getattr(r, "cause", None)) for r in events] == [
        ("WARNING", "storage")
    ] * 3


def test_a_download_location_on_another_port_of_f_and_os_host_is_refused_unsent(
    domain: Domain, exporter: Exporter
) -> None:
    """Finding 8: the bearer token goes only to F&O's exact origin, not the same host on
    another port (a bound port that takes no connection: nothing may even try)."""
    with socket.socket() as elsewhere:
        elsewhere.bind(("127.0.0.1", 0))
        port = elsewhere.getsockname()[1]
        domain.d365.knobs.download_location_origin = f"https://127.0.0.1:{port}"
        message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)

        exporter.tick()

    record = exporter.store.get(message_id)
    assert record.state is ExportState.EXPORT_FAILED
    assert (
        f"refused the DownloadLocation F&O handed out, https://127.0.0.1:{port}/api/connector/"
        in (record.error or "")
    )
    assert f"not F&O's own origin https://127.0.0.1:{domain.d365.port}" in (record.error or "")
    assert domain.d365.messages[message_id].state != "Acked"
