"""One message's download, streamed into staged blocks of its target blob, then recorded.

Each chunk of F&O's answer fills a block; full blocks are staged a few at a time in the
background (:class:`~shared.clients.storage.blocks.BlockWriter`), so memory stays at
``block_size * (blocks_in_flight + 1)`` whatever the file's size. Only the commit (with
metadata: message id, activity id, correlation id, dequeue time, route) makes the blob exist,
and only if it does not exist yet. A message whose blobs are committed already, or for which
F&O has no file, is recorded without writing anything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import BlobClient, ContainerClient

from shared import telemetry
from shared.clients.d365 import D365Client, DequeuedMessage
from shared.clients.storage import MESSAGE_ID_METADATA
from shared.config.exports import ExportRoute
from shared.flows.export.events import CAUSE_STORAGE, error_text
from shared.flows.export.failures import Failures, kept_reason
from shared.flows.export.models import ExportPolicy, ExportTickResult
from shared.flows.export.unzip import PackageWriter, Written
from shared.tracking import ExportRecord, ExportStore

__all__ = ["MessageWriter"]

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Found:
    """A message to record as written without writing it: its blobs (None: those its record
    names already), their size, and why."""

    blobs: tuple[str, ...] | None
    size: int
    reason: str


class MessageWriter:
    """Writes the file of one dequeued message into blobs, once, then records it Downloaded.

    :param store: the export records.
    :param client: the F&O client (the download).
    :param policy: block sizes and zip limits.
    :param failures: where a failed write is recorded.
    :keyword temp_dir: where an unzip route keeps the package while reading it.
    """

    def __init__(
        self,
        store: ExportStore,
        client: D365Client,
        policy: ExportPolicy,
        failures: Failures,
        *,
        temp_dir: str | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._policy = policy
        self._failures = failures
        self._packages = PackageWriter(policy, temp_dir=temp_dir)

    def write_once(
        self,
        route: ExportRoute,
        container: ContainerClient,
        message: DequeuedMessage,
        record: ExportRecord,
        result: ExportTickResult,
    ) -> ExportRecord | None:
        """The record with its blobs committed, or given up, writing them unless already
        there or given up; None when the write failed (recorded, retried when F&O offers the
        message again)."""
        if record.gave_up_at is not None:
            return record  # only its acknowledgement is left
        found = self._found(route, container, message, record)
        if found is not None:
            return self._record_written(record, found.blobs, found.size, reason=found.reason)
        metadata = _metadata(route, message, record)
        committed: list[str] = []  # an unzip's members committed so far
        try:
            if route.unzip:
                written = self._packages.write(
                    container,
                    lambda package: self._client.download(message.download_location, package),
                    folder=record.target,
                    key=record.message_id,
                    source=f"the exported package of message {record.message_id}",
                    metadata=metadata,
                    committed=committed,
                )
            else:
                blob = container.get_blob_client(record.target)
                written = Written((record.target,), self._write_blob(blob, message, metadata))
        except Exception as exc:  # any (a storage, F&O or disk error...): recorded, never acked
            return self._failures.write_failed(record, exc, tuple(committed))
        if written.refused is not None:
            reason = kept_reason(written.refused, record.container, written.blobs)
            return self._failures.give_up(record, reason, blobs=written.blobs, size=written.size)
        result.written += 1
        _LOGGER.info(
            "exported message_id=%s route=%s blobs=%d bytes=%d",
            record.message_id,
            route.name,
            len(written.blobs),
            written.size,
        )
        return self._record_written(record, written.blobs, written.size)

    def _found(
        self,
        route: ExportRoute,
        container: ContainerClient,
        message: DequeuedMessage,
        record: ExportRecord,
    ) -> _Found | None:
        """What is to be recorded without writing (written before, or no file from F&O);
        None when the message is to be written."""
        if record.is_written:
            return _Found(None, record.size or 0, "already written; not again")
        if not route.unzip:
            existing = _committed_size(container.get_blob_client(record.target), record)
            if existing is not None:
                return _Found((record.target,), existing, "found committed; not again")
        if message.is_download_file_exist is False:
            # Nothing to write (e.g. "Prevent upload when zero records"); left unacked it would
            # come back every 30 minutes for ever.
            reason = (
                f"F&O has no file for this message ({message.file_download_error_message}); "
                "acknowledged with nothing written"
            )[:500]
            _LOGGER.warning(
                "export without a file message_id=%s route=%s: %s",
                record.message_id,
                record.route,
                reason,
                extra=telemetry.record_ids(record),
            )
            return _Found((), 0, reason)
        return None

    def _record_written(
        self,
        record: ExportRecord,
        blobs: Sequence[str] | None,
        size: int,
        *,
        reason: str | None = None,
    ) -> ExportRecord | None:
        """Record Downloaded; None when storage refused it (recorded as a failure, so the
        message is not acked: its blobs are found or written again when F&O offers it again)."""
        try:
            return self._store.downloaded(record, blobs, size, reason=reason)
        except AzureError as exc:
            # Our storage: retried at every offer without a cap (giving up would ack a message
            # no record describes); each failure is an export_failed event (cause storage).
            self._failures.fail(
                record,
                f"blobs written, but the record of them was not: {error_text(exc)}; "
                "retried when F&O offers it again",
                cause=CAUSE_STORAGE,
            )
            return None

    def _write_blob(
        self, blob: BlobClient, message: DequeuedMessage, metadata: Mapping[str, str]
    ) -> int:
        with self._policy.block_writer(blob) as writer:
            self._client.download(
                message.download_location,
                writer,
                chunk_size=self._policy.block_size,
            )
            writer.commit(metadata)
            return writer.size


def _metadata(route: ExportRoute, message: DequeuedMessage, record: ExportRecord) -> dict[str, str]:
    return {
        MESSAGE_ID_METADATA: record.message_id,
        "d365_activity_id": route.activity_id,
        "d365_correlation_id": message.correlation_id,
        "d365_dequeued_at": record.dequeued_at.astimezone(UTC).isoformat(),
        "d365_export_route": route.name,
    }


def _committed_size(blob: BlobClient, record: ExportRecord) -> int | None:
    """The size of the target blob when it was committed for this message, else None."""
    try:
        properties = blob.get_blob_properties()
    except ResourceNotFoundError:
        return None
    if (properties.metadata or {}).get(MESSAGE_ID_METADATA) != record.message_id:
        return None
    return int(properties.size)
