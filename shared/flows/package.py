"""A file to F&O through the DMF package API: the package, its upload, the one-at-a-time
ImportFromPackage call, and what the execution left behind (status, row errors, error files).

The enqueuer drives a package route's file (``"api": "package"``, or ``on_too_large``) with
these steps; the record writes are the enqueuer's and the poller's, and each is named here
with what happens when it is the last line that runs:

1. Claim (the enqueuer's usual transaction): record ``Received`` + schedule entry due when
   the claim's lease ends. *Stop here*: the poller resumes the claim, and the steps below run
   again; nothing reached F&O.
2. :meth:`PackageImporter.check_lease`: a package-import lease held elsewhere sends the file
   back to the schedule (``Received``, retried later) *before* anything is uploaded, so a
   busy environment does not cost a full upload per try. Nothing waits for the lease in a
   worker thread: the schedule is the wait.
3. :meth:`PackageImporter.upload`: GetAzureWriteUrl, then the package (the blob as it is,
   or a zip built on the fly from the template) streamed to the BlobUrl in 4 MiB blocks and
   committed by Put Block List (see :mod:`shared.clients.d365._blocks`: every storage version takes
   such blocks, whatever F&O's SAS version). The BlobUrl must be a SAS URL of F&O's storage
   (:mod:`shared.clients.d365._urls`). The upload has the enqueue send's deadline (the enqueuer's
   ``_DeadlineStream``): the package stops being read once the upload would outlive the
   claim's lease less the wait for its answer, so recovery never resumes a claim whose
   upload still runs (two uploads in parallel, a late ``Importing`` write). The lease is not
   extended instead: CLAIM_LEASE is already the bound an operator sets for "how long may one
   send take", and a cut upload says to raise it. The deadline guards the reading of the
   package only: the blocks still in flight when it passes, and the Put Block List, are
   retried (each is idempotent) under the client's RetryPolicy after it, each call within
   the client's timeouts; that is what the answer time the deadline leaves in the lease is
   for. *Stop here*: as 1; blocks no list committed are invisible, the upload is repeated to
   a new URL, F&O has imported nothing.
   A failure: the blob changed or went -> ``Rejected``; one that waiting will not cure (the
   template is missing or broken, a manifest that is not XML the app reads, a package over
   what a block blob holds, the package or the template refused by
   :mod:`shared.zips`, a BlobUrl the client refuses, a block refused with 400 / 403 /
   413, F&O refused GetAzureWriteUrl with a 4xx other than 401 / 403 / 404 / 408 / 429) ->
   ``EnqueueFailed`` at once, naming the cause and the fix (F&O never saw an import);
   anything else (5xx, 408, 429, no connection, no token, the deadline, the template replaced
   while it was read, and any error nobody foresaw, recorded by its type) -> retried later
   from the schedule, until ``MAX_PENDING_AGE``. Both zips are read by ranges of the blob,
   within the ``ZIP_*`` limits: ``Manifest.xml`` and ``PackageHeader.xml`` only, never the
   data files.
4. :meth:`PackageImporter.acquire_lease`: the package-import lease row, one try. Taken
   meanwhile: as 2. *Stop here*: the lease ends at its ``until``; the file is resumed as in 1.
5. The record becomes ``Importing`` with our execution id (``<route>-<record id>``, the same
   for every attempt of this file) *before* the call, with its next poll. *Stop here*: the
   poller follows that execution id; F&O never heard of it, so it reads ``Unknown`` / "not
   found" until ``MAX_PENDING_AGE``, and the file ends ``TimedOut`` with a message saying
   the import may not have started. At most once, always a final state. The write is
   conditional on the claim as read: a recovery that took the file over meanwhile wins, and
   this worker stops (lease released) before calling F&O.
6. :meth:`PackageImporter.import_package`: ImportFromPackage, one attempt.
   - answered: the lease is released; the poller follows the execution, under the id F&O
     answered (when it is not ours, the record's ``execution_id`` becomes F&O's and ours is
     kept in ``sent_execution_id``);
   - no answer after the body left (a client timeout: F&O goes on), a 5xx, a 2xx we cannot
     read: the record stays ``Importing`` and is followed by its execution id, never re-sent;
     without an answer the lease is kept until its ``until`` (F&O may still be in that call);
   - refused in a way that proves F&O did not take it (401, 403, 404, 408, 429, 503 as for
     the enqueue and GetAzureWriteUrl; no connection; the parallel-call refusal): back to
     ``Received``, retried later, until ``MAX_PENDING_AGE`` (``EnqueueFailed``). Before
     calling again, the retry asks GetExecutionSummaryStatus about the same execution id:
     when F&O knows it (a gateway's 503 can hide a call F&O took), the file is followed,
     never sent twice.
     *Stop before that write*: as 5, ``TimedOut`` at the age limit (never imported twice);
   - "already exists": F&O has that execution id: followed as above;
   - any other refusal (400: the manifest, an entity, the company): ``ImportFailed`` with
     F&O's text, written even over a poll that re-anchored the record during the call.
7. The poller (:meth:`PackageImporter.follow`) reads GetExecutionSummaryStatus until it is
   final: Succeeded -> ``Processed``, PartiallySucceeded -> ``ProcessedWithErrors``,
   Failed -> ``ImportFailed``, Canceled -> ``ImportCanceled``; ``Unknown`` and everything else
   keep polling until ``MAX_PENDING_AGE`` (``TimedOut``). F&O's text is kept in
   ``d365_status``. The row errors (GetExecutionErrors) and, on PartiallySucceeded / Failed,
   per manifest entity, the staging error file and the target error keys file are copied into
   the errors container and linked from the record, best effort: what cannot be had (a call
   that keeps failing, a URL refused or answering 404, a file still generating, a temporary
   file that cannot be written, the entities left when the follow's time for error files,
   ``PackagePolicy.error_files_time``, ran out) is noted in ``last_error``, and F&O's outcome
   is written all the same, within the poll's lease. *Stop before the final write*:
   the next tick does it all again (the copies are overwritten, nothing is lost).
"""

