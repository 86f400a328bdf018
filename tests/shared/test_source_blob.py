"""The source blob: streamed in small ranges, fingerprinted across metadata writes."""

import gc
import hashlib
import os
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from shared.source_blob import STREAM_CHUNK, fingerprint, streaming_client


def _status_mib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"{field} not in /proc/self/status")


def test_a_large_blob_is_streamed_without_holding_it_in_memory(
    storage_connection_string: str, unique_name: str
) -> None:
    container = BlobServiceClient.from_connection_string(
        storage_connection_string
    ).create_container(unique_name)
    data = os.urandom(40 * 1024 * 1024)
    blob = container.upload_blob("big.bin", data)
    digest = hashlib.sha256(data).hexdigest()
    del data
    source = streaming_client(blob)
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
