"""The flow of an exported message: dequeue, stream into blob storage, commit, then ack.

Per tick, for each enabled export route (``EXPORT_ROUTES``), the exporter takes the route's
lease (one tick at a time per route, across instances), then dequeues until F&O answers 204,
``max_messages`` is reached or the time budget is spent. For each message:

1. **Record Dequeued** (insert, or the next dequeue of a re-delivered message, found by its
   message id). The target name is fixed at the first dequeue (``{date}`` stays that day's).
   *Fails*: nothing is downloaded or acked; F&O offers the message again in 30 minutes.
   A dequeue answer saying F&O has no file (``IsDownLoadFileExist`` false, e.g. a job that
   prevents uploads of zero records) has nothing to write: it is recorded Downloaded with no
   blob and F&O's ``FileDownLoadErrorMessage``, then acked (left unacked, it would come back
   every 30 minutes for ever).
2. **Already written?** When the record says the blobs are committed, or the target blob
   exists with this message id in its metadata (a crash between the commit and step 4),
   nothing is written again: go to the ack.
3. **Stream the download into the target blob**: each chunk of F&O's answer fills a block;
   full blocks are staged (``stage_block``) a few at a time in the background, so memory
   stays at ``block_size * (blocks_in_flight + 1)`` whatever the file's size. Only
   ``commit_block_list`` (with metadata: message id, activity id, correlation id, dequeue
   time, route) makes the blob exist, and only if it does not exist yet: a commit whose
   answer was lost is not committed again (the retry finds the blob with this message id:
   done); a blob with other metadata is left alone and the write fails, naming it. Staged
   blocks are invisible and discarded by the next commit or after a week. With ``unzip``,
   the package is first streamed into a local temporary file (a zip's directory is at its
   end, so reading its members needs random access; the file is unlinked on creation and so
   removed however the process ends), then opened by :mod:`shared.zips`: what its
   directory declares is checked against the ``ZIP_*`` limits before any member is written,
   then each member is streamed from it into its own blob the same way, every inflated byte
   counted.
   *Fails* part way (connection lost, F&O error, storage error): no blob under the final
   name (an unzip may have committed some members whole: they are downloaded again and
   kept, as their commit finds them with this message id); the record says ExportFailed and
   why; the message is not acked, so F&O offers it again in 30 minutes and the download is
   retried. A failure of the message's own (F&O's download, the package, a target name
   taken, an untrusted DownloadLocation) counts toward ``EXPORT_MAX_ATTEMPTS``
   (``failed_attempts``, "attempt 2 of 10"); one of our own storage (``AzureError``) does
   not: an outage or a lost permission must not give up, and ack, every message it meets.
   *Given up*: the failure that makes ``EXPORT_MAX_ATTEMPTS`` counted, or the package is
   refused by the zip limits or is not a readable zip (the same bytes come back at every
   offer: retrying cannot help). The refused package is first written unopened as
   ``<folder><message id>.zip``; then the record says ExportFailed for good (``gave_up_at``,
   the reason, what was kept: that blob, and the members committed before the failure),
   then the ``export_failed`` event carries ``gave_up``, and the message is acked (step 5)
   so that F&O stops offering it. *Stop before the record write, or storage refuses it*:
   recorded as a failure when storage lets us, not acked, the route's next message goes on;
   F&O offers it again, and it is tried and given up again; *after it*: the next offer only
   acks (no download, nothing written).
4. **Record Downloaded** with the blob names (a list too long for the row goes to a blob of
   the errors container first, and the row keeps its count and that blob's name). *Fails*:
   recorded ExportFailed when storage lets us, not acked; the message comes back and step 2
   finds the blob by its metadata (for an unzip, the members are downloaded again and kept).
   This is our own storage: retried at every offer without a cap (giving up would ack a
   message whose blobs no record names), each failure an ``export_failed`` event with
   ``cause`` ``storage``, so the alert fires while it lasts.
5. **Ack** with the dequeue body exactly as received. *Fails* (or its answer is lost): the
   record says ExportFailed with the ack's error (a message given up keeps its reason as the
   error, the ack's in its history); the message comes back after 30 minutes
   and step 2 acks it without writing. An ack whose answer was lost is sent again by the
   client (F&O answers 200 to a repeated ack); if every attempt's answer is lost, F&O does not
   offer the message again and its record stays ExportFailed, naming the ack, the blob in
   place.
6. **Record Acked** (a message given up stays ExportFailed, with ``acked_at``). *Fails*:
   the blob is in place and F&O is done; the record keeps saying Downloaded.

A record write refused because another writer changed it (a tick that overran its lease)
leaves the message to that writer; one whose answer was lost is recognised as ours (its
``write_id``) and the steps go on. A dequeue that fails ends the route's tick; the next tick
starts again.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobBlock, BlobClient, BlobServiceClient, ContainerClient

from shared import telemetry
from shared.clients.d365 import D365Client, D365Error, DequeuedMessage, normalize_guid
from shared.config import Settings
from shared.config.exports import ExportRoute, ExportRoutes
from shared.errors import AppError, safe_text
from shared.tracking import (
    ConcurrencyError,
    ExportRecord,
    ExportState,
    ExportStore,
    LeaseHeld,
    utcnow,
)
from shared.zips import LimitedZip, MemberReader, ZipLimits, ZipRefusedError

__all__ = ["BlobTakenError", "BlockWriter", "ExportPolicy", "ExportTickResult", "Exporter"]

_LOGGER = logging.getLogger(__name__)
META_MESSAGE_ID = "d365_message_id"
# The cause of a failed attempt, as the export_failed event's ``cause`` says it.
_MESSAGE = "message"
"""The message's own (F&O's download, the package, the target name): counts toward giving up."""
_STORAGE = "storage"
"""Our own storage refused a write: retried at every offer, never given up for it."""
_ACK = "ack"
"""F&O did not take the ack: retried at the next offer (which only acks)."""


@dataclass(frozen=True)
class ExportPolicy:
    """How a tick runs.

    :param lease: how long a route's lease lasts (the tick's budget plus a download in flight).
    :param time_budget: no new message is dequeued after this.
    :param block_size: bytes per staged block.
    :param blocks_in_flight: blocks staged at once while the download goes on.
    :param max_attempts: tries of one message (one per time F&O offers it) before it is given
        up (``EXPORT_MAX_ATTEMPTS``).
    :param zip_limits: what an unzip route's package may hold (the ``ZIP_*`` settings).
    """

    lease: timedelta = timedelta(minutes=10)
    time_budget: timedelta = timedelta(minutes=4)
    block_size: int = 4 * 1024 * 1024
    blocks_in_flight: int = 4
    max_attempts: int = Settings.export_max_attempts
    zip_limits: ZipLimits = field(default_factory=ZipLimits)


@dataclass(frozen=True)
class _Written:
    """What a write left in the container: the blobs, the download's size, and the zip
    refusal when the package was kept unopened instead of unzipped."""

    blobs: tuple[str, ...]
    size: int
    refused: ZipRefusedError | None = None


@dataclass(frozen=True)
class _Found:
    """A message to record as written without writing it: its blobs (None: those its record
    names already), their size, and why."""

    blobs: tuple[str, ...] | None
    size: int
    reason: str


@dataclass
class ExportTickResult:
    """What one tick did, per outcome (counts of messages): each message dequeued is counted
    once, ``acked`` or ``failed`` (not written, not acked, or given up), unless it was left
    to another writer."""

    routes: int = 0
    skipped_leased: int = 0
    dequeued: int = 0
    written: int = 0
    acked: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class BlobTakenError(AppError):
    """An export blob exists already and was not written for this message: left as it is."""


class BlockWriter:
    """A write-only file object that stages what is written as blocks of one block blob.

    Nothing exists under the blob's name until :meth:`commit`. Blocks are staged by a small
    thread pool, at most ``in_flight`` at once (writes wait for a free slot), so memory is
    bounded by ``block_size * (in_flight + 1)``.
    """

    def __init__(self, blob: BlobClient, *, block_size: int, in_flight: int) -> None:
        self._blob = blob
        self._block_size = block_size
        self._buffer = bytearray()
        self._slots = threading.BoundedSemaphore(in_flight)
        self._pool = ThreadPoolExecutor(in_flight, thread_name_prefix="export-block")
        self._futures: list[Future[None]] = []
        self._ids: list[str] = []
        # One prefix per attempt: a retry's blocks never mix with a failed attempt's.
        self._attempt = uuid.uuid4().hex
        self.size = 0

    def writable(self) -> bool:
        """Always True."""
        return True

    def seekable(self) -> bool:
        """False: a download that breaks part way is not rewound into the same blocks."""
        return False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Buffer ``data``; stage each full block."""
        self.size += len(data)
        if not self._buffer and len(data) == self._block_size:
            # A read of exactly one block (the download asks for block-sized chunks): no copy.
            self._stage(bytes(data))
            return len(data)
        self._buffer += data
        while len(self._buffer) >= self._block_size:
            chunk = bytes(self._buffer[: self._block_size])
            del self._buffer[: self._block_size]
            self._stage(chunk)
        return len(data)

    def commit(self, metadata: Mapping[str, str]) -> None:
        """Stage the rest, wait for every block, then commit them with ``metadata``, only if
        the blob does not exist: a commit whose answer was lost, sent again, must not commit
        twice (a new ETag and, in Azure, a second BlobCreated event). A blob that exists with
        this message's id in its metadata is that commit, or an earlier attempt's: done.

        :raises BlobTakenError: the blob exists for another message, or was not written by us.
        :raises AzureError: a block or the commit failed (the blob is not created/changed).
        """
        if self._buffer:
            self._stage(bytes(self._buffer))
            self._buffer.clear()
        # An empty file commits an empty block list: a blob of 0 bytes (no empty block).
        self._wait()
        try:
            self._blob.commit_block_list(
                [BlobBlock(block_id) for block_id in self._ids],
                metadata=dict(metadata),
                match_condition=MatchConditions.IfMissing,
            )
        except ResourceExistsError:
            self._check_ours(metadata[META_MESSAGE_ID])

    def _check_ours(self, message_id: str) -> None:
        found = (self._blob.get_blob_properties().metadata or {}).get(META_MESSAGE_ID)
        if found != message_id:
            owner = f"its {META_MESSAGE_ID} is {found[:100]!r}" if found else "no message id"
            raise BlobTakenError(
                f"the export blob {self._blob.blob_name!r} in container "
                f"{self._blob.container_name!r} already exists and was not written for this "
                f"message ({owner}); it was left as it is: move or delete it"
            )
        _LOGGER.info(
            "export blob %s already committed for message_id=%s; not committed again",
            self._blob.blob_name,
            message_id,
        )

    def close(self) -> None:
        """Stop the stager; blocks not committed stay invisible."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BlockWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _stage(self, chunk: bytes) -> None:
        self._raise_failed()
        block_id = base64.b64encode(f"{self._attempt}{len(self._ids):08d}".encode()).decode()
        self._ids.append(block_id)
        self._slots.acquire()
        future = self._pool.submit(self._blob.stage_block, block_id, chunk, length=len(chunk))
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def _raise_failed(self) -> None:
        done = [f for f in self._futures if f.done()]
        for future in done:
            future.result()
        self._futures = [f for f in self._futures if not f.done()]

    def _wait(self) -> None:
        for future in self._futures:
            future.result()
        self._futures.clear()


class Exporter:
    """Runs the export routes: see the module docstring for the steps and their failures.

    :param store: the export records and leases.
    :param client: the F&O client.
    :param blob_service: the storage account the exports land in.
    :param routes: the export routes.
    :keyword policy: lease, budget and block sizes.
    :keyword clock: the time source (UTC).
    :keyword temp_dir: where an unzip route keeps the package while reading it.
    """

    def __init__(
        self,
        store: ExportStore,
        client: D365Client,
        blob_service: BlobServiceClient,
        routes: ExportRoutes,
        *,
        policy: ExportPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        temp_dir: str | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._blobs = blob_service
        self._routes = routes
        self._policy = policy or ExportPolicy()
        self._clock = clock
        self._temp_dir = temp_dir
        self._holder = uuid.uuid4().hex

    @property
    def store(self) -> ExportStore:
        """The export records and leases."""
        return self._store

    def tick(self) -> ExportTickResult:
        """Run every enabled route once."""
        result = ExportTickResult()
        for route in self._routes:
            if not route.enabled:
                continue
            try:
                self.run_route(route, result)
            except Exception as exc:  # one route's defect must not stop the others
                result.errors.append(f"{route.name}: {_reason(exc)}")
                _LOGGER.exception(
                    "export route=%s failed: %s",
                    route.name,
                    _reason(exc),
                    extra=telemetry.log_ids(
                        event="export_failed", route=route.name, reason=_reason(exc)
                    ),
                )
        return result

    def run_route(self, route: ExportRoute, result: ExportTickResult | None = None) -> None:
        """Dequeue and export the messages of one route under its lease."""
        result = result or ExportTickResult()
        lease = self._store.lease(route.name).acquire(
            self._holder, until=self._clock() + self._policy.lease
        )
        if lease is None:
            result.skipped_leased += 1
            _LOGGER.info("export route=%s skipped: another tick holds its lease", route.name)
            return
        result.routes += 1
        try:
            container = self._container(route)
            deadline = time.monotonic() + self._policy.time_budget.total_seconds()
            for _ in range(route.max_messages):
                if time.monotonic() > deadline:
                    break
                message = self._client.dequeue(route.activity_id)
                if message is None:
                    break
                result.dequeued += 1
                self._export(route, container, message, result)
        except (D365Error, AzureError, ConcurrencyError, ValueError) as exc:
            # ValueError: a dequeue answer whose CorrelationId is not a GUID (junk from F&O).
            result.errors.append(f"{route.name}: {_reason(exc)}")
            _LOGGER.warning(
                "export route=%s tick ended early: %s",
                route.name,
                _reason(exc),
                extra=telemetry.log_ids(
                    event="export_failed",
                    route=route.name,
                    activity_id=route.activity_id,
                    reason=_reason(exc),
                ),
            )
        finally:
            self._release(lease)

    def _release(self, lease: LeaseHeld) -> None:
        """End the route's lease; if storage fails, it runs out at its ``until``."""
        try:
            self._store.lease(lease.name).release(lease)
        except AzureError as exc:
            _LOGGER.warning("export lease %s not released: %s", lease.name, _reason(exc))

    def _container(self, route: ExportRoute) -> ContainerClient:
        container = self._blobs.get_container_client(route.container)
        with contextlib.suppress(ResourceExistsError):
            container.create_container()
        return container

    def _export(
        self,
        route: ExportRoute,
        container: ContainerClient,
        message: DequeuedMessage,
        result: ExportTickResult,
    ) -> None:
        message_id = normalize_guid(message.correlation_id, "CorrelationId")
        now = self._clock()
        try:
            record = self._store.dequeued(
                message_id=message_id,
                route=route.name,
                activity_id=route.activity_id,
                container=route.container,
                target=_target(route, message_id, now),
            )
            record = self._write_once(route, container, message, record, result)
            # Each message is counted once: acked, or failed (not written, not acked, or given up).
            if record is not None and self._ack(route, message, record) and not record.gave_up_at:
                result.acked += 1
            else:
                result.failed += 1
        except ConcurrencyError as exc:
            _LOGGER.warning("export message_id=%s left to another writer: %s", message_id, exc)

    def _write_once(
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
                written = self._write_package(container, message, record, metadata, committed)
            else:
                blob = container.get_blob_client(record.target)
                written = _Written((record.target,), self._write_blob(blob, message, metadata))
        except Exception as exc:  # any (a storage, F&O or disk error...): recorded, never acked
            return self._write_failed(record, exc, tuple(committed))
        if written.refused is not None:
            reason = _kept_reason(written.refused, record.container, written.blobs)
            return self._give_up(record, reason, blobs=written.blobs, size=written.size)
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
                extra=_log_ids(record, record.state),
            )
            return _Found((), 0, reason)
        return None

    def _write_failed(
        self, record: ExportRecord, exc: Exception, committed: tuple[str, ...]
    ) -> ExportRecord | None:
        """Record a failed write: retried when F&O offers the message again, or given up
        (None, or the given-up record to acknowledge) once EXPORT_MAX_ATTEMPTS failures of
        the message's own are spent. ``committed``: the members an unzip committed before.

        A failure of our own storage (:class:`AzureError`) is retried without counting: an
        outage or a lost permission would otherwise give up, and ack, every message it met.
        """
        most = self._policy.max_attempts
        if isinstance(exc, AzureError):
            self._fail(
                record,
                f"download not written: {_reason(exc)}; our storage failed, which does not count "
                f"toward EXPORT_MAX_ATTEMPTS ({record.failed_attempts} of {most} so far): "
                "retried when F&O offers it again",
                cause=_STORAGE,
            )
            return None
        attempts = record.failed_attempts + 1
        if attempts < most:
            self._fail(
                record,
                f"download not written: {_reason(exc)}; retried when F&O offers it again "
                f"(attempt {attempts} of {most}, EXPORT_MAX_ATTEMPTS)",
                cause=_MESSAGE,
            )
            return None
        reason = (
            f"given up after {attempts} attempt{'s' if attempts != 1 else ''} "
            f"(EXPORT_MAX_ATTEMPTS) and acknowledged, so that F&O stops offering it; "
            f"{_what_was_kept(record.container, committed)}: F&O still has the export in the "
            "job's history (Data management > Job history), or run the export job again. The "
            f"last attempt: download not written: {_reason(exc)}"
        )
        return self._give_up(record, reason, blobs=committed)

    def _give_up(
        self,
        record: ExportRecord,
        reason: str,
        *,
        blobs: tuple[str, ...] = (),
        size: int | None = None,
    ) -> ExportRecord | None:
        """Record the message as given up for good (its acknowledgement follows), then log it
        as the ``export_failed`` event the alert reads; None when storage refused the record
        (recorded as a failure, not acked: it is tried, and given up, again at the next offer).
        """
        try:
            given_up = self._store.gave_up(record, reason, blobs=blobs, size=size)
        except AzureError as exc:
            self._fail(
                record,
                f"to be given up, but the record of it was not written: {_reason(exc)}; "
                f"retried when F&O offers it again. Why: {reason}",
                cause=_STORAGE,
            )
            return None
        _tell_failed(record, reason, gave_up=True)
        return given_up

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
            self._fail(
                record,
                f"blobs written, but the record of them was not: {_reason(exc)}; "
                "retried when F&O offers it again",
                cause=_STORAGE,
            )
            return None

    def _write_blob(
        self, blob: BlobClient, message: DequeuedMessage, metadata: Mapping[str, str]
    ) -> int:
        with self._writer(blob) as writer:
            self._client.download(
                message.download_location,
                writer,
                chunk_size=self._policy.block_size,
            )
            writer.commit(metadata)
            return writer.size

    def _write_package(
        self,
        container: ContainerClient,
        message: DequeuedMessage,
        record: ExportRecord,
        metadata: Mapping[str, str],
        committed: list[str],
    ) -> _Written:
        """Download the package to a temporary file, then write each member as a blob; a
        package the zip limits refuse is written unopened as one blob instead (after the
        members committed before the refusal, in ``committed`` too)."""
        with tempfile.TemporaryFile(dir=self._temp_dir) as package:
            size = self._client.download(message.download_location, package)
            try:
                self._unzip(package, container, record, metadata, committed)
            except ZipRefusedError as exc:
                package.seek(0)
                kept = f"{record.target}{record.message_id}.zip"
                self._copy(package, container.get_blob_client(kept), metadata)
                return _Written((*committed, kept), size, refused=exc)
            return _Written(tuple(committed), size)

    def _unzip(
        self,
        package: BinaryIO,
        container: ContainerClient,
        record: ExportRecord,
        metadata: Mapping[str, str],
        committed: list[str],
    ) -> None:
        """Each member of the package as a blob under the record's target folder, after
        what the zip declares passed the limits (nothing is written otherwise); each one
        committed is added to ``committed`` at once, so a failure later on can name it."""
        source = f"the exported package of message {record.message_id}"
        with LimitedZip(package, source=source, limits=self._policy.zip_limits) as archive:
            archive.check()
            names = [record.target + _member_name(m.filename, source) for m in archive.members]
            for member, name in zip(archive.members, names, strict=True):
                with archive.open(member) as stream:
                    self._copy(stream, container.get_blob_client(name), metadata)
                committed.append(name)

    def _copy(
        self, source: BinaryIO | MemberReader, blob: BlobClient, metadata: Mapping[str, str]
    ) -> None:
        with self._writer(blob) as writer:
            shutil.copyfileobj(source, writer, self._policy.block_size)
            writer.commit(metadata)

    def _writer(self, blob: BlobClient) -> BlockWriter:
        return BlockWriter(
            blob, block_size=self._policy.block_size, in_flight=self._policy.blocks_in_flight
        )

    def _ack(self, route: ExportRoute, message: DequeuedMessage, record: ExportRecord) -> bool:
        """Acknowledge the message and record it; False when F&O did not take the ack
        (recorded: the ack is retried when F&O offers the message again)."""
        try:
            self._client.ack(route.activity_id, message)
        except D365Error as exc:
            done = "it was given up" if record.gave_up_at else "the blob is committed"
            reason = (
                f"ack failed: {_reason(exc)}; {done}, the ack is retried when F&O offers the "
                "message again"
            )
            self._fail(record, reason, cause=_ACK)
            return False
        self._store.acked(record)
        if record.gave_up_at is not None:
            _LOGGER.info(
                "export given up and acked message_id=%s route=%s",
                record.message_id,
                record.route,
                extra=_log_ids(record, ExportState.EXPORT_FAILED),
            )
            return True
        _LOGGER.info(
            "export acked message_id=%s route=%s",
            record.message_id,
            record.route,
            extra=_log_ids(record, ExportState.ACKED, event="export_acked"),
        )
        telemetry.record_export(ExportState.ACKED.value, record.route)
        return True

    def _fail(self, record: ExportRecord, reason: str, *, cause: str) -> None:
        """Record ``reason`` (the message is retried when F&O offers it again), log it as the
        ``export_failed`` event the alert reads, and count it.

        :keyword cause: :data:`_MESSAGE` (counts toward ``EXPORT_MAX_ATTEMPTS``),
            :data:`_STORAGE` (our own storage: retried without a cap) or :data:`_ACK`; the
            event's ``cause``.
        """
        _tell_failed(record, reason, cause=cause)
        self._store.failed(record, reason, counted=cause == _MESSAGE)


