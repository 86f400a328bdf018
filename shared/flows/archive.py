"""The archive flow: a finished file's source blob is moved under its state, or stamped in place.

The inbound container's handle (:class:`InboundContainer`) gives the flows the source blobs
and files each finished one away (``ARCHIVE_MODE``).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import PurePosixPath

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobProperties, BlobServiceClient

from shared import telemetry
from shared.clients.storage import copy_succeeded
from shared.config import ArchiveMode
from shared.flows.source_blob import RECORD_KEY, fingerprint, stamp, with_stamp
from shared.tracking import TrackedFile

__all__ = ["ArchiveResult", "InboundContainer"]

_LOGGER = logging.getLogger(__name__)

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


class InboundContainer:
    """The inbound container: its source blobs, each filed away when finished (moved under
    ``<archive>/<state>/<path>``, or stamped in place).

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

        :raises HttpResponseError: storage failed;
            :func:`shared.clients.storage.is_permanent` tells whether a retry
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
        return copy_succeeded(target, started)

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
