"""The failure accounting of an export: attempts counted toward EXPORT_MAX_ATTEMPTS, our
storage's failures not, a message given up once."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from devtools.d365_emulator._exports import customers_export, export_package
from shared.config.exports import ExportRoute
from shared.flows.export import Exporter, ExportTickResult
from shared.tracking import ExportState
from tests import fakes
from tests.shared.conftest import Domain
from tests.shared.flows.export.conftest import (
    REDELIVERY,
    WRITE_TRIES,
    blobs,
    given_up_text,
    make_exporter,
)


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


# F&O's service-protection text, localized: every character non-ASCII (six characters each
# in JSON that escapes it), about 1,900 of them.
LOCALIZED = "要求の数が時間枠内の上限を超えました。しばらくしてから再試行してください。" * 50


def test_an_export_failing_for_many_deliveries_with_long_localized_errors_is_acked_later(
    domain: Domain, route: ExportRoute
) -> None:
    """Finding 1: the history of a message that fails at every delivery kept growing until its
    row passed 32K characters; then every write, the Dequeued one included, was refused.
    (EXPORT_MAX_ATTEMPTS raised past the 15 deliveries, so it is not given up first.)"""
    with make_exporter(domain, route, max_attempts=20) as exporter:
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


def test_an_export_failing_every_time_is_given_up_after_max_attempts_and_acked(
    domain: Domain, route: ExportRoute
) -> None:
    """Finding 12: it was retried every 30 minutes for ever, and nothing told an operator."""
    lost = domain.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID)
    domain.d365.lose_export_file(lost)

    with make_exporter(domain, route, max_attempts=3) as exporter:
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
    download_requests = [r for r in domain.d365.requests if r.operation == "download"]
    assert len([r for r in download_requests if lost in r.path]) == 3  # not a fourth time
    assert exporter.store.get(later).state is ExportState.ACKED
    assert list(blobs(domain, route).values()) == [customers_export()]


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
    assert (record.error or "").endswith(given_up_text(route, refused))
    assert domain.d365.messages[refused].state == "Acked"
    assert len(_gave_up_events(caplog, refused)) == 1


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

    with make_exporter(domain, unzip, max_attempts=1) as exporter:
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

    with make_exporter(domain, route, max_attempts=1) as exporter:
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
    assert list(blobs(domain, route).values()) == [customers_export()]
    events = [r for r in caplog.records if getattr(r, "event", None) == "export_failed"]
    assert [getattr(r, "cause", None) for r in events] == ["storage"] * 3
