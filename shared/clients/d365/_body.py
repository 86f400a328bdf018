"""Upload bodies: a fresh stream per attempt, sent in fixed chunks with a known length."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO, Protocol

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Body",
    "BodyLengthError",
    "ChunkedUpload",
    "Readable",
    "UploadBody",
]


DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024


class Readable(Protocol):
    """What the client needs from a body stream (a file, or a blob `StorageStreamDownloader`)."""

    def read(self, size: int = -1, /) -> bytes: ...


Body = bytes | bytearray | memoryview | BinaryIO | Callable[[], Readable]
"""An enqueue body: bytes, a seekable binary stream, or a callable opening a fresh stream."""


class BodyLengthError(ValueError):
    """The body stream ended before `length` bytes."""


class ChunkedUpload:
    """An iterable body with a length: requests sends it with Content-Length, in chunks.

    `completed` turns True only once the last chunk has been handed to the socket, which is
    how the client tells "F&O cannot have the whole file" from "F&O may have it".
    """

    def __init__(self, stream: Readable, length: int, chunk_size: int) -> None:
        self._stream = stream
        self._length = length
        self._chunk_size = chunk_size
        self.bytes_read = 0
        self.completed = False

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes | memoryview]:
        # Real files and BytesIO fill one reused buffer; other readers (a blob downloader)
        # hand out new bytes. The socket is done with a chunk before the next is asked for.
        readinto = (
            self._stream.readinto
            if isinstance(self._stream, io.RawIOBase | io.BufferedIOBase)
            else None
        )
        buffer = memoryview(bytearray(min(self._chunk_size, self._length)))
        while self.bytes_read < self._length:
            want = min(self._chunk_size, self._length - self.bytes_read)
            if readinto is not None:
                count = readinto(buffer[:want]) or 0
                chunk: bytes | memoryview = buffer[:count]
            else:
                chunk = self._stream.read(want)
                count = len(chunk)
            if count == 0:
                raise BodyLengthError(
                    f"the body ended after {self.bytes_read} of the {self._length} bytes "
                    "given as length"
                )
            self.bytes_read += count
            yield chunk
        self.completed = True


class UploadBody:
    """Opens an enqueue body afresh for every attempt.

    :raises TypeError: for a body of another type.
    :raises ValueError: for a negative length or a stream that cannot be re-read.
    """

    def __init__(self, body: Body, length: int | None, chunk_size: int) -> None:
        if length is not None and (not isinstance(length, int) or length < 0):
            raise ValueError(f"length must be a non-negative int, got {length!r}")
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self._body = body
        self._chunk_size = chunk_size
        self._start = 0
        self.length = length
        if isinstance(body, bytes | bytearray | memoryview):
            self.length = len(body) if length is None else length
        elif _is_stream(body):
            self._init_stream(body)
        elif not callable(body):
            raise TypeError(
                "body must be bytes, a seekable binary stream, or a callable returning a "
                f"fresh binary stream, not {type(body).__name__}"
            )

    def _init_stream(self, stream: BinaryIO) -> None:
        _require_binary(stream)
        if not (hasattr(stream, "seekable") and stream.seekable()):
            raise ValueError(
                "body stream must be seekable so a retry can send it again from the start; "
                "pass a callable that opens a fresh stream instead"
            )
        self._start = stream.tell()
        if self.length is None:
            self.length = stream.seek(0, io.SEEK_END) - self._start
            stream.seek(self._start)

    @contextmanager
    def attempt(self) -> Iterator[ChunkedUpload | bytes]:
        """The body for one attempt: a `ChunkedUpload`, or b"" for an empty body."""
        body = self._body
        if isinstance(body, bytes | bytearray | memoryview):
            yield self._chunked(io.BytesIO(body))
        elif _is_stream(body):
            body.seek(self._start)
            yield self._chunked(body)
        else:
            stream = body()
            try:
                if self.length is None:
                    self.length = _stream_length(stream)
                yield self._chunked(stream)
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()

    def _chunked(self, stream: Readable) -> ChunkedUpload | bytes:
        _require_binary(stream)
        length = self.length or 0
        # requests sends an empty iterable as chunked; an empty bytes gets Content-Length: 0.
        return ChunkedUpload(stream, length, self._chunk_size) if length else b""


def _is_stream(body: Body) -> bool:
    # A class with a read method is callable, a stream never is.
    return hasattr(body, "read") and not callable(body)


def _require_binary(stream: Readable) -> None:
    if isinstance(stream, io.TextIOBase):
        raise TypeError("body stream must be binary: open the file with mode 'rb'")


def _stream_length(stream: Readable) -> int:
    """Bytes left in a freshly opened stream, or ValueError asking for `length`."""
    size = getattr(stream, "size", None)
    if isinstance(size, int) and not isinstance(stream, io.IOBase):
        # A blob StorageStreamDownloader knows the size of what it will return.
        return size
    fileno = getattr(stream, "fileno", None)
    tell = getattr(stream, "tell", None)
    if fileno is not None and tell is not None:
        try:
            return os.fstat(fileno()).st_size - tell()
        except (OSError, io.UnsupportedOperation):
            pass
    seekable = getattr(stream, "seekable", None)
    if seekable is not None and tell is not None and seekable():
        start = tell()
        end = stream.seek(0, io.SEEK_END)  # type: ignore[attr-defined]
        stream.seek(start)  # type: ignore[attr-defined]
        return end - start
    raise ValueError(
        "length is required: the size of the stream returned by the body callable cannot be "
        "determined"
    )
