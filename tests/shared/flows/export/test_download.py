"""One message's download into staged blocks against Azurite and the emulator, each with the
failure its module docstring names injected at exactly that step."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from devtools.d365_emulator._exports import customers_export
from shared.config.exports import ExportRoute
from shared.flows.export import Exporter
from shared.tracking import ExportState
from tests import fakes, package_files
from tests.shared.conftest import Domain
from tests.shared.flows.export.conftest import (
    BLOCK,
    REDELIVERY,
    WRITE_TRIES,
    acked_once,
    blobs,
    downloads,
    make_exporter,
)


def test_record_write_lost_after_the_commit_acks_on_redelivery_without_writing(
    domain: Domain, exporter: Exporter, route: ExportRoute
) -> None:
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    # The Downloaded write of the record fails for good: the process "dies" after the commit.
    domain.faults.fail("reset", "PUT", f"RowKey='{message_id}'", times=1000)

    result = exporter.tick()

    assert result.errors
    assert list(blobs(domain, route).values()) == [customers_export()]
    record = exporter.store.get(message_id)
    assert record is not None and record.state is ExportState.DEQUEUED
    assert domain.d365.messages[message_id].state != "Acked"

    domain.faults.clear()
    domain.d365.clock.advance(REDELIVERY)
    exporter.tick()

    assert len(blobs(domain, route)) == 1
    assert downloads(domain) == 1
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

    assert list(blobs(domain, route).values()) == [data]
    assert exporter.store.get(message_id).state is ExportState.ACKED


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
    assert downloads(domain) == 0
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

    assert list(blobs(domain, route).values()) == [b""]
    assert exporter.store.get(message_id).state is ExportState.ACKED


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
    acked_once(domain, exporter, message_id)
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


def test_a_commit_that_landed_with_every_answer_lost_is_not_given_up_as_nothing_kept(
    domain: Domain, route: ExportRoute
) -> None:
    """The commit landed, its answer lost and the SDK's retries refused: on the last attempt
    it was given up as "nothing was kept" and acked, beside its blob. Now it is retried, and
    the next offer finds the blob and acks it."""
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    domain.faults.fail("reset", "PUT", "comp=blocklist", skip=1, times=1000)
    domain.faults.fail("lost", "PUT", "comp=blocklist")

    with make_exporter(domain, route, max_attempts=1) as exporter:
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
    assert list(blobs(domain, route).values()) == [customers_export()]
    assert downloads(domain) == 1


def test_a_downloaded_write_failing_past_max_attempts_is_retried_and_alerted(
    domain: Domain, route: ExportRoute, caplog: pytest.LogCaptureFixture
) -> None:
    """Our own storage refusing the Downloaded write: retried at every offer, never given up
    (the blob is committed; only its record is missing), each time an ``export_failed`` event
    whose ``cause`` says it is our storage."""
    message_id = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    row = f"RowKey='{message_id}'"
    with make_exporter(domain, route, max_attempts=1) as exporter:
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
    assert downloads(domain) == 1  # later offers found the blob by its metadata
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
