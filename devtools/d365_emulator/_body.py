"""Reading request bodies in chunks (Content-Length or chunked), optionally spooled to disk."""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 64 * 1024
# Bodies up to this size are kept in memory for the handlers and for `emu.requests`.
SMALL_BODY = 1024 * 1024


class BodyError(Exception):
    """The request body is malformed (bad chunked encoding, bad Content-Length)."""


@dataclass(frozen=True)
class Body:
    """What was read: size, digest, the bytes when small, and the spool file when asked."""

    size: int
    sha256: str
    data: bytes | None
    path: Path | None
    over_limit: bool


def _chunked(stream: BinaryIO, pause: float) -> Iterator[bytes]:
    read = 0
    while True:
        line = stream.readline(1024)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise BodyError("bad chunk size line") from exc
        if size == 0:
            # Skip trailers up to the empty line.
            while stream.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            return
        remaining = size
        while remaining:
            if pause and read:
                time.sleep(pause)
                pause = 0.0
            data = stream.read(min(CHUNK, remaining))
            if not data:
                raise BodyError("connection closed inside a chunk")
            remaining -= len(data)
            read += len(data)
            yield data
        stream.readline(8)


def _sized(stream: BinaryIO, length: int, pause: float) -> Iterator[bytes]:
    remaining = length
    while remaining:
        if pause and remaining < length:
            time.sleep(pause)
            pause = 0.0
        data = stream.read(min(CHUNK, remaining))
        if not data:
            raise BodyError("connection closed before the whole body arrived")
        remaining -= len(data)
        yield data


def chunks(stream: BinaryIO, headers: Mapping[str, str], pause: float = 0.0) -> Iterator[bytes]:
    """The body's chunks as the headers announce it (no body when neither header is set).

    With `pause`, reading stops for that many seconds after the first read, once.
    """
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return _chunked(stream, pause)
    try:
        length = int(headers.get("Content-Length", "0") or "0")
    except ValueError as exc:
        raise BodyError("bad Content-Length") from exc
    if length < 0:
        raise BodyError("bad Content-Length")
    return _sized(stream, length, pause)


def read_body(
    stream: BinaryIO,
    headers: Mapping[str, str],
    *,
    spool_dir: Path | None = None,
    limit: int | None = None,
    pause: float = 0.0,
) -> Body:
    """Read the whole body chunk by chunk; never holds more than SMALL_BODY in memory.

    With `spool_dir` the bytes go to a new file there, up to `limit` bytes; past the limit the
    rest is read and discarded (so the client can read our answer) and `over_limit` is set.
    With `pause`, reading stops for that many seconds after the first chunk (back-pressure).
    """
    digest = hashlib.sha256()
    size = 0
    kept: bytearray | None = bytearray()
    spool = None
    if spool_dir is not None:
        spool = tempfile.NamedTemporaryFile(dir=spool_dir, prefix="msg-", delete=False)  # noqa: SIM115 - closed below
    over_limit = False
    try:
        for data in chunks(stream, headers, pause):
            size += len(data)
            digest.update(data)
            if kept is not None:
                kept += data
                if len(kept) > SMALL_BODY:
                    kept = None
            if spool is not None and not over_limit:
                over_limit = limit is not None and size > limit
                if not over_limit:
                    spool.write(data)
    except BaseException:
        if spool is not None:
            spool.close()
            Path(spool.name).unlink(missing_ok=True)
        raise
    path = None
    if spool is not None:
        spool.close()
        path = Path(spool.name)
    return Body(
        size, digest.hexdigest(), bytes(kept) if kept is not None else None, path, over_limit
    )
