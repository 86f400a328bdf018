"""Enqueue on upload: rejections, exactly-once delivery, archiving, recovery after a crash."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from azure.storage.blob import BlobClient

from enqueue_blob import enqueue_blob
from shared.context import get_context
from shared.flows.source_blob import fingerprint
from shared.tracking import TrackingState, utcnow
from tests.e2e.conftest import App, enqueue_requests

VALID = b"""<?xml version="1.0" encoding="utf-8"?><Document><CUSTCUSTOMERV3ENTITY>
<CUSTOMERACCOUNT>US-7001</CUSTOMERACCOUNT><CUSTOMERGROUPID>10</CUSTOMERGROUPID>
<SALESCURRENCYCODE>USD</SALESCURRENCYCODE><ORGANIZATIONNAME>Fabrikam Test</ORGANIZATIONNAME>
</CUSTCUSTOMERV3ENTITY></Document>"""


def _client(app: App, blob: str) -> BlobClient:
    return app.inbound.get_blob_client(blob)


@pytest.mark.parametrize(
    ("path", "data", "reason", "text"),
    [
        ("unrouted/file.xml", VALID, "NoRoute", "no route matches"),
        ("customers/USMF/empty.xml", b"", "EmptyFile", "is empty"),
        ("small/big.xml", VALID, "TooLarge", "over the 64-byte limit"),
        ("customers/USMF/customers.csv", VALID, "ExtensionNotAllowed", ".csv"),
        ("customers/TOOLONG/customers.xml", VALID, "BadCompany", "TOOLONG"),
    ],
)
def test_a_rejected_blob_is_never_sent_stays_put_and_says_why(
    app: App, path: str, data: bytes, reason: str, text: str
) -> None:
    blob = app.upload(path, data)
    record = app.run_until_terminal([blob])[blob]

    assert record["state"] == "Rejected"
    assert record["reject_reason"] == reason
    assert text in record["last_error"]
    assert record["message_id"] is None
    assert enqueue_requests(app.d365) == []
    properties = _client(app, blob).get_blob_properties()
    assert properties.metadata["d365_state"] == "Rejected"
    assert text.encode("ascii", "replace").decode() in properties.metadata["d365_reason"]


def test_duplicate_deliveries_enqueue_once(app: App) -> None:
    blob = app.upload("customers/USMF/dup.xml", VALID)
    app.deliver()
    # Event Grid delivers at least once: the same version arrives again, twice.
    enqueue_blob(_client(app, blob))
    enqueue_blob(_client(app, blob))

    assert len(enqueue_requests(app.d365)) == 1
    assert len(app.records()) == 1
    assert app.record(blob)["state"] == "Enqueued"


def test_concurrent_deliveries_enqueue_once(app: App) -> None:
    blob = app.upload("customers/USMF/concurrent.xml", VALID)
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def deliver() -> None:
        barrier.wait()
        try:
            enqueue_blob(_client(app, blob))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(enqueue_requests(app.d365)) == 1
    assert app.run_until_terminal([blob])[blob]["state"] == "Processed"


def test_our_metadata_stamp_does_not_enqueue_again_and_an_overwrite_does(app: App) -> None:
    blob = app.upload("customers/USMF/versions.xml", VALID)
    first = app.run_until_terminal([blob])[blob]
    assert first["state"] == "Processed"
    app.deliver()
    assert len(enqueue_requests(app.d365)) == 1

    app.upload("customers/USMF/versions.xml", VALID.replace(b"US-7001", b"US-7002"))
    second = app.run_until_terminal([blob])[blob]

    assert len(enqueue_requests(app.d365)) == 2
    assert second["message_id"] != first["message_id"]
    assert second["blob_etag"] != first["blob_etag"]


def test_finished_blob_is_moved_to_the_archive_under_its_outcome(app: App) -> None:
    blob = app.upload("customers/USMF/archive-me.xml", VALID)
    record = app.run_until_terminal([blob])[blob]

    archive = app.blobs.get_container_client(app.env["ARCHIVE_CONTAINER"])
    archived = archive.get_blob_client(f"Processed/{blob}")
    assert record["archived_to"] == f"{app.env['ARCHIVE_CONTAINER']}/Processed/{blob}"
    assert archived.download_blob().readall() == VALID
    metadata = archived.get_blob_properties().metadata
    assert metadata["d365_state"] == "Processed"
    assert metadata["d365_message_id"] == record["message_id"]
    assert not _client(app, blob).exists()


def test_metadata_archive_mode_leaves_the_blob_with_its_outcome(app_factory) -> None:
    app = app_factory(ARCHIVE_MODE="metadata")
    blob = app.upload("customers/USMF/stay.xml", VALID)
    record = app.run_until_terminal([blob])[blob]

    assert record["archived_to"] is None
    properties = _client(app, blob).get_blob_properties()
    assert properties.metadata["d365_state"] == "Processed"
    app.deliver()
    assert len(enqueue_requests(app.d365)) == 1


def test_f_and_o_refusing_the_file_is_enqueue_failed_with_its_answer(app: App) -> None:
    app.d365.knobs.max_enqueue_bytes = 16
    blob = app.upload("customers/USMF/refused.xml", VALID)
    record = app.run_until_terminal([blob])[blob]

    assert record["state"] == "EnqueueFailed"
    assert "413" in record["last_error"]
    assert record["message_id"] is None


def _leave_a_dead_claim(app: App, blob: str, *, sent: bool) -> None:
    """The table state a worker leaves when it dies after claiming (and maybe sending)."""
    context = get_context()
    props = _client(app, blob).get_blob_properties()
    past = utcnow() - timedelta(minutes=5)
    match = context.settings.routes.resolve(blob)
    claim = context.store.claim(
        blob,
        props.etag,
        modified_at=props.last_modified,
        received_at=past,
        schedule_at=past + timedelta(seconds=60),
        route=match.route.name,
        activity_id=match.route.activity_id,
        entity=match.route.entity,
        company=match.company,
        size=props.size,
        fingerprint=fingerprint(props),
        lease_until=past + timedelta(seconds=60),
    )
    record = claim.record
    if sent:
        context.store.update(record, send_started_at=past, enqueue_attempts=1)
        context.client.enqueue(
            match.route.activity_id,
            VALID,
            entity=match.route.entity,
            company=match.company,
            external_id=blob,
        )


def test_crash_between_claim_and_enqueue_is_recovered_by_the_poller(app: App) -> None:
    blob = app.upload("customers/USMF/crash-before-send.xml", VALID)
    _leave_a_dead_claim(app, blob, sent=False)

    app.host.run_timer_once()
    record = app.run_until_terminal([blob])[blob]

    assert record["state"] == "Processed"
    assert record["enqueue_attempts"] == 1
    assert len(enqueue_requests(app.d365)) == 1


def test_crash_between_claim_and_enqueue_is_recovered_by_a_redelivery(app: App) -> None:
    blob = app.upload("customers/USMF/crash-redelivered.xml", VALID)
    _leave_a_dead_claim(app, blob, sent=False)

    enqueue_blob(_client(app, blob))

    assert app.record(blob)["state"] == "Enqueued"
    assert len(enqueue_requests(app.d365)) == 1


def test_crash_between_enqueue_and_row_write_is_flagged_not_resent(app: App) -> None:
    blob = app.upload("customers/USMF/crash-after-send.xml", VALID)
    _leave_a_dead_claim(app, blob, sent=True)

    app.host.run_timer_once()
    record = app.run_until_terminal([blob])[blob]

    assert record["state"] == "EnqueueFailed"
    assert "outcome unknown" in record["last_error"]
    assert blob in record["last_error"]
    assert len(enqueue_requests(app.d365)) == 1


def test_a_claim_within_its_lease_is_left_to_its_worker(app: App) -> None:
    blob = app.upload("customers/USMF/busy.xml", VALID)
    context = get_context()
    props = _client(app, blob).get_blob_properties()
    context.store.claim(
        blob,
        props.etag,
        modified_at=props.last_modified,
        fingerprint=fingerprint(props),
        lease_until=utcnow() + timedelta(minutes=5),
    )

    enqueue_blob(_client(app, blob))

    assert enqueue_requests(app.d365) == []
    assert app.record(blob)["state"] == TrackingState.RECEIVED.value


def test_blob_deleted_before_delivery_is_ignored(app: App) -> None:
    blob = app.upload("customers/USMF/gone.xml", VALID)
    client = _client(app, blob)
    client.delete_blob()
    enqueue_blob(client)
    assert app.get("messages", blob=blob).status_code == 404
    assert enqueue_requests(app.d365) == []


def test_a_blob_deleted_before_its_recovered_send_is_rejected_not_failed(app: App) -> None:
    blob = app.upload("customers/USMF/deleted-later.xml", VALID)
    _leave_a_dead_claim(app, blob, sent=False)
    _client(app, blob).delete_blob()

    app.host.run_timer_once()

    record = app.record(blob)
    assert record["state"] == "Rejected"
    assert record["reject_reason"] == "Deleted"
    assert enqueue_requests(app.d365) == []


def test_the_same_name_archived_twice_keeps_both_copies(app: App) -> None:
    first = app.upload("customers/USMF/daily.xml", VALID)
    app.run_until_terminal([first])
    app.upload("customers/USMF/daily.xml", VALID.replace(b"US-7001", b"US-7003"))
    second = app.run_until_terminal([first])[first]

    archive = app.blobs.get_container_client(app.env["ARCHIVE_CONTAINER"])
    names = sorted(b.name for b in archive.list_blobs(name_starts_with="Processed/"))
    assert len(names) == 2
    assert second["archived_to"].split("/", 1)[1] in names
    contents = {archive.download_blob(name).readall() for name in names}
    assert len(contents) == 2
