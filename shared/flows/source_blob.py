"""The source blob of a tracked file: its fingerprint, our metadata stamp, and its archiving.

Every write to a blob, metadata included, gives it a new ETag. Event Grid raises no
BlobCreated event for a metadata write, but a polling trigger (and the local host) sees a new
ETag. The stamp therefore carries the record's row key and the version's fingerprint, so the
enqueuer recognises a delivery caused by its own stamp (see :func:`is_own_stamp`), and the
archiver recognises the tracked content under whatever ETag our stamp gave it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobProperties, BlobServiceClient

from shared import telemetry
from shared.config import ArchiveMode
from shared.tracking import TrackedFile, clean_etag, is_record_key, quoted_etag

__all__ = [
    "FINGERPRINT_KEY",
    "RECORD_KEY",
    "REQUEST_ID_LIMIT",
    "RESUBMIT_OF_KEY",
    "RESUBMIT_REQUEST_KEY",
    "STAMP_KEYS",
    "ArchiveResult",
    "Archiver",
    "fingerprint",
    "is_own_stamp",
    "is_permanent",
    "resubmit_fields",
    "stamp",
    "stamp_values",
    "stamped_record_key",
    "wait_for_copy",
    "with_stamp",
]

_LOGGER = logging.getLogger(__name__)

# Metadata names must be C# identifiers; Azure returns them lower-cased.
STATE_KEY = "d365_state"
MESSAGE_KEY = "d365_message_id"
RECORD_KEY = "d365_record"
FINGERPRINT_KEY = "d365_fingerprint"
REASON_KEY = "d365_reason"
# A resubmitted copy carries the record it came from and the request that made it.
RESUBMIT_OF_KEY = "d365_resubmit_of"
RESUBMIT_REQUEST_KEY = "d365_resubmit_request"
REQUEST_ID_LIMIT = 100
# In the order they are kept when the uploader's metadata leaves little room.
_STAMP_KEYS = (STATE_KEY, RECORD_KEY, FINGERPRINT_KEY, MESSAGE_KEY, REASON_KEY)
STAMP_KEYS = frozenset(_STAMP_KEYS)
"""Our stamp's metadata names."""
_REASON_LIMIT = 1024
METADATA_LIMIT = 8 * 1024
"""Azure's limit on a blob's metadata: names and values together."""
BLOB_NAME_LIMIT = 1024
_COPY_WAIT_SECONDS = 30.0
_OVERWRITTEN = "the blob was overwritten by a newer version first (tracked on its own)"


@dataclass(frozen=True)
class ArchiveResult:
    """What archiving did.

    :ivar archived_to: ``<container>/<path>`` of the copy; None when the file stayed.
    :ivar note: why the file stayed where it was, for the record's ``last_error``; None when
        it was archived (or stamped in place, as asked).
    :ivar retry: the copy is still running: try again later.
    """

    archived_to: str | None
    note: str | None = None
    retry: bool = False


def fingerprint(props: BlobProperties) -> str:
    """What identifies a blob's content across metadata writes: size, MD5 and creation time."""
    md5 = bytes(props.content_settings.content_md5 or b"").hex()
    created = props.creation_time.isoformat() if props.creation_time else ""
    return f"{props.size}:{md5}:{created}"


def stamped_record_key(props: BlobProperties) -> str | None:
    """The record key our stamp left on the blob; None when absent or not shaped like one
    (an uploader's metadata is input, never a table key as it stands)."""
    value = props.metadata.get(RECORD_KEY)
    return value if value and is_record_key(value) else None


def resubmit_fields(props: BlobProperties) -> dict[str, str]:
    """The record fields of a resubmitted copy (``resubmit_of``, ``resubmit_request``) from
    its metadata; empty when it names no record key (an uploader's metadata is input)."""
    origin = props.metadata.get(RESUBMIT_OF_KEY)
    if not origin or not is_record_key(origin):
        return {}
    request = props.metadata.get(RESUBMIT_REQUEST_KEY, "")[:REQUEST_ID_LIMIT]
    return {"resubmit_of": origin, "resubmit_request": request}


def is_own_stamp(props: BlobProperties, record: TrackedFile | None) -> bool:
    """True when this version differs from the tracked one only by our metadata stamp."""
    if record is None or record.blob != props.name:
        return False
    return record.fingerprint == fingerprint(props) == props.metadata.get(FINGERPRINT_KEY)


_PERMANENT_STATUSES = frozenset({400, 411, 413, 414})


def is_permanent(exc: HttpResponseError) -> bool:
    """A storage refusal that every retry would meet again (a name too long, metadata too
    large, an invalid request). A missing container or a missing permission is not: an
    operator can fix those while the retries last."""
    return exc.status_code in _PERMANENT_STATUSES


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


def _size(metadata: Mapping[str, str]) -> int:
    return sum(len(k) + len(v.encode()) for k, v in metadata.items())


def with_stamp(existing: Mapping[str, str], record: TrackedFile) -> dict[str, str]:
    """The uploader's metadata plus as much of our stamp as fits Azure's 8 KiB limit.

    The uploader's own metadata is kept whole; our reason is shortened first, then our least
    important keys are left out.
    """
    merged = {k: v for k, v in existing.items() if k not in _STAMP_KEYS}
    room = METADATA_LIMIT - _size(merged)
    for key, full in stamp_values(record).items():
        value = full[: max(room - len(key), 0)] if key == REASON_KEY else full
        cost = len(key) + len(value.encode())
        if cost <= room and value:
            merged[key] = value
            room -= cost
    return merged


