"""The source blob: streamed in small ranges by our clients, fingerprinted across metadata
writes, stamped within Azure's metadata limit."""

import gc
import hashlib
import os
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from shared.clients.storage import STREAM_CHUNK, blob_service_client
from shared.config import StorageSettings
from shared.flows.source_blob import METADATA_LIMIT, fingerprint, with_stamp
from shared.tracking import TrackedFile, TrackingState, utcnow


def _status_mib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"{field} not in /proc/self/status")


def test_a_large_blob_is_streamed_without_holding_it_in_memory(
    storage_connection_string: str, unique_name: str
) -> None:
    service = blob_service_client(
        StorageSettings.from_env({"IntegrationStorage": storage_connection_string})
    )
    container = service.create_container(unique_name)
    data = os.urandom(40 * 1024 * 1024)
    container.upload_blob("big.bin", data)
    digest = hashlib.sha256(data).hexdigest()
    del data
    source = service.get_blob_client(unique_name, "big.bin")
    source.get_blob_properties()
    gc.collect()

    before = _status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to now
    stream = source.download_blob()
    received = hashlib.sha256()
    while chunk := stream.read(1024 * 1024):
        received.update(chunk)
    growth = _status_mib("VmHWM") - before

    assert received.hexdigest() == digest
    # The SDK's default first GET alone would hold 32 MiB of this 40 MiB blob.
    assert growth < 4 * STREAM_CHUNK // (1024 * 1024), growth


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