def _tell_failed(
    record: ExportRecord, reason: str, *, cause: str | None = None, gave_up: bool = False
) -> None:
    """Log the ``export_failed`` event the alert reads (``cause``, or ``gave_up``), and count
    it."""
    _LOGGER.log(
        logging.ERROR if gave_up else logging.WARNING,
        "export %s message_id=%s route=%s: %s",
        "given up" if gave_up else "failed",
        record.message_id,
        record.route,
        reason,
        extra=_log_ids(
            record,
            ExportState.EXPORT_FAILED,
            event="export_failed",
            reason=reason,
            cause=cause,
            gave_up=gave_up or None,  # None is left out: only a given-up event carries it
        ),
    )
    telemetry.record_export(ExportState.EXPORT_FAILED.value, record.route)


def _log_ids(record: ExportRecord, state: ExportState, **more: object) -> dict[str, object]:
    return telemetry.log_ids(
        route=record.route,
        activity_id=record.activity_id,
        message_id=record.message_id,
        state=state.value,
        **more,
    )


def _target(route: ExportRoute, message_id: str, dequeued_at: datetime) -> str:
    folder = route.folder(dequeued_at=dequeued_at.astimezone(UTC), message_id=message_id)
    return folder if route.unzip else f"{folder}{message_id}{route.extension}"


