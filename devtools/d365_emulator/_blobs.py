"""The emulator's SAS blob endpoint (what GetAzureWriteUrl hands out): Put Blob, Put Block,
Put Block List and Get Blob on ``{base}/dmf/<name>?sv=<version>&se=<expiry>&sig=<hmac>``, with
Azure's size limits for the SAS version it issues.

The signature covers name and expiry; a request with an ``Authorization`` header is refused (a
SAS call carries none, and a token must not leak to a storage host). Bodies are spooled to
disk as they arrive; Put Block List makes the staged blocks it names (``Latest`` or
``Uncommitted``; ``Committed`` ones are not kept) the blob's files, read back as one stream,
so a commit costs no copy (as Azure's does not).

Limits, by the request's version, which for a SAS request is the SAS's ``sv`` (an
``x-ms-version`` header is ignored), as Azure documents them:

==================  ========  =========
version             Put Blob  Put Block
==================  ========  =========
before 2016-05-31   64 MiB    4 MiB
before 2019-12-12   256 MiB   100 MiB
from 2019-12-12     5000 MiB  4000 MiB
==================  ========  =========

A blob holds at most 50,000 committed blocks and 100,000 uncommitted ones; a block id is
Base64 of at most 64 bytes, every id of one blob the same length. ``knobs.sas_version`` is the
version issued; ``knobs.put_blob_max_bytes`` lowers the Put Blob limit, so tests show a body
over it with small files (the default is Azure's). Refusals carry Azure's error codes.
"""

from __future__ import annotations

import binascii
import bisect
import hashlib
import hmac
import itertools
import os
import secrets
import shutil
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from ._body import Body
from ._models import Knobs
from ._replies import Reply

BLOB_PATH = "/dmf/"
_SAS_LIFETIME_SECONDS = 3600
_MIB = 1024 * 1024
# (first version with these limits, Put Blob bytes, Put Block bytes), newest first.
_LIMITS = (
    ("2019-12-12", 5000 * _MIB, 4000 * _MIB),
    ("2016-05-31", 256 * _MIB, 100 * _MIB),
    ("", 64 * _MIB, 4 * _MIB),
)
MAX_COMMITTED_BLOCKS = 50_000
MAX_UNCOMMITTED_BLOCKS = 100_000
_MAX_BLOCK_ID_BYTES = 64


def put_blob_limit(version: str) -> int:
    """The largest Put Blob body of storage version `version` (``YYYY-MM-DD``)."""
    return next(blob for since, blob, _ in _LIMITS if version >= since)


def put_block_limit(version: str) -> int:
    """The largest Put Block body of storage version `version`."""
    return next(block for since, _, block in _LIMITS if version >= since)


@dataclass(frozen=True)
class Blob:
    """A committed blob: its files in order (one for Put Blob, the blocks for a block list)."""

    parts: tuple[Path, ...]

    def open(self) -> BinaryIO | _Parts:
        """The blob's bytes as one seekable stream (what zipfile needs); close it after use."""
        return self.parts[0].open("rb") if len(self.parts) == 1 else _Parts(self.parts)


