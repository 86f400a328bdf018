"""The source blob: fingerprinted across metadata writes, stamped within Azure's metadata
limit."""

from azure.storage.blob import BlobServiceClient

from shared.flows.source_blob import METADATA_LIMIT, fingerprint, with_stamp
from shared.tracking import TrackedFile, TrackingState, utcnow


def test_fingerprint_survives_a_metadata_write_but_not_an_overwrite(
    storage_connection_string: str, unique_name: str
) -> None:
    container = BlobServiceClient.from_connection_string(
        storage_connection_string
    ).create_container(unique_name)
    blob = container.upload_blob("f.xml", b"<Document/>")
    before = fingerprint(blob.get_blob_properties())
    blob.set_blob_metadata({"d365_state": "Enqueued"})
    assert fingerprint(blob.get_blob_properties()) == before
    blob.upload_blob(b"<Document><X/></Document>", overwrite=True)
    assert fingerprint(blob.get_blob_properties()) != before


def test_the_stamp_fits_beside_an_uploaders_large_metadata() -> None:
    """Finding 3: metadata over 8 KiB once our stamp is added is refused on every try."""
    now = utcnow()
    record = TrackedFile(
        record_id="r" * 32,
        row_key="1" * 13 + "-" + "a" * 32,
        blob="a.xml",
        blob_etag="e",
        state=TrackingState.PROCESSED,
        received_at=now,
        updated_at=now,
        fingerprint="10:ab:2026",
        last_error="x" * 900,
    )
    theirs = {"note": "y" * (METADATA_LIMIT - 200)}
    stamped = with_stamp(theirs, record)
    assert stamped["note"] == theirs["note"]
    assert stamped["d365_state"] == "Processed"
    assert sum(len(k) + len(v) for k, v in stamped.items()) <= METADATA_LIMIT
    assert len(with_stamp({}, record)["d365_reason"]) == 900
