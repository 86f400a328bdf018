"""The archive flow against Azurite: a finished file moved under its state, or stamped in place."""

from __future__ import annotations

from azure.storage.blob import BlobClient, BlobServiceClient

from shared.config import ArchiveMode
from shared.flows.archive import InboundContainer
from shared.flows.source_blob import RECORD_KEY, fingerprint
from shared.tracking import TrackedFile, TrackingState, utcnow


def _record(blob: BlobClient, state: TrackingState = TrackingState.PROCESSED) -> TrackedFile:
    props = blob.get_blob_properties()
    now = utcnow()
    return TrackedFile(
        record_id="a" * 32,
        row_key="1" * 13 + "-" + "a" * 32,
        blob=blob.blob_name,
        blob_etag=props.etag,
        state=state,
        received_at=now,
        updated_at=now,
        fingerprint=fingerprint(props),
        message_id="84a383c8-336d-45e4-9933-0c3e8bfb734a",
    )


def _inbound(service: BlobServiceClient, name: str, mode: ArchiveMode) -> InboundContainer:
    service.create_container(f"{name}-in")
    inbound = InboundContainer(
        service,
        inbound_container=f"{name}-in",
        archive_container=f"{name}-archive",
        mode=mode,
    )
    inbound.ensure_ready()
    return inbound


def test_a_finished_file_moves_under_its_state_with_our_stamp(
    storage_connection_string: str, unique_name: str
) -> None:
    service = BlobServiceClient.from_connection_string(storage_connection_string)
    inbound = _inbound(service, unique_name, ArchiveMode.MOVE)
    source = inbound.source("customers/a.xml")
    source.upload_blob(b"<Document/>")
    record = _record(source)

    result = inbound.finish(record)

    assert result.archived_to == f"{unique_name}-archive/Processed/customers/a.xml"
    assert not source.exists()
    copy = service.get_blob_client(f"{unique_name}-archive", "Processed/customers/a.xml")
    assert copy.download_blob().readall() == b"<Document/>"
    assert copy.get_blob_properties().metadata[RECORD_KEY] == record.row_key
    assert copy.get_blob_properties().metadata["d365_message_id"] == record.message_id
    # A repeat after a crash between the delete and the record's write finds its own copy.
    assert inbound.finish(record).archived_to == result.archived_to


def test_an_overwritten_file_stays_where_it_is(
    storage_connection_string: str, unique_name: str
) -> None:
    service = BlobServiceClient.from_connection_string(storage_connection_string)
    inbound = _inbound(service, unique_name, ArchiveMode.MOVE)
    source = inbound.source("a.xml")
    source.upload_blob(b"<Document/>")
    record = _record(source)
    source.upload_blob(b"<Newer/>", overwrite=True)

    result = inbound.finish(record)

    assert result.archived_to is None
    assert result.note is not None
    assert "overwritten by a newer version" in result.note
    assert source.download_blob().readall() == b"<Newer/>"


def test_in_metadata_mode_the_file_is_stamped_in_place(
    storage_connection_string: str, unique_name: str
) -> None:
    service = BlobServiceClient.from_connection_string(storage_connection_string)
    inbound = _inbound(service, unique_name, ArchiveMode.METADATA)
    source = inbound.source("a.xml")
    source.upload_blob(b"<Document/>", metadata={"uploader": "erp"})
    record = _record(source, TrackingState.ENQUEUE_FAILED)

    result = inbound.finish(record)

    assert result.archived_to is None
    assert result.note is None
    metadata = source.get_blob_properties().metadata
    assert metadata["uploader"] == "erp"
    assert metadata["d365_state"] == "EnqueueFailed"
    assert metadata[RECORD_KEY] == record.row_key
    assert not service.get_container_client(f"{unique_name}-archive").exists()
