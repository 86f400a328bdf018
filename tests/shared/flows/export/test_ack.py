"""The acknowledgement of an exported message, when F&O does not take it."""

from __future__ import annotations

from dataclasses import replace

from shared.config.exports import ExportRoute
from shared.flows.export import ExportTickResult
from shared.tracking import ExportState
from tests import fakes, package_files
from tests.shared.conftest import Domain
from tests.shared.flows.export.conftest import (
    REDELIVERY,
    downloads,
    kept,
    make_exporter,
)


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

    with make_exporter(domain, unzip) as exporter:
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
    assert (record.state, record.blobs) == (ExportState.EXPORT_FAILED, (kept(route, message_id),))
    assert record.acked_at is not None and record.gave_up_at == failed.gave_up_at
    assert record.error == failed.error
    assert [entry[0] for entry in record.history][-2:] == ["ExportFailed", "ExportFailed"]
    assert record.history[-1][2] == "acknowledged: F&O will not offer it again"
    assert downloads(domain) == 1
    assert (result.dequeued, result.failed, result.acked) == (1, 1, 0)