class BlobStore:
    """The blobs and staged blocks behind the SAS URLs; thread-safe."""

    def __init__(
        self, knobs: Knobs, base_url: Callable[[], str], spool_dir: Callable[[], Path]
    ) -> None:
        self._knobs = knobs
        self._base_url = base_url
        self._spool_dir = spool_dir
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._blobs: dict[str, Blob] = {}
        self._staged: dict[str, dict[str, Path]] = {}

    def clear(self) -> list[Path]:
        """Forget every blob and staged block; answer the files to delete."""
        with self._lock:
            paths = [path for blob in self._blobs.values() for path in blob.parts]
            paths += [path for blocks in self._staged.values() for path in blocks.values()]
            self._blobs.clear()
            self._staged.clear()
        return paths

    def write_url(self, name: str) -> str:
        """A writable (and readable) SAS URL for blob `name`, of version `knobs.sas_version`."""
        expiry = str(int(time.time()) + _SAS_LIFETIME_SECONDS)
        return (
            f"{self._base_url()}{BLOB_PATH}{quote(name, safe='')}?sv={self._knobs.sas_version}"
            f"&sr=b&sp=rcw&se={expiry}&sig={self._sign(name, expiry)}"
        )

    def body_limit(self, operation: str, query: Mapping[str, str]) -> int | None:
        """The most body bytes `operation` takes under the request's SAS version (None: no
        limit of its own); the handler reads and discards the rest."""
        version = query.get("sv", "")
        if operation == "blob_block":
            return put_block_limit(version)
        if operation == "blob_put":
            forced = self._knobs.put_blob_max_bytes
            return put_blob_limit(version) if forced is None else forced
        return None

    def store_file(self, name: str, data: bytes) -> str:
        """Keep `data` as blob `name` (a file F&O produced); answer its SAS URL."""
        with tempfile.NamedTemporaryFile(
            dir=self._spool_dir(), prefix="dmf-", delete=False
        ) as handle:
            handle.write(data)
        self._commit(name, Blob((Path(handle.name),)))
        return self.write_url(name)

    def store_path(self, name: str, path: Path) -> str:
        """Keep the file at `path` (taken over: deleted by `clear`) as blob `name`; answer its
        SAS URL."""
        self._commit(name, Blob((path,)))
        return self.write_url(name)

    def spool_dir(self) -> Path:
        """Where the blobs' files are kept."""
        return self._spool_dir()

    def own_blob(self, url: str) -> Blob | None:
        """The blob a SAS URL of ours names, None for any other URL or a bad signature."""
        parts = urlsplit(url)
        if parts.netloc != urlsplit(self._base_url()).netloc:
            return None
        if not parts.path.startswith(BLOB_PATH):
            return None
        name = unquote(parts.path[len(BLOB_PATH) :])
        if self._authorized(name, dict(parse_qsl(parts.query)), {}) is not None:
            return None
        with self._lock:
            return self._blobs.get(name)

    # -- the REST operations ----------------------------------------------------------------

    def put(
        self, operation: str, name: str, query: Mapping[str, str], headers: Any, body: Body
    ) -> Reply:
        """Put Blob (``blob_put``), Put Block (``blob_block``) or Put Block List
        (``blob_block_list``); the spooled body file is taken over or deleted."""
        assert body.path is not None  # blob bodies are always spooled
        refusal = self._authorized(name, query, headers) or _too_large(body)
        if refusal is None:
            put = {
                "blob_put": self._put_blob,
                "blob_block": self._put_block,
                "blob_block_list": self._put_block_list,
            }[operation]
            reply, kept = put(name, query, headers, body.path)
        else:
            reply, kept = refusal, False
        if not kept:
            body.path.unlink(missing_ok=True)
        return reply

    def get(self, name: str, query: Mapping[str, str], headers: Any) -> Reply:
        """Get Blob: the blob's bytes (a block list's files are joined into one at the first
        read: the reply streams one file)."""
        refusal = self._authorized(name, query, headers)
        if refusal is not None:
            return refusal
        with self._lock:
            blob = self._blobs.get(name)
        if blob is None:
            return storage_error(404, "BlobNotFound", "The specified blob does not exist.")
        if len(blob.parts) > 1:
            blob = self._join(name, blob)
        return Reply(200, content_type="application/octet-stream", file=blob.parts[0])

    def _put_blob(self, name: str, query: Any, headers: Any, path: Path) -> tuple[Reply, bool]:
        if headers.get("x-ms-blob-type", "") != "BlockBlob":
            return storage_error(
                400,
                "MissingRequiredHeader",
                "An HTTP header that's mandatory for this request is not specified: "
                "x-ms-blob-type.",
            ), False
        self._commit(name, Blob((path,)))
        return _created(), True

    def _put_block(self, name: str, query: Any, headers: Any, path: Path) -> tuple[Reply, bool]:
        identifier = query.get("blockid", "")
        problem = _block_id_problem(identifier)
        with self._lock:
            staged = self._staged.setdefault(name, {})
            other = next(iter(staged), None)
            if problem is None and other is not None and len(other) != len(identifier):
                problem = "every block id of a blob must have the same length"
            if problem is not None:
                return storage_error(
                    400,
                    "InvalidQueryParameterValue",
                    f"The value for blockid is invalid: {problem}.",
                ), False
            if identifier not in staged and len(staged) >= MAX_UNCOMMITTED_BLOCKS:
                return storage_error(
                    409,
                    "BlockCountExceedsLimit",
                    "The uncommitted block count cannot exceed the maximum limit of 100,000 "
                    "blocks.",
                ), False
            previous = staged.get(identifier)
            staged[identifier] = path
        if previous is not None:
            previous.unlink(missing_ok=True)
        return _created(), True

    def _put_block_list(
        self, name: str, query: Any, headers: Any, path: Path
    ) -> tuple[Reply, bool]:
        try:
            wanted = _block_list(path.read_bytes())
        except ValueError as exc:
            return storage_error(
                400, "InvalidXmlDocument", f"XML specified is not syntactically valid: {exc}."
            ), False
        if len(wanted) > MAX_COMMITTED_BLOCKS:
            return storage_error(
                400, "BlockListTooLong", "The block list may not contain more than 50,000 blocks."
            ), False
        with self._lock:
            staged = self._staged.get(name, {})
            blocks = [staged.get(i) for kind, i in wanted if kind in ("Latest", "Uncommitted")]
            if len(blocks) != len(wanted) or None in blocks:
                return storage_error(
                    400, "InvalidBlockList", "The specified block list is invalid."
                ), False
            self._staged.pop(name, None)
        kept = tuple(block for block in blocks if block)
        self._commit(name, Blob(kept))
        for block in set(staged.values()) - set(kept):
            block.unlink(missing_ok=True)
        return _created(), False

    # -- helpers ----------------------------------------------------------------------------

    def _commit(self, name: str, blob: Blob) -> None:
        with self._lock:
            old = self._blobs.get(name)
            self._blobs[name] = blob
        for path in set(old.parts if old else ()) - set(blob.parts):
            path.unlink(missing_ok=True)

    def _join(self, name: str, blob: Blob) -> Blob:
        with (
            blob.open() as source,
            tempfile.NamedTemporaryFile(dir=self._spool_dir(), prefix="dmf-", delete=False) as out,
        ):
            shutil.copyfileobj(source, out, _MIB)
        joined = Blob((Path(out.name),))
        with self._lock:
            replace = self._blobs.get(name) is blob
        if replace:
            self._commit(name, joined)
        return joined

    def _sign(self, name: str, expiry: str) -> str:
        return hmac.new(self._key, f"{name}\n{expiry}".encode(), hashlib.sha256).hexdigest()

    def _authorized(self, name: str, query: Mapping[str, str], headers: Any) -> Reply | None:
        if headers.get("Authorization"):
            return storage_error(
                400,
                "InvalidAuthenticationInfo",
                "Authentication information is not given in the correct format: a SAS request "
                "carries no Authorization header.",
            )
        expiry, signature = query.get("se", ""), query.get("sig", "")
        valid = hmac.compare_digest(self._sign(name, expiry), signature)
        if not valid or not expiry.isdigit() or int(expiry) < time.time():
            return storage_error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of "
                "Authorization header is formed correctly including the signature.",
            )
        return None