def stamp(
    blob: BlobClient,
    record: TrackedFile,
    *,
    etag: str,
    metadata: Mapping[str, str] | None = None,
) -> str | None:
    """Merge our stamp into the blob's metadata if the blob is still version ``etag``.

    :keyword metadata: the version's metadata when the caller has it (saves a read).
    :returns: the blob's new ETag, or None when the blob is gone or was overwritten.
    """
    etag = quoted_etag(etag)
    try:
        if metadata is None:
            current = blob.get_blob_properties(
                etag=etag, match_condition=MatchConditions.IfNotModified
            )
            metadata = current.metadata
        result = blob.set_blob_metadata(
            with_stamp(metadata, record), etag=etag, match_condition=MatchConditions.IfNotModified
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        # Also what a retried write whose first answer was lost meets: the stamp is there.
        _LOGGER.info(
            "blob changed before it could be stamped blob=%s record=%s",
            record.blob,
            record.record_id,
            extra=telemetry.record_ids(record),
        )
        return None
    return clean_etag(str(result["etag"]))


class Archiver:
    """Files a finished blob away: moved under ``<archive>/<state>/<path>``, or stamped in place.

    A move copies first and deletes the source only when the copy succeeded and the source is
    still the tracked content, so nothing is ever deleted without a copy. Each step can be
    repeated after a crash: a copy carries the record key, so a later attempt finds its own.
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

    @property
    def inbound_container(self) -> str:
        """The container files are uploaded to."""
        return self._inbound

    def source(self, blob: str) -> BlobClient:
        """Client of a blob in the inbound container."""
        return self._service.get_blob_client(self._inbound, blob)

    def finish(self, record: TrackedFile) -> ArchiveResult:
        """Archive or stamp the source blob of a final record.

        :raises HttpResponseError: storage failed; :func:`is_permanent` tells whether a retry
            can help.
        """
        source = self.source(record.blob)
        try:
            props = source.get_blob_properties()
        except ResourceNotFoundError:
            props = None
        if self._mode is ArchiveMode.METADATA:
            return self._stamp_in_place(source, props, record)
        target, copied = self._target(record)
        if props is None:
            if copied == "success":
                # A crash came between deleting the source and recording the move.
                return self._archived(target, record)
            return ArchiveResult(None, self._stayed(record, "the blob was deleted first"))
        if fingerprint(props) != record.fingerprint:
            return ArchiveResult(None, self._stayed(record, _OVERWRITTEN))
        if copied == "pending" or (
            copied != "success" and not self._copy(source, props, target, record)
        ):
            return ArchiveResult(None, retry=True)
        try:
            source.delete_blob(etag=props.etag, match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            _LOGGER.info(
                "source blob changed after the copy; kept blob=%s",
                record.blob,
                extra=telemetry.record_ids(record),
            )
        except ResourceNotFoundError:
            pass
        return self._archived(target, record)

    def _copy(
        self, source: BlobClient, props: BlobProperties, target: BlobClient, record: TrackedFile
    ) -> bool:
        """Copy the source as it is now to the target; True once the copy completed."""
        # Pinned to this version: an overwrite meanwhile fails the copy, not archives it.
        started = target.start_copy_from_url(
            source.url,
            metadata=with_stamp(props.metadata, record),
            source_etag=props.etag,
            source_match_condition=MatchConditions.IfNotModified,
        )
        # Same-account copies usually complete within the call: no need to ask again.
        return started.get("copy_status") == "success" or wait_for_copy(target)

    def ensure_ready(self) -> None:
        """Create the archive container when missing (move mode only)."""
        if self._mode is ArchiveMode.MOVE:
            with contextlib.suppress(ResourceExistsError):
                self._service.create_container(self._archive)

    def _target(self, record: TrackedFile) -> tuple[BlobClient, str]:
        """``<state>/<path>``, or with a record-id suffix when another file holds that name;
        with the state of our copy there (see :func:`_copy_state`)."""
        target = self._service.get_blob_client(self._archive, f"{record.state.value}/{record.blob}")
        state = _copy_state(target, record)
        if state != "other":
            return target, state
        path = PurePosixPath(record.blob)
        unique = path.with_name(f"{path.stem}.{record.record_id[:12]}{path.suffix}")
        target = self._service.get_blob_client(self._archive, f"{record.state.value}/{unique}")
        return target, _copy_state(target, record)

    def _stamp_in_place(
        self, source: BlobClient, props: BlobProperties | None, record: TrackedFile
    ) -> ArchiveResult:
        if props is None:
            return ArchiveResult(None, self._stayed(record, "the blob was deleted first"))
        if fingerprint(props) != record.fingerprint:
            return ArchiveResult(None, self._stayed(record, _OVERWRITTEN))
        stamp(source, record, etag=props.etag, metadata=props.metadata)
        return ArchiveResult(None)

    def _archived(self, target: BlobClient, record: TrackedFile) -> ArchiveResult:
        location = f"{self._archive}/{target.blob_name}"
        _LOGGER.info(
            "archived blob=%s to=%s message_id=%s",
            record.blob,
            location,
            record.message_id,
            extra=telemetry.record_ids(record, archived_to=location),
        )
        return ArchiveResult(location)

    def _stayed(self, record: TrackedFile, why: str) -> str:
        _LOGGER.warning(
            "not archived blob=%s record=%s: %s",
            record.blob,
            record.record_id,
            why,
            extra=telemetry.record_ids(record),
        )
        return f"not archived: {why}; nothing of {self._inbound}/{record.blob} was moved"


def _copy_state(target: BlobClient, record: TrackedFile) -> str:
    """``absent``; for our own copy its status (``pending``, ``success``, ``failed``...);
    ``other`` when another file holds the name."""
    try:
        props = target.get_blob_properties()
    except ResourceNotFoundError:
        return "absent"
    if props.metadata.get(RECORD_KEY) != record.row_key:
        return "other"
    return str(props.copy.status or "success")


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
