"""A package zip built on the fly from a template's two files plus a plain file."""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterator
from typing import Any

from shared.clients.storage import STREAM_CHUNK

__all__ = ["PackageBuilder"]


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


class PackageBuilder:
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