def storage_error(status: int, code: str, message: str) -> Reply:
    """An Azure Storage error: XML body and ``x-ms-error-code``."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?><Error>'
        f"<Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
    return Reply(status, body, "application/xml", {"x-ms-error-code": code})


def _created() -> Reply:
    return Reply(201, headers={"ETag": f'"0x{uuid.uuid4().hex[:16].upper()}"'})


def _too_large(body: Body) -> Reply | None:
    if not body.over_limit:
        return None
    return storage_error(
        413,
        "RequestBodyTooLarge",
        "The request body is too large and exceeds the maximum permissible limit.",
    )


def _block_id_problem(identifier: str) -> str | None:
    if not identifier:
        return "a blockid is required"
    try:
        decoded = binascii.a2b_base64(identifier.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        return "it is not Base64"
    if len(decoded) > _MAX_BLOCK_ID_BYTES:
        return "it is longer than 64 bytes before encoding"
    return None


def _block_list(data: bytes) -> list[tuple[str, str]]:
    """(kind, id) of each entry of a Put Block List body, in order."""
    try:
        root = ET.fromstring(data)  # noqa: S314 - the client under test's own body
    except ET.ParseError as exc:
        raise ValueError(str(exc)) from None
    if root.tag != "BlockList":
        raise ValueError("the root element is not BlockList")
    return [(child.tag, (child.text or "").strip()) for child in root]


class _Parts:
    """Files read as one stream with ``read``, ``seek`` and ``tell``, all zipfile uses."""

    def __init__(self, parts: tuple[Path, ...]) -> None:
        self._parts = parts
        self._ends = list(itertools.accumulate(part.stat().st_size for part in parts))
        self._size = self._ends[-1] if self._ends else 0
        self._position = 0
        self._current: tuple[int, BinaryIO] | None = None

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._position = max(0, offset + (0, self._position, self._size)[whence])
        return self._position

    def read(self, size: int = -1) -> bytes:
        wanted = self._size - self._position if size < 0 else size
        pieces = []
        while wanted > 0 and self._position < self._size:
            index = bisect.bisect_right(self._ends, self._position)
            handle = self._handle(index)
            handle.seek(self._position - (self._ends[index - 1] if index else 0))
            piece = handle.read(min(wanted, self._ends[index] - self._position))
            if not piece:
                break  # the file was cut meanwhile
            pieces.append(piece)
            self._position += len(piece)
            wanted -= len(piece)
        return b"".join(pieces)

    def _handle(self, index: int) -> BinaryIO:
        if self._current is None or self._current[0] != index:
            self.close()
            self._current = (index, self._parts[index].open("rb"))
        return self._current[1]

    def close(self) -> None:
        if self._current is not None:
            self._current[1].close()
            self._current = None

    def __enter__(self) -> _Parts:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