from __future__ import annotations

import functools
import io
import logging
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient

from shared import telemetry
from shared.clients.d365 import (
    BLOCK_SIZE,
    MAX_BLOCKS,
    NOT_TAKEN_STATUSES,
    D365Client,
    D365ConnectionError,
    D365CredentialError,
    D365Error,
    D365HttpError,
    ExecutionSummaryStatus,
    RetryPolicy,
)
from shared.clients.storage import STREAM_CHUNK
from shared.config import D365Settings, Settings
from shared.config.routes import ImportRoute
from shared.errors import AppError, safe_text
from shared.tracking import (
    LeaseHeld,
    LeaseHeldError,
    TrackedFile,
    TrackingState,
    TrackingStore,
    lease_for_call,
    quoted_etag,
    utcnow,
)
from shared.zips import LimitedZip, ZipLimits

__all__ = [
    "PACKAGE_MAX_BYTES",
    "ImportVerdict",
    "PackageError",
    "PackageImporter",
    "PackagePolicy",
    "PackageUpload",
    "TemplateChangedError",
    "TemplateError",
    "classify_import_failure",
    "execution_id_for",
]

_LOGGER = logging.getLogger(__name__)
_ONE_ATTEMPT = RetryPolicy(max_attempts=1)
# F&O's refusal of a second ImportFromPackage while one runs (text UNCONFIRMED: the docs say
# only that it fails; the emulator's names it "in parallel").
_PARALLEL_TEXT = "in parallel"
_EXISTS_TEXT = "already exists"
_FINAL_STATES = {
    ExecutionSummaryStatus.SUCCEEDED: TrackingState.PROCESSED,
    ExecutionSummaryStatus.PARTIALLY_SUCCEEDED: TrackingState.PROCESSED_WITH_ERRORS,
    ExecutionSummaryStatus.FAILED: TrackingState.IMPORT_FAILED,
    ExecutionSummaryStatus.CANCELED: TrackingState.IMPORT_CANCELED,
}
_WITH_ERROR_FILES = frozenset(
    {ExecutionSummaryStatus.PARTIALLY_SUCCEEDED, ExecutionSummaryStatus.FAILED}
)
_MANIFEST = "manifest.xml"
_HEADER = "packageheader.xml"
_SPOOL_BYTES = 8 * 1024 * 1024
_MIB = 1024 * 1024
_MAX_MEMBER_NAME_BYTES = 0xFFFF  # a zip header's 16-bit name length
_NOT_REACHED_NAMES = 5
_LEASE_SPAN = lease_for_call(D365Settings.http_timeout)
PACKAGE_MAX_BYTES = MAX_BLOCKS * BLOCK_SIZE - _MIB
"""The largest file the package path takes: the package goes up in 4 MiB blocks, and a block
blob holds at most 50,000 (about 195 GiB); 1 MiB is left for what a template adds (its
Manifest.xml, PackageHeader.xml and the zip's headers)."""


