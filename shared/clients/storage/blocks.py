"""A block blob written block by block, which exists only once its block list is committed.

Nothing exists under the blob's name until :meth:`BlockWriter.commit`; staged blocks are
invisible, discarded by the next commit or after a week. The commit names its message in the
blob's metadata (:data:`MESSAGE_ID_METADATA`), so that a commit whose answer was lost is
recognised when it is tried again.
"""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobBlock, BlobClient

from .blobs import MESSAGE_ID_METADATA

__all__ = ["BlobTakenError", "BlockWriter"]

_LOGGER = logging.getLogger(__name__)


class BlobTakenError(Exception):
    """An export blob exists already and was not written for this message: left as it is.

    Its text names the blob and the fix, never a secret: safe to show.
    """


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
            self._check_ours(metadata[MESSAGE_ID_METADATA])

    def _check_ours(self, message_id: str) -> None:
        found = (self._blob.get_blob_properties().metadata or {}).get(MESSAGE_ID_METADATA)
        if found != message_id:
            owner = f"its {MESSAGE_ID_METADATA} is {found[:100]!r}" if found else "no message id"
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
