"""Blob operations pinned to one version of a blob (by its ETag), with the copy wait.

Every write to a blob, metadata included, gives it a new ETag; a read or copy pinned to the
ETag of the version at hand fails (``ResourceModifiedError``) rather than read a newer one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob import BlobClient, BlobProperties, StorageStreamDownloader

__all__ = [
    "MESSAGE_ID_METADATA",
    "copy_succeeded",
    "download_version",
    "is_permanent",
    "storage_reason",
    "version_properties",
    "wait_for_copy",
]

MESSAGE_ID_METADATA = "d365_message_id"
"""The blob metadata name of the F&O message id a blob holds or was sent as (metadata names
must be C# identifiers; Azure returns them lower-cased)."""

_COPY_WAIT_SECONDS = 30.0
_PERMANENT_STATUSES = frozenset({400, 411, 413, 414})


def _if_version(etag: str) -> dict[str, Any]:
    """The conditional-request options that pin a call to version `etag` (quoted or not)."""
    quoted = '"' + etag.strip().strip('"') + '"'
    return {"etag": quoted, "match_condition": MatchConditions.IfNotModified}


def download_version(
    blob: BlobClient, etag: str, *, offset: int | None = None, length: int | None = None
) -> StorageStreamDownloader[bytes]:
    """A download of version `etag` of `blob` (a range of it with `offset` and `length`).

    :raises ResourceModifiedError: the blob is another version now.
    :raises ResourceNotFoundError: the blob is gone.
    """
    return blob.download_blob(offset=offset, length=length, **_if_version(etag))


def version_properties(blob: BlobClient, etag: str) -> BlobProperties:
    """The properties of version `etag` of `blob`.

    :raises ResourceModifiedError: the blob is another version now.
    :raises ResourceNotFoundError: the blob is gone.
    """
    return blob.get_blob_properties(**_if_version(etag))


def is_permanent(exc: HttpResponseError) -> bool:
    """A storage refusal that every retry would meet again (a name too long, metadata too
    large, an invalid request). A missing container or a missing permission is not: an
    operator can fix those while the retries last."""
    return exc.status_code in _PERMANENT_STATUSES


def storage_reason(exc: AzureError) -> str:
    """Why a storage call failed, in words that hold no URL: its status and code."""
    if isinstance(exc, HttpResponseError):
        code = getattr(exc, "error_code", None) or exc.reason
        return f"storage answered {exc.status_code} {code}"
    return f"storage unreachable ({type(exc).__name__})"


def wait_for_copy(target: BlobClient) -> bool:
    """Wait (bounded) for a copy into ``target`` to finish; True once it succeeded."""
    # Same-account copies usually finish at once; bound the wait, a later tick looks again.
    deadline = time.monotonic() + _COPY_WAIT_SECONDS
    while True:
        status = target.get_blob_properties().copy.status
        if status == "success":
            return True
        if status != "pending" or time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def copy_succeeded(target: BlobClient, started: Mapping[str, Any]) -> bool:
    """True once the copy `start_copy_from_url` answered with `started` succeeded: at once
    when it completed within the call (same-account copies usually do), else after
    :func:`wait_for_copy`."""
    return started.get("copy_status") == "success" or wait_for_copy(target)