class TemplateError(AppError):
    """The route's template package cannot be used; the text names it and the fix."""


class TemplateChangedError(AppError):
    """The template was replaced while it was read, twice: read again at the file's next try."""


class PackageError(AppError):
    """The package cannot go to F&O as it is (its manifest is not XML the app reads, or it
    is larger than a block blob holds); the text names it and the fix."""


@dataclass(frozen=True)
class PackagePolicy:
    """Timing of the package path.

    :ivar lease_span: how long the import lease is held for one call: the call's read timeout
        plus a margin (a timed-out call keeps it that long).
    :ivar error_file_tries: reads of GetImportTargetErrorKeysFileUrl while it is "still
        generating", ``error_file_pause`` apart.
    :ivar poll_tick_budget: the poller's ``POLL_TICK_BUDGET``, which bounds the error files
        (:attr:`error_files_time`).
    :ivar zip_limits: what a template or an uploaded package may hold (the ``ZIP_*`` settings).
    """

    lease_span: timedelta = _LEASE_SPAN
    error_file_tries: int = 10
    error_file_pause: float = 1.0
    first_poll_delay: timedelta = Settings.poll_interval_min
    zip_limits: ZipLimits = field(default_factory=ZipLimits)
    poll_tick_budget: timedelta = Settings.poll_tick_budget

    @property
    def error_files_time(self) -> timedelta:
        """The longest one follow spends fetching error files: a quarter of the tick budget.
        F&O takes 2 or more calls per manifest entity, so thousands of entities would outlive
        the poll's lease and ``functionTimeout``, and the final write would never happen; the
        entities not reached are noted in ``last_error`` instead."""
        return self.poll_tick_budget / 4


@dataclass(frozen=True)
class PackageUpload:
    """An uploaded package: where it is (``url`` holds a SAS, never logged) and its entities."""

    url: str
    blob_id: str
    size: int
    entities: tuple[str, ...]

    def __repr__(self) -> str:
        return f"PackageUpload(blob_id={self.blob_id!r}, size={self.size})"


class ImportVerdict:
    """What an ImportFromPackage failure means for the file (see the module docstring, 6)."""

    RETRY = "retry"
    FOLLOW = "follow"
    FAILED = "failed"


def execution_id_for(record: TrackedFile) -> str:
    """Our execution id for a file: the same for every attempt, so an attempt F&O took
    answers "already exists" rather than importing twice."""
    return f"{(record.route or 'package')[:40]}-{record.record_id}"


def classify_import_failure(exc: Exception) -> str:
    """The :class:`ImportVerdict` of an ImportFromPackage failure.

    The statuses that prove F&O did not take the call are the enqueue's and GetAzureWriteUrl's
    (:data:`shared.clients.d365.NOT_TAKEN_STATUSES`): 401 (the token was refused), 403 (the app may
    not import), 404 (no such action or environment), 408 (the request did not arrive whole),
    429 and 503 (not let in). F&O answers them before it starts an import, so the file is
    sent again later (RETRY) as on the other two paths: an operator fixing the app's
    registration or rights meanwhile does not have to resubmit, and a retry cannot import
    twice (it first asks GetExecutionSummaryStatus whether F&O knows the execution). It is
    bounded like every retry of a file F&O did not take: ``MAX_PENDING_AGE`` ends it
    ``EnqueueFailed`` with the last error.
    """
    if isinstance(exc, D365CredentialError):
        return ImportVerdict.RETRY
    if isinstance(exc, D365ConnectionError):
        return ImportVerdict.FOLLOW if exc.sent_body else ImportVerdict.RETRY
    if isinstance(exc, D365HttpError):
        text = (exc.fno_message or "").lower()
        if exc.status_code in NOT_TAKEN_STATUSES or _PARALLEL_TEXT in text:
            return ImportVerdict.RETRY
        if _EXISTS_TEXT in text or exc.status_code >= 500:
            return ImportVerdict.FOLLOW
        return ImportVerdict.FAILED
    return ImportVerdict.FOLLOW


@dataclass(frozen=True)
class FollowResult:
    """One look at an execution: F&O's status text, and the record's final changes when the
    execution has ended (None: keep polling)."""

    raw: str
    final: dict[str, Any] | None = None


