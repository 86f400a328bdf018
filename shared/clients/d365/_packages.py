"""The client's calls of the DMF package API: write URL, upload, import, error files."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, TypeVar

from ._blocks import (
    BLOCK_SIZE,
    MAX_BLOCKS,
    block_id,
    block_list_xml,
    block_query,
    read_block,
    with_query,
)
from ._body import Readable
from ._engine import Calls
from ._executions import start_execution
from ._models import AzureWriteUrl
from ._parsing import (
    parse_azure_write_url,
    parse_boolean,
    parse_file_url,
    parse_import_execution_id,
)
from ._retry import RetryPolicy
from ._text import require_text, url_without_query

__all__ = ["PackageCalls"]

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")
_ZIP = "application/zip"
# Put Blocks of one package upload at once: loopback and a WAN link alike are kept busy while
# memory stays at a few blocks.
_BLOCKS_IN_FLIGHT = 4


class PackageCalls(Calls):
    """The data management package API: a package uploaded, imported, its errors fetched."""

    def get_azure_write_url(self, unique_file_name: str) -> AzureWriteUrl:
        """GetAzureWriteUrl: a time-limited SAS URL to upload a package to.

        F&O answers `value` as a JSON string holding ``BlobId`` (a braced GUID) and
        ``BlobUrl``; it is parsed again. The URL is a secret while it lives: it never
        appears in a log line or an error text.

        :raises ValueError: for an empty file name.
        :raises D365ResponseError: when the answer holds no usable URL.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        name = require_text(unique_file_name, "unique_file_name")
        result: AzureWriteUrl = self._engine.action(
            "GetAzureWriteUrl", {"uniqueFileName": name}, convert=parse_azure_write_url
        )
        _LOGGER.info("write url issued blob_id=%s file=%s", result.blob_id, name)
        return result

    def upload_package(
        self,
        url: str,
        stream_factory: Callable[[], Readable],
        *,
        length: int,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Upload a package to the SAS URL of `get_azure_write_url` as a block blob: Put Block
        of 4 MiB blocks, which every storage version takes (see
        :mod:`shared.clients.d365._blocks`), a few in flight, then Put Block List, which makes the
        blob exist.

        Memory stays near ``BLOCK_SIZE * (blocks in flight + 1)`` whatever the package's size.
        No Authorization header is sent (the SAS authorises the calls, and the token must not
        leave for the storage host). A Put Block and the Put Block List are idempotent: each is
        retried like a read with its own bytes, and the stream is read once.

        :param url: the BlobUrl, SAS query string included.
        :param stream_factory: opens the package's binary stream (read once, then closed).
        :keyword length: the package's size in bytes.
        :keyword retry: each call's retry policy instead of the client's.
        :raises D365UntrustedUrlError: `url` is not a SAS URL the client may call (see
            :mod:`shared.clients.d365._urls`), before anything is sent.
        :raises ValueError: when the stream ends early, or the package would need more than
            50,000 blocks.
        :raises D365Error: (a subclass of it) when the upload fails.
        """
        url = self._engine.urls.check_sas(url, operation="upload_package", what="BlobUrl")
        if length > MAX_BLOCKS * BLOCK_SIZE:
            raise ValueError(
                f"upload_package: {length:,} bytes is more than a block blob holds in "
                f"{MAX_BLOCKS:,} blocks of {BLOCK_SIZE:,} bytes"
            )
        started = time.monotonic()
        stream = stream_factory()
        try:
            ids = self._put_blocks(url, stream, length, retry)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        commit = with_query(url, "comp=blocklist")
        self._engine.call(
            self._engine.context("upload_package", "PUT", commit, body_length=length),
            lambda response: None,
            headers={"Content-Type": "application/xml", "x-ms-blob-content-type": _ZIP},
            data=block_list_xml(ids),
            retry=retry,
            authorize=False,
        )
        _LOGGER.info(
            "package uploaded url=%s bytes=%d blocks=%d seconds=%.3f",
            url_without_query(url),
            length,
            len(ids),
            time.monotonic() - started,
        )

    def _put_blocks(
        self, url: str, stream: Readable, length: int, retry: RetryPolicy | None
    ) -> list[str]:
        """Stage `length` bytes of `stream` as blocks, `_BLOCKS_IN_FLIGHT` at most at once;
        returns their ids in order.

        A failure (a block refused, the stream's deadline) stops the reading and is raised at
        once: blocks still in flight end on their own, and staged blocks no list commits are
        invisible and discarded by the storage service.
        """
        ids: list[str] = []
        in_flight: deque[Future[None]] = deque()
        pool = ThreadPoolExecutor(_BLOCKS_IN_FLIGHT, thread_name_prefix="put-block")
        try:
            remaining = length
            while remaining > 0:
                if len(in_flight) == _BLOCKS_IN_FLIGHT:
                    in_flight.popleft().result()
                data = read_block(stream, min(BLOCK_SIZE, remaining))
                if not data:
                    raise ValueError(
                        f"upload_package: the package stream ended after "
                        f"{length - remaining} of the {length} bytes given as length"
                    )
                ids.append(block_id(len(ids)))
                in_flight.append(pool.submit(self._put_block, url, ids[-1], data, retry))
                remaining -= len(data)
            while in_flight:
                in_flight.popleft().result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return ids

    def _put_block(self, url: str, identifier: str, data: bytes, retry: RetryPolicy | None) -> None:
        block_url = with_query(url, block_query(identifier))
        self._engine.call(
            self._engine.context("upload_package", "PUT", block_url, body_length=len(data)),
            lambda response: None,
            data=data,
            retry=retry,
            authorize=False,
        )

    def import_from_package(
        self,
        package_url: str,
        definition_group_id: str,
        execution_id: str,
        *,
        execute: bool = True,
        overwrite: bool = True,
        legal_entity_id: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> str:
        """ImportFromPackage: import an uploaded package into a data project; returns the
        execution id F&O answered (`execution_id` when it answers none). F&O may answer
        another id than the one sent: the caller follows F&O's.

        Like an enqueue it is never re-sent blindly: within the call only 429, 503 and no
        connection are retried; the other statuses of `NOT_TAKEN_STATUSES` (401, 403, 404,
        408) also prove F&O did not take it, and are the caller's to send again later, as
        for an enqueue. The synchronous call may outlive the read timeout while F&O goes on;
        the caller then follows `execution_id` with `get_execution_summary_status` instead of
        calling again.

        :param package_url: the BlobUrl the package was uploaded to.
        :param definition_group_id: the data project's name.
        :param execution_id: the execution id to create (F&O takes free text).
        :keyword execute: run the staging-to-target step too.
        :keyword overwrite: replace existing records (must be False for composite entities).
        :keyword legal_entity_id: the company (DataAreaId) to import into.
        :keyword retry: this call's retry policy instead of the client's.
        :raises ValueError: for an empty project or execution id.
        :raises D365HttpError: (a subclass of it) when F&O refuses the import.
        :raises D365ConnectionError: when no answer came; see its `sent_body`.
        :raises D365Error: (a subclass of it) for any other failure.
        """
        project = require_text(definition_group_id, "definition_group_id")
        execution = require_text(execution_id, "execution_id")
        parameters: dict[str, Any] = {
            "packageUrl": package_url,
            "definitionGroupId": project,
            "executionId": execution,
            "execute": execute,
            "overwrite": overwrite,
            "legalEntityId": legal_entity_id or "",
        }
        return start_execution(
            self._engine,
            "ImportFromPackage",
            parameters,
            convert=parse_import_execution_id,
            retry=retry,
            event="import",
            project=project,
            execution=execution,
            legal_entity_id=legal_entity_id,
        )

    def get_import_staging_error_file_url(self, execution_id: str, entity_name: str) -> str | None:
        """GetImportStagingErrorFileUrl: the SAS URL of the rows of `entity_name` that failed
        source to staging; None when there is none.

        :raises ValueError: for an empty id or entity name.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        return self._entity_action(
            "GetImportStagingErrorFileUrl", execution_id, entity_name, parse_file_url
        )

    def generate_import_target_error_keys_file(self, execution_id: str, entity_name: str) -> bool:
        """GenerateImportTargetErrorKeysFile: start writing the keys of the rows that failed
        staging to target; True when there are such rows (then poll
        `get_import_target_error_keys_file_url`).

        :raises ValueError: for an empty id or entity name.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        return self._entity_action(
            "GenerateImportTargetErrorKeysFile", execution_id, entity_name, parse_boolean
        )

    def get_import_target_error_keys_file_url(
        self, execution_id: str, entity_name: str
    ) -> str | None:
        """GetImportTargetErrorKeysFileUrl: the SAS URL of the keys file; None while it is
        still being generated (or when there are no errors).

        :raises ValueError: for an empty id or entity name.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        return self._entity_action(
            "GetImportTargetErrorKeysFileUrl", execution_id, entity_name, parse_file_url
        )

    def download_sas_file(self, url: str, destination: BinaryIO) -> int:
        """Stream a file F&O handed out as a SAS URL (an error file) into `destination`, with
        no Authorization header; returns the bytes written.

        :raises D365UntrustedUrlError: `url` is not a SAS URL the client may call (see
            :mod:`shared.clients.d365._urls`), before anything is sent.
        :raises D365Error: (a subclass of it) when the download fails.
        """
        url = self._engine.urls.check_sas(url, operation="download_sas_file", what="error file URL")
        return self._engine.stream_to(
            self._engine.context("download_sas_file", "GET", url), destination, authorize=False
        )

    def _entity_action(
        self, action: str, execution_id: str, entity_name: str, convert: Callable[[Any], _T]
    ) -> _T:
        execution = require_text(execution_id, "execution_id")
        entity = require_text(entity_name, "entity_name")
        result: _T = self._engine.action(
            action,
            {"executionId": execution, "entityName": entity},
            convert=convert,
            execution_id=execution,
        )
        return result
