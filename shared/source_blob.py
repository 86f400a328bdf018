"""The source blob of a tracked file: its fingerprint, our metadata stamp, and its archiving.

Every write to a blob, metadata included, gives it a new ETag. Event Grid raises no
BlobCreated event for a metadata write, but a polling trigger (and the local host) sees a new
ETag. The stamp therefore carries the record's row key and the version's fingerprint, so the
enqueuer recognises a delivery caused by its own stamp (see :func:`is_own_stamp`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import PurePosixPath

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobProperties, BlobServiceClient

from shared.settings import ArchiveMode
from shared.tracking import TrackedFile

_LOGGER = logging.getLogger(__name__)

# Metadata names must be C# identifiers; Azure returns them lower-cased.
STATE_KEY = "d365_state"
MESSAGE_KEY = "d365_message_id"
RECORD_KEY = "d365_record"
FINGERPRINT_KEY = "d365_fingerprint"
REASON_KEY = "d365_reason"
_STAMP_KEYS = (STATE_KEY, MESSAGE_KEY, RECORD_KEY, FINGERPRINT_KEY, REASON_KEY)
_REASON_LIMIT = 1024
_COPY_WAIT_SECONDS = 60.0
STREAM_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class ArchiveResult:
    """Where the blob went (None when it stayed) and the source's new ETag if it stayed."""

    archived_to: str | None
    stamped_etag: str | None


def streaming_client(blob: BlobClient) -> BlobClient:
    """A client on the same blob that downloads in ranges of :data:`STREAM_CHUNK` bytes.

    The SDK's first GET holds up to 32 MiB in memory, so a file of that size would be read
    whole; files go to F&O as a stream, with a few MiB in memory whatever their size.
    """
    return BlobClient.from_blob_url(
        blob.url,
        credential=blob.credential,
        max_single_get_size=STREAM_CHUNK,
        max_chunk_get_size=STREAM_CHUNK,
    )


def quoted(etag: str) -> str:
    """An ETag in the quoted form conditional headers expect."""
    return '"' + etag.strip().strip('"') + '"'


def fingerprint(props: BlobProperties) -> str:
    """What identifies a blob's content across metadata writes: size, MD5 and creation time."""
    md5 = bytes(props.content_settings.content_md5 or b"").hex()
    created = props.creation_time.isoformat() if props.creation_time else ""
    return f"{props.size}:{md5}:{created}"


def is_own_stamp(props: BlobProperties, record: TrackedFile | None) -> bool:
    """True when this version differs from the tracked one only by our metadata stamp."""
    if record is None or record.blob != props.name:
        return False
    if record.stamped_etag and record.stamped_etag == props.etag.strip('"'):
        return True
    return record.fingerprint == fingerprint(props) == props.metadata.get(FINGERPRINT_KEY)


def stamp_values(record: TrackedFile) -> dict[str, str]:
    """The metadata we put on a source blob for a record."""
    values = {
        STATE_KEY: record.state.value,
        RECORD_KEY: record.row_key,
        FINGERPRINT_KEY: record.fingerprint or "",
    }
    if record.message_id:
        values[MESSAGE_KEY] = record.message_id
    reason = record.last_error or record.reject_reason
    if reason:
        # Metadata values are ASCII header text.
        values[REASON_KEY] = reason.encode("ascii", "replace").decode()[:_REASON_LIMIT]
    return values


def stamp(blob: BlobClient, record: TrackedFile, *, etag: str) -> str | None:
    """Merge our stamp into the blob's metadata if the blob is still version ``etag``.

    :returns: the blob's new ETag, or None when the blob is gone or was overwritten.
    """
    etag = quoted(etag)
    try:
        current = blob.get_blob_properties(etag=etag, match_condition=MatchConditions.IfNotModified)
        metadata = {k: v for k, v in current.metadata.items() if k not in _STAMP_KEYS}
        metadata.update(stamp_values(record))
        result = blob.set_blob_metadata(
            metadata, etag=etag, match_condition=MatchConditions.IfNotModified
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        _LOGGER.info(
            "blob changed before it could be stamped blob=%s record=%s",
            record.blob,
            record.record_id,
        )
        return None
    return str(result["etag"]).strip('"')


class Archiver:
    """Files a finished blob away: moved under ``<archive>/<state>/<path>``, or stamped in place.

    A move copies first and deletes the source only when the copy succeeded and the source is
    still the version that was tracked, so nothing is ever deleted without a copy.
    """

    def __init__(
        self,
        service: BlobServiceClient,
        *,
        inbound_container: str,
        archive_container: str,
        mode: ArchiveMode = ArchiveMode.MOVE,
    ) -> None:
        self._service = service
        self._inbound = inbound_container
        self._archive = archive_container
        self._mode = mode

    def source(self, blob: str) -> BlobClient:
        """Client of a blob in the inbound container."""
        return self._service.get_blob_client(self._inbound, blob)

    def finish(self, record: TrackedFile) -> ArchiveResult:
        """Archive or stamp the source blob of a terminal record."""
        source = self.source(record.blob)
        etag = quoted(record.stamped_etag or record.blob_etag)
        if self._mode is ArchiveMode.METADATA:
            return ArchiveResult(None, stamp(source, record, etag=etag))
        target_name = f"{record.state.value}/{record.blob}"
        target = self._service.get_blob_client(self._archive, target_name)
        if target.exists():
            # The same name archived before with this outcome (a daily file): keep both.
            path = PurePosixPath(record.blob)
            unique = path.with_name(f"{path.stem}.{record.record_id[:12]}{path.suffix}")
            target_name = f"{record.state.value}/{unique}"
            target = self._service.get_blob_client(self._archive, target_name)
        try:
            props = source.get_blob_properties(
                etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            _LOGGER.warning(
                "source blob changed or gone; not archived blob=%s record=%s",
                record.blob,
                record.record_id,
            )
            return ArchiveResult(None, None)
        metadata = {k: v for k, v in props.metadata.items() if k not in _STAMP_KEYS}
        metadata.update(stamp_values(record))
        # Pinned to the tracked version: an overwrite meanwhile is not archived under this one.
        target.start_copy_from_url(
            source.url,
            metadata=metadata,
            source_etag=etag,
            source_match_condition=MatchConditions.IfNotModified,
        )
        if not self._wait_for_copy(target):
            _LOGGER.warning(
                "archive copy did not complete; source kept blob=%s record=%s",
                record.blob,
                record.record_id,
            )
            return ArchiveResult(None, None)
        try:
            source.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            _LOGGER.info("source blob changed after the copy; kept blob=%s", record.blob)
        location = f"{self._archive}/{target_name}"
        _LOGGER.info(
            "archived blob=%s to=%s message_id=%s", record.blob, location, record.message_id
        )
        return ArchiveResult(location, None)

    def ensure_ready(self) -> None:
        """Create the archive container when missing (move mode only)."""
        if self._mode is ArchiveMode.MOVE:
            with contextlib.suppress(ResourceExistsError):
                self._service.create_container(self._archive)

    @staticmethod
    def _wait_for_copy(target: BlobClient) -> bool:
        # Same-account copies usually finish at once; bound the wait either way.
        deadline = time.monotonic() + _COPY_WAIT_SECONDS
        while True:
            status = target.get_blob_properties().copy.status
            if status == "success":
                return True
            if status != "pending" or time.monotonic() > deadline:
                return False
            time.sleep(0.5)