def _metadata(route: ExportRoute, message: DequeuedMessage, record: ExportRecord) -> dict[str, str]:
    return {
        META_MESSAGE_ID: record.message_id,
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
    if (properties.metadata or {}).get(META_MESSAGE_ID) != record.message_id:
        return None
    return int(properties.size)


def _member_name(name: str, source: str) -> str:
    """A package member's path as a blob name; a path that could escape the folder is refused."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or any(p in ("", ".", "..") for p in parts):
        raise ZipRefusedError(source, f"holds the unsafe path {name[:200]!r}")
    return "/".join(parts)


def _names(container: str, blobs: Sequence[str], *, at_most: int = 5) -> str:
    """``blobs`` as ``'<container>/<blob>'``, the first ``at_most`` of them and a count."""
    named = ", ".join(repr(f"{container}/{blob}") for blob in blobs[:at_most])
    more = len(blobs) - at_most
    return named + (f" and {more:,} more" if more > 0 else "")


def _what_was_kept(container: str, committed: Sequence[str]) -> str:
    """What a message given up after failed attempts left in its container."""
    if not committed:
        return "nothing was kept"
    count = len(committed)
    return (
        f"the package is incomplete: {count} member{'s' if count != 1 else ''} written before "
        f"the failure stay{'s' if count == 1 else ''} ({_names(container, committed)})"
    )


def _kept_reason(refused: ZipRefusedError, container: str, blobs: Sequence[str]) -> str:
    """Why a package was given up, where it is (its last blob; before it the members written
    before the refusal), and what to do."""
    kept, members = f"{container}/{blobs[-1]}", blobs[:-1]
    reason = (
        f"{refused}. Given up: the package is kept unopened as {kept!r}, and acknowledged so "
        "that F&O stops offering it"
    )
    if members:
        reason += (
            f"; {len(members)} member{'s' if len(members) != 1 else ''} written before the "
            f"refusal stay{'s' if len(members) == 1 else ''} beside it "
            f"({_names(container, members)})"
        )
    if refused.setting:
        reason += (
            f"; if it is genuine, unzip it from there, and raise {refused.setting} for the "
            "next ones"
        )
    return reason


def _reason(exc: BaseException) -> str:
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        code = getattr(exc, "error_code", None)
        suffix = f" ({code})" if code else ""
        return f"{type(exc).__name__}: {exc.status_code} {exc.reason}{suffix}"
    if isinstance(exc, ValueError | OSError) and not isinstance(exc, AzureError):
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    return safe_text(exc)
