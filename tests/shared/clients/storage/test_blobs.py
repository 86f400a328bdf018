"""Blob operations pinned to one version, against Azurite: reads, ranges, the copy wait."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceModifiedError
from azure.storage.blob import BlobServiceClient

from shared.clients.storage import (
    copy_succeeded,
    download_version,
    is_permanent,
    version_properties,
)


def test_a_pinned_read_reads_its_version_and_refuses_a_newer_one(
    storage_connection_string: str, unique_name: str
) -> None:
    service = BlobServiceClient.from_connection_string(storage_connection_string)
    blob = service.create_container(unique_name).upload_blob("a.xml", b"<Document/>")
    etag = blob.get_blob_properties().etag
    bare = etag.strip('"')

    assert download_version(blob, bare).readall() == b"<Document/>"
    assert download_version(blob, etag, offset=1, length=8).readall() == b"Document"
    assert version_properties(blob, bare).size == len(b"<Document/>")

    blob.upload_blob(b"<Other/>", overwrite=True)
    with pytest.raises(ResourceModifiedError):
        download_version(blob, etag).readall()
    with pytest.raises(ResourceModifiedError):
        version_properties(blob, bare)


def test_a_same_account_copy_is_waited_for(
    storage_connection_string: str, unique_name: str
) -> None:
    service = BlobServiceClient.from_connection_string(storage_connection_string)
    container = service.create_container(unique_name)
    source = container.upload_blob("a.xml", b"<Document/>")
    target = container.get_blob_client("copy/a.xml")
    started = target.start_copy_from_url(source.url)

    assert copy_succeeded(target, started)
    assert copy_succeeded(target, {"copy_status": "pending"})
    assert target.download_blob().readall() == b"<Document/>"


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (413, True), (404, False)])
def test_only_refusals_every_retry_meets_again_are_permanent(status: int, permanent: bool) -> None:
    error = HttpResponseError("refused")
    error.status_code = status
    assert is_permanent(error) is permanent