class PackageImporter:
    """The F&O and storage side of the package path (the writes are the callers').

    :param store: the tracking store (the import lease, the row errors).
    :param client: the F&O client.
    :param blob_service: reads templates (``container/path.zip`` of a route).
    :keyword errors_container: where error files are copied.
    :keyword policy: lease and error-file timing.
    :keyword clock: the time source (UTC).
    :keyword sleep: waits between error-file tries (tests pass a recorder).
    """

    def __init__(
        self,
        store: TrackingStore,
        client: D365Client,
        blob_service: BlobServiceClient,
        *,
        errors_container: ContainerClient | None = None,
        policy: PackagePolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self._store = store
        self._client = client
        self._blobs = blob_service
        self._errors = errors_container
        self.policy = policy or PackagePolicy()
        self._clock = clock
        self._sleep = sleep
        self._holder = f"{uuid.uuid4().hex[:12]}"

    # -- steps 2, 3, 4 and 6 ------------------------------------------------------------------

    def check_lease(self) -> None:
        """Refuse early while the package-import lease is held (before any upload).

        :raises LeaseHeldError: it is held (the file goes back to the schedule).
        :raises AzureError: the status table failed.
        """
        if self._store.import_lease.holder() is not None:
            raise _lease_held()

    def upload(
        self,
        blob: BlobClient,
        record: TrackedFile,
        route: ImportRoute,
        *,
        guard: Callable[[Any], Any] | None = None,
    ) -> PackageUpload:
        """GetAzureWriteUrl, then PUT the claimed version as a package (built from the
        route's template when the file is not a ``.zip``), streamed.

        :keyword guard: wraps each stream of the blob (the enqueuer's send deadline).

        :raises TemplateError: the template is missing or unusable.
        :raises TemplateChangedError: the template was replaced while it was read (twice).
        :raises PackageError: the package's manifest is not XML the app reads, or the package
            is larger than a block blob holds (before GetAzureWriteUrl).
        :raises ZipRefusedError: the package or the template is refused by the zip limits, or
            is not a readable zip.
        :raises AzureError: the blob or template could not be read.
        :raises D365Error: (a subclass of it) F&O or the SAS endpoint failed.
        """
        etag = record.blob_etag
        size = record.size or 0
        wrap = guard or (lambda stream: stream)
        if route.template and not record.blob.lower().endswith(".zip"):
            header, manifest, entities, input_file = self._template(route.template)
            builder = _PackageBuilder(header, manifest, input_file, size)
            length = builder.length()

            def open_package() -> Any:
                return builder.stream(wrap(_download(blob, etag)))
        else:
            entities = self._zip_entities(blob, etag, f"package {record.blob!r}")
            length = size

            def open_package() -> Any:
                return wrap(_download(blob, etag))

        _check_length(record, length)
        write = self._client.get_azure_write_url(f"{record.record_id}-{uuid.uuid4().hex}.zip")
        self._client.upload_package(write.url, open_package, length=length)
        _LOGGER.info(
            "package uploaded blob=%s blob_id=%s bytes=%d entities=%s",
            record.blob,
            write.blob_id,
            length,
            list(entities),
            extra=telemetry.record_ids(record),
        )
        return PackageUpload(write.url, write.blob_id, length, entities)

    def acquire_lease(self) -> LeaseHeld:
        """The package-import lease, one try (the schedule is the wait, not this thread).

        :raises LeaseHeldError: it is held elsewhere (the file goes back to the schedule).
        :raises AzureError: the status table failed.
        """
        lease = self._store.import_lease.acquire(
            self._holder, until=self._clock() + self.policy.lease_span
        )
        if lease is None:
            raise _lease_held()
        return lease

    def release_lease(self, lease: LeaseHeld) -> None:
        """Give the lease back (best effort: it ends at its ``until`` anyway)."""
        try:
            self._store.import_lease.release(lease)
        except AzureError as exc:
            _LOGGER.warning("package-import lease not released (it expires): %s", exc)

    def import_package(self, upload: PackageUpload, record: TrackedFile, route: ImportRoute) -> str:
        """ImportFromPackage for the record's execution id, one attempt (never re-sent here);
        returns the execution id F&O answered, which is the one to follow (it may differ from
        the one sent).

        :raises D365Error: (a subclass of it); :func:`classify_import_failure` says what next.
        """
        return self._client.import_from_package(
            upload.url,
            route.definition_group or "",
            record.execution_id or execution_id_for(record),
            execute=route.execute,
            overwrite=route.overwrite,
            legal_entity_id=record.company,
            retry=_ONE_ATTEMPT,
        )

    # -- step 6 -------------------------------------------------------------------------------

    def is_known(self, record: TrackedFile) -> bool:
        """True when F&O has an execution under the file's execution id (an earlier call it
        took), so ImportFromPackage must not be called again.

        It asks only about our execution id (``<route>-<record id>``): the API looks an
        execution up by its id and nothing else, so an earlier call that F&O answered with an
        id of its own, and whose answer was lost, cannot be found here.

        :raises D365Error: the status could not be read: try again later.
        """
        result = self._client.get_execution_summary_status(execution_id_for(record))
        return not result.not_found and result.status not in (None, ExecutionSummaryStatus.UNKNOWN)

    def follow(self, record: TrackedFile) -> FollowResult:
        """Read the execution's status; at its end, gather row errors and error files.

        F&O's outcome is final whatever happens to the details: the row errors and the error
        files are fetched best effort, and what could not be had is noted in ``last_error``
        (so a file whose error file answers 404 ends with F&O's outcome, not ``TimedOut``).
        The error files get ``policy.error_files_time`` at most: the entities left then are
        noted too.

        :raises D365Error: (a subclass of it) the status could not be read: poll again later.
        :raises AzureError: the row errors could not be stored, or the manifest's entity names
            could not be read (the blob they overflowed to): poll again later.
        """
        execution_id = record.execution_id or execution_id_for(record)
        result = self._client.get_execution_summary_status(execution_id)
        status = result.status
        if status is None or status not in _FINAL_STATES:
            return FollowResult(result.raw or ("not found yet" if result.not_found else ""))
        final: dict[str, Any] = {"state": _FINAL_STATES[status], "d365_status": result.raw}
        notes: list[str] = []
        try:
            errors = self._client.get_execution_errors(execution_id)
        except D365Error as exc:
            notes.append(_missing("the row errors (GetExecutionErrors)", execution_id, exc))
        else:
            final.update(self._store.store_errors(record, errors.errors, errors.raw))
        if status in _WITH_ERROR_FILES:
            final["error_files"] = self._error_files(record, execution_id, notes)
        if notes:
            final["last_error"] = "; ".join(notes)
        return FollowResult(result.raw, final)

    def _error_files(
        self, record: TrackedFile, execution_id: str, notes: list[str]
    ) -> tuple[str, ...]:
        """Copy each manifest entity's staging error file and target error keys file, best
        effort: one that cannot be had (a call failing, its URL refused or answering 404,
        still generating, its temporary copy failing) is noted in `notes`, never a reason to
        poll again; so are the entities left when ``policy.error_files_time`` has passed.

        :raises AzureError: the entity names could not be read.
        """
        spent = self.policy.error_files_time
        deadline = time.monotonic() + spent.total_seconds()
        locators = (
            ("staging-errors", self._client.get_import_staging_error_file_url),
            ("target-error-keys", functools.partial(self._keys_file_url, deadline=deadline)),
        )
        stored: list[str] = []
        entities = self._store.list_package_entities(record)
        for index, entity in enumerate(entities):
            if time.monotonic() > deadline:
                notes.append(_not_reached(entities[index:], spent, execution_id))
                break
            for kind, locate in locators:
                what = f"the {_FILE_KINDS[kind]} of {entity!r}"
                try:
                    url = locate(execution_id, entity)
                    if url:
                        stored.append(self._copy(record, entity, kind, url))
                except (AppError, AzureError, OSError) as exc:
                    notes.append(_missing(what, execution_id, exc))
        return tuple(stored)

    def _keys_file_url(self, execution_id: str, entity: str, *, deadline: float) -> str | None:
        """The target error keys file's URL; None when F&O has no such file.

        :raises _StillGeneratingError: F&O was still writing it after ``error_file_tries``
            reads, or when the follow's time for error files (`deadline`) ran out.
        """
        if not self._client.generate_import_target_error_keys_file(execution_id, entity):
            return None
        tries = 0
        while True:
            url = self._client.get_import_target_error_keys_file_url(execution_id, entity)
            tries += 1
            if url:
                return url
            if tries >= self.policy.error_file_tries or time.monotonic() > deadline:
                break
            self._sleep(self.policy.error_file_pause)
        raise _StillGeneratingError(f"it was still being generated after {tries} tries")

    def _copy(self, record: TrackedFile, entity: str, kind: str, url: str) -> str:
        """Download a SAS file (no Authorization header) into the errors container."""
        if self._errors is None:
            raise AppError("error files need an errors container")
        safe = "".join(ch if ch.isalnum() else "-" for ch in entity).strip("-") or "entity"
        name = f"{record.record_id}/{safe}-{kind}.txt"
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
            size = self._client.download_sas_file(url, spool)
            spool.seek(0)
            self._errors.upload_blob(name, spool, length=size, overwrite=True)
        _LOGGER.info(
            "error file stored blob=%s entity=%s kind=%s bytes=%d",
            record.blob,
            entity,
            kind,
            size,
            extra=telemetry.record_ids(record),
        )
        return f"{self._errors.container_name}/{name}"

    # -- packages -----------------------------------------------------------------------------

    def _template(self, location: str) -> tuple[bytes, bytes, tuple[str, ...], str]:
        """(PackageHeader.xml, Manifest.xml, its entity names, its one InputFilePath) of a
        template."""
        header, manifest = self._template_xml(location)
        if header is None or manifest is None:
            raise TemplateError(
                f"template package {location!r} is not a zip holding Manifest.xml and "
                "PackageHeader.xml; export the data project's package from F&O and upload it"
            )
        try:
            pairs = _manifest_pairs(manifest)
        except _ManifestUnreadableError as exc:
            raise TemplateError(
                f"template package {location!r} has a Manifest.xml that {exc}; export the data "
                "project's package from F&O again and upload it"
            ) from None
        inputs = [input_file for _, input_file in pairs if input_file]
        if len(inputs) != 1:
            raise TemplateError(
                f"template package {location!r} names {len(inputs)} entities; a template "
                "for plain files needs exactly one (the file takes its InputFilePath)"
            )
        name_bytes = len(inputs[0].encode("utf-8"))
        if name_bytes > _MAX_MEMBER_NAME_BYTES:
            raise TemplateError(
                f"template package {location!r} names an InputFilePath of {name_bytes:,} bytes, "
                f"and a zip member's name holds at most {_MAX_MEMBER_NAME_BYTES:,}; set "
                "InputFilePath in its Manifest.xml to the data file's name (e.g. 'Customers "
                "V3.xml') and upload it again"
            )
        return header, manifest, tuple(entity for entity, _ in pairs), inputs[0]

    def _template_xml(self, location: str) -> tuple[bytes | None, bytes | None]:
        """(PackageHeader.xml, Manifest.xml) of a template, read again once when it is
        replaced while it is read (its ranges are read of one version)."""
        container, _, path = location.partition("/")
        blob = self._blobs.get_blob_client(container, path)
        source = f"template package {location!r}"
        try:
            try:
                return self._package_xml(blob, None, source)
            except ResourceModifiedError:
                return self._package_xml(blob, None, source)
        except ResourceNotFoundError:
            raise TemplateError(
                f"template package {location!r} was not found; upload the data project's "
                "exported package (Manifest.xml and PackageHeader.xml) there"
            ) from None
        except ResourceModifiedError:
            # Not the inbound file's fault: it is sent again at its next try.
            raise TemplateChangedError(
                f"template package {location!r} was replaced while it was read, twice; the "
                "file is sent again later with the template as it is then"
            ) from None

    def _zip_entities(self, blob: BlobClient, etag: str, source: str) -> tuple[str, ...]:
        """The entity names of a package blob's manifest; () without a manifest (F&O judges
        the package, and answers why).

        :raises PackageError: the manifest is not XML the app reads (F&O would not read it
            either).
        """
        _, manifest = self._package_xml(blob, etag, source)
        if manifest is None:
            return ()
        try:
            return tuple(entity for entity, _ in _manifest_pairs(manifest))
        except _ManifestUnreadableError as exc:
            raise PackageError(
                f"{source} has a Manifest.xml that {exc}; F&O imported nothing: export the "
                "package from F&O again, or save its Manifest.xml as well-formed UTF-8 XML"
            ) from None

    def _package_xml(
        self, blob: BlobClient, etag: str | None, source: str
    ) -> tuple[bytes | None, bytes | None]:
        """(PackageHeader.xml, Manifest.xml) of a package blob, None for one it lacks: a few
        range reads of the version ``etag`` (None: the current one), within the zip limits.

        :raises ZipRefusedError: the zip is refused (a limit, or not a readable zip).
        :raises AzureError: the blob could not be read.
        """
        reader = io.BufferedReader(_BlobRangeReader(blob, etag), 256 * 1024)
        with LimitedZip(reader, source=source, limits=self.policy.zip_limits) as archive:
            manifest, header = (archive.find(name) for name in (_MANIFEST, _HEADER))
            manifest_xml = None if manifest is None else archive.read(manifest)
            header_xml = None if header is None else archive.read(header)
        return header_xml, manifest_xml


class _StillGeneratingError(AppError):
    """F&O was still writing a target error keys file when the importer stopped asking."""


class _ManifestUnreadableError(AppError):
    """A Manifest.xml the XML parser does not read; the text completes "a Manifest.xml that"."""


_FILE_KINDS = {
    "staging-errors": "staging error file",
    "target-error-keys": "target error keys file",
}
_NOTE_CAUSE_CHARS = 400


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _missing(what: str, execution_id: str, exc: Exception) -> str:
    """The note for a detail of a finished execution that could not be had."""
    if isinstance(exc, _StillGeneratingError):
        cause = str(exc)
    elif isinstance(exc, OSError) and not isinstance(exc, AppError) and exc.strerror:
        # The spool file's own failure (a full disk): its system text names no path.
        cause = f"{type(exc).__name__} writing its temporary copy: {exc.strerror}"
    else:
        cause = safe_text(exc)
    cause = _cut(cause, _NOTE_CAUSE_CHARS)
    return f"{what}: not fetched ({cause}); get it in F&O (execution {execution_id})"


def _not_reached(entities: tuple[str, ...], spent: timedelta, execution_id: str) -> str:
    """The note for the entities whose error files a follow had no time left for."""
    names = ", ".join(repr(entity) for entity in entities[:_NOT_REACHED_NAMES])
    more = (
        f" and {len(entities) - _NOT_REACHED_NAMES:,} more"
        if len(entities) > _NOT_REACHED_NAMES
        else ""
    )
    return (
        f"the error files of {len(entities):,} entities ({names}{more}): not fetched (the "
        f"{spent.total_seconds():g} seconds one poll spends on error files ran out); get them "
        f"in F&O (execution {execution_id})"
    )


def _check_length(record: TrackedFile, length: int) -> None:
    """Refuse, before GetAzureWriteUrl, a package larger than a block blob holds (a file
    near the package path's limit with a template's large Manifest.xml)."""
    limit = MAX_BLOCKS * BLOCK_SIZE
    if length > limit:
        raise PackageError(
            f"the package for {record.blob!r} would be {length:,} bytes, over the {limit:,} "
            f"bytes a block blob holds ({MAX_BLOCKS:,} blocks of {BLOCK_SIZE // _MIB} MiB); "
            "F&O imported nothing: split the data into smaller files, or make the template's "
            "Manifest.xml and PackageHeader.xml smaller"
        )


def _lease_held() -> LeaseHeldError:
    return LeaseHeldError(
        "another ImportFromPackage is in flight in this environment (F&O runs one at a "
        "time); the file waits its turn"
    )


def _download(blob: BlobClient, etag: str) -> _ChunkStream:
    # The claimed version only: an overwrite meanwhile is its own delivery.
    downloader = blob.download_blob(
        etag=quoted_etag(etag), match_condition=MatchConditions.IfNotModified
    )
    return _ChunkStream(downloader.chunks())


class _ChunkStream:
    """`read(n)` over a blob download's chunks, handing out views of them: no copy of the
    file's bytes on the way to the socket (the downloader's own `read` copies each twice)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._current = memoryview(b"")

    def read(self, size: int = -1, /) -> memoryview:
        if not self._current:
            chunk = next(self._chunks, None)
            if chunk is None:
                return memoryview(b"")
            self._current = memoryview(chunk)
        count = len(self._current) if size < 0 else min(size, len(self._current))
        data, self._current = self._current[:count], self._current[count:]
        return data


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _manifest_pairs(manifest: bytes) -> list[tuple[str, str]]:
    """(entity name, InputFilePath) of each entity a Manifest.xml names.

    :raises _ManifestUnreadableError: it is not XML the parser reads: not well-formed
        (ParseError), an encoding Python does not know (LookupError), or a multi-byte one
        such as UTF-32 or Shift JIS, which expat does not read (ValueError).
    """
    try:
        root = ET.fromstring(manifest)  # noqa: S314 - the operator's own template/package
    except ET.ParseError as exc:
        raise _ManifestUnreadableError(f"is not well-formed XML ({_cut(str(exc), 200)})") from None
    except LookupError as exc:
        raise _ManifestUnreadableError(
            f"declares an encoding Python does not know ({_cut(str(exc), 200)})"
        ) from None
    except ValueError as exc:
        raise _ManifestUnreadableError(
            f"declares an encoding the XML parser does not read ({_cut(str(exc), 200)})"
        ) from None
    pairs = []
    for element in root.iter():
        if _local(element.tag) == "DataManagementPackageEntityData":
            fields = {_local(child.tag): (child.text or "").strip() for child in element}
            if fields.get("EntityName"):
                pairs.append((fields["EntityName"], fields.get("InputFilePath", "")))
    return pairs


class _BlobRangeReader(io.RawIOBase):
    """A seekable reader of one blob version by range reads (zipfile reads the end first);
    without ``etag``, of the version current when it is made."""

    def __init__(self, blob: BlobClient, etag: str | None) -> None:
        self._blob = blob
        if etag is None:
            properties = blob.get_blob_properties()
        else:
            properties = blob.get_blob_properties(
                etag=quoted_etag(etag), match_condition=MatchConditions.IfNotModified
            )
        self._etag = etag or properties.etag
        self._size = properties.size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._size - self._position)
        if want <= 0:
            return 0
        data = _download_range(self._blob, self._etag, self._position, want)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def _download_range(blob: BlobClient, etag: str, offset: int, length: int) -> bytes:
    downloader = blob.download_blob(
        offset=offset,
        length=length,
        etag=quoted_etag(etag),
        match_condition=MatchConditions.IfNotModified,
    )
    data: bytes = downloader.readall()
    return data


class _Sink:
    """A write-only, non-seekable target for zipfile (it then writes data descriptors)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.written = 0

    def write(self, data: bytes) -> int:
        self.buffer += data
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: the reader drains the buffer."""


class _PackageBuilder:
    """A package zip of the template's two files plus the plain file (stored, not deflated,
    so its length is known before a byte is read: the PUT needs a Content-Length)."""

    def __init__(self, header: bytes, manifest: bytes, input_file: str, size: int) -> None:
        self._header = header
        self._manifest = manifest
        self._input_file = input_file
        self._size = size
        self._when = time.localtime()[:6]

    def length(self) -> int:
        """The zip's exact size: the same writer run over zeros (CRCs differ, sizes not)."""
        stream = self.stream(_Zeros(self._size))
        total = 0
        while chunk := stream.read(STREAM_CHUNK):
            total += len(chunk)
        return total

    def stream(self, source: Any) -> _ZipStream:
        """A readable stream of the zip, built as it is read."""
        return _ZipStream(self._parts(source))

    def _parts(self, source: Any) -> Iterator[bytes]:
        sink = _Sink()
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:
            for name, data in (
                ("Manifest.xml", self._manifest),
                ("PackageHeader.xml", self._header),
            ):
                archive.writestr(zipfile.ZipInfo(name, self._when), data)
            yield _drain(sink)
            info = zipfile.ZipInfo(self._input_file, self._when)
            info.file_size = self._size
            with archive.open(info, "w", force_zip64=self._size >= zipfile.ZIP64_LIMIT) as entry:
                remaining = self._size
                while remaining > 0:
                    chunk = source.read(min(STREAM_CHUNK, remaining))
                    if not chunk:
                        raise ValueError(
                            f"the file ended after {self._size - remaining} of {self._size} bytes"
                        )
                    remaining -= len(chunk)
                    entry.write(chunk)
                    yield _drain(sink)
        yield _drain(sink)


def _drain(sink: _Sink) -> bytes:
    data = bytes(sink.buffer)
    sink.buffer.clear()
    return data


class _Zeros:
    """A stream of `size` zero bytes (for measuring the zip)."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._block = bytes(STREAM_CHUNK)

    def read(self, size: int = -1, /) -> bytes:
        count = self._left if size < 0 else min(size, self._left)
        self._left -= count
        return self._block[:count] if count <= len(self._block) else bytes(count)


class _ZipStream:
    """`read(n)` over the zip's parts, holding at most one part beyond what was asked."""

    def __init__(self, parts: Iterator[bytes]) -> None:
        self._parts = parts
        self._buffer = bytearray()
        self._done = False

    def read(self, size: int = -1, /) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            part = next(self._parts, None)
            if part is None:
                self._done = True
            else:
                self._buffer += part
        count = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def close(self) -> None:
        """Stop building (an attempt that ended early)."""
        close = getattr(self._parts, "close", None)
        if close is not None:
            close()
