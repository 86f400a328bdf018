"""The F&O side of one package import: its upload, the import lease, one ImportFromPackage."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import AzureError
from azure.storage.blob import BlobClient, BlobServiceClient

from shared import telemetry
from shared.clients.d365 import (
    BLOCK_SIZE,
    MAX_BLOCKS,
    D365Client,
    ExecutionSummaryStatus,
)
from shared.clients.storage import download_version
from shared.config import ImportRoute
from shared.flows.package.build import PackageBuilder
from shared.flows.package.manifest import ManifestReader, PackageError
from shared.flows.policies import MIB, ONE_ATTEMPT, PackagePolicy
from shared.tracking import (
    LeaseHeld,
    LeaseHeldError,
    TrackedFile,
    TrackingStore,
    utcnow,
)

__all__ = ["PackageImporter", "PackageUpload", "execution_id_for"]

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackageUpload:
    """An uploaded package: where it is (``url`` holds a SAS, never logged) and its entities."""

    url: str
    blob_id: str
    size: int
    entities: tuple[str, ...]

    def __repr__(self) -> str:
        return f"PackageUpload(blob_id={self.blob_id!r}, size={self.size})"


def execution_id_for(record: TrackedFile) -> str:
    """Our execution id for a file: the same for every attempt, so an attempt F&O took
    answers "already exists" rather than importing twice."""
    return f"{(record.route or 'package')[:40]}-{record.record_id}"


class PackageImporter:
    """The F&O and storage side of the package path (the writes are the callers').

    :param store: the tracking store (the import lease).
    :param client: the F&O client.
    :param blob_service: reads templates (``container/path.zip`` of a route).
    :keyword policy: lease timing and zip limits.
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self,
        store: TrackingStore,
        client: D365Client,
        blob_service: BlobServiceClient,
        *,
        policy: PackagePolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._client = client
        self.policy = policy or PackagePolicy()
        self._manifests = ManifestReader(blob_service, zip_limits=self.policy.zip_limits)
        self._clock = clock
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
            header, manifest, entities, input_file = self._manifests.template(route.template)
            builder = PackageBuilder(header, manifest, input_file, size)
            length = builder.length()

            def open_package() -> Any:
                return builder.stream(wrap(_download(blob, etag)))
        else:
            entities = self._manifests.zip_entities(blob, etag, f"package {record.blob!r}")
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

        :raises D365Error: (a subclass of it);
            :func:`shared.flows.failures.classify_import_failure` says what next.
        """
        return self._client.import_from_package(
            upload.url,
            route.definition_group or "",
            record.execution_id or execution_id_for(record),
            execute=route.execute,
            overwrite=route.overwrite,
            legal_entity_id=record.company,
            retry=ONE_ATTEMPT,
        )

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


def _check_length(record: TrackedFile, length: int) -> None:
    """Refuse, before GetAzureWriteUrl, a package larger than a block blob holds (a file
    near the package path's limit with a template's large Manifest.xml)."""
    limit = MAX_BLOCKS * BLOCK_SIZE
    if length > limit:
        raise PackageError(
            f"the package for {record.blob!r} would be {length:,} bytes, over the {limit:,} "
            f"bytes a block blob holds ({MAX_BLOCKS:,} blocks of {BLOCK_SIZE // MIB} MiB); "
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
    downloader = download_version(blob, etag)
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
