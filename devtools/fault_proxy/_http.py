"""Just enough HTTP/1.1 to relay one message at a time: heads, and bodies framed by
Content-Length, chunked encoding or the end of the connection, copied as raw bytes."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from io import BufferedReader

CHUNK = 64 * 1024
_MAX_LINE = 64 * 1024
_MAX_HEADERS = 200


class MessageError(Exception):
    """The peer sent something that is not HTTP/1.1, or closed the connection mid-message."""


class Framing(enum.Enum):
    """How the end of a body is found."""

    NONE = "none"
    LENGTH = "content-length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until-close"


@dataclass
class Head:
    """A request or status line with its header fields, as received."""

    start_line: str
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        """The last value of header ``name`` (case-insensitive), None when absent."""
        found = None
        for key, value in self.headers:
            if key.lower() == name.lower():
                found = value
        return found

    def without(self, name: str) -> Head:
        """A copy without header ``name``."""
        return Head(self.start_line, [(k, v) for k, v in self.headers if k.lower() != name.lower()])

    def has_token(self, name: str, token: str) -> bool:
        """Whether a comma-separated header (Connection, Transfer-Encoding) holds ``token``."""
        values = ",".join(v for k, v in self.headers if k.lower() == name.lower())
        return token.lower() in (part.strip().lower() for part in values.split(","))

    def to_bytes(self) -> bytes:
        """The head as it goes on the wire."""
        lines = [self.start_line, *(f"{k}: {v}" for k, v in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class RequestHead:
    """A parsed request head."""

    head: Head
    method: str
    target: str
    version: str

    @property
    def keep_alive(self) -> bool:
        """Whether the client expects the connection to stay open after this exchange."""
        if self.head.has_token("Connection", "close"):
            return False
        return self.version != "HTTP/1.0" or self.head.has_token("Connection", "keep-alive")

    @property
    def framing(self) -> Framing:
        """How this request's body ends."""
        if self.head.has_token("Transfer-Encoding", "chunked"):
            return Framing.CHUNKED
        if self.head.get("Content-Length") is not None:
            return Framing.LENGTH
        return Framing.NONE


@dataclass(frozen=True)
class ResponseHead:
    """A parsed status line and headers."""

    head: Head
    status: int

    def framing(self, request_method: str) -> Framing:
        """How this response's body ends (RFC 9112 section 6.3)."""
        if request_method == "HEAD" or self.status < 200 or self.status in (204, 304):
            return Framing.NONE
        if self.head.has_token("Transfer-Encoding", "chunked"):
            return Framing.CHUNKED
        if self.head.get("Content-Length") is not None:
            return Framing.LENGTH
        return Framing.UNTIL_CLOSE

    @property
    def closes(self) -> bool:
        """Whether the server closes the connection after this response."""
        return self.head.has_token("Connection", "close")


def _read_line(stream: BufferedReader) -> bytes:
    line = stream.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise MessageError("header line too long")
    return line


def _read_head(stream: BufferedReader) -> Head | None:
    """A head, or None when the peer closed the connection before sending a byte."""
    first = _read_line(stream)
    while first in (b"\r\n", b"\n"):  # tolerated before a request line (RFC 9112 2.2)
        first = _read_line(stream)
    if not first:
        return None
    if not first.endswith(b"\n"):
        raise MessageError("connection closed inside the start line")
    headers: list[tuple[str, str]] = []
    while True:
        line = _read_line(stream)
        if not line.endswith(b"\n"):
            raise MessageError("connection closed inside the header fields")
        if line in (b"\r\n", b"\n"):
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name.strip():
            raise MessageError(f"malformed header line {line[:60]!r}")
        headers.append((name.strip(), value.strip()))
        if len(headers) > _MAX_HEADERS:
            raise MessageError("too many header fields")
    return Head(first.decode("latin-1").rstrip("\r\n"), headers)


def read_request_head(stream: BufferedReader) -> RequestHead | None:
    """The next request head on a connection; None when the client closed it cleanly.

    :raises MessageError: not an HTTP/1.x request.
    """
    head = _read_head(stream)
    if head is None:
        return None
    parts = head.start_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise MessageError(f"not an HTTP/1.x request line: {head.start_line[:80]!r}")
    return RequestHead(head, parts[0].upper(), parts[1], parts[2])


def read_response_head(stream: BufferedReader) -> ResponseHead:
    """The next response head from the server.

    :raises MessageError: the server closed the connection or did not speak HTTP/1.x.
    """
    head = _read_head(stream)
    if head is None:
        raise MessageError("the server closed the connection without answering")
    parts = head.start_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise MessageError(f"not an HTTP/1.x status line: {head.start_line[:80]!r}")
    return ResponseHead(head, int(parts[1]))


class BodyCopier:
    """Copies one body as raw bytes (framing kept) to ``forward``, keeping up to
    ``capture_limit`` bytes of its payload (chunk framing removed) for observers."""

    def __init__(
        self, forward: Callable[[bytes], object] | None, *, capture_limit: int = 0
    ) -> None:
        self._forward = forward
        self._capture_limit = capture_limit
        self.captured = bytearray()
        self.size = 0

    def copy(self, stream: BufferedReader, framing: Framing, length: str | None = None) -> None:
        """Read the body from ``stream`` to its end.

        :raises MessageError: the connection ended before the body did, or bad framing.
        """
        if framing is Framing.LENGTH:
            try:
                remaining = int(length or "")
            except ValueError:
                raise MessageError(f"bad Content-Length {length!r}") from None
            self._copy_sized(stream, remaining)
        elif framing is Framing.CHUNKED:
            self._copy_chunked(stream)
        elif framing is Framing.UNTIL_CLOSE:
            while data := stream.read1(CHUNK):
                self._payload(data)
                self._send(data)

    def _send(self, data: bytes) -> None:
        if self._forward is not None:
            self._forward(data)

    def _payload(self, data: bytes) -> None:
        self.size += len(data)
        room = self._capture_limit - len(self.captured)
        if room > 0:
            self.captured += data[:room]

    def _copy_sized(self, stream: BufferedReader, remaining: int) -> None:
        if remaining < 0:
            raise MessageError(f"negative Content-Length {remaining}")
        while remaining:
            data = stream.read(min(CHUNK, remaining))
            if not data:
                raise MessageError("connection closed before the whole body arrived")
            remaining -= len(data)
            self._payload(data)
            self._send(data)

    def _copy_chunked(self, stream: BufferedReader) -> None:
        while True:
            line = _read_line(stream)
            if not line.endswith(b"\n"):
                raise MessageError("connection closed inside a chunk size line")
            self._send(line)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise MessageError(f"bad chunk size line {line[:40]!r}") from None
            if size == 0:
                break
            self._copy_sized(stream, size)
            end = stream.read(2)
            if end != b"\r\n":
                raise MessageError("chunk not followed by CRLF")
            self._send(end)
        while True:  # trailer fields, up to the empty line
            line = _read_line(stream)
            if not line.endswith(b"\n"):
                raise MessageError("connection closed inside the chunked trailer")
            self._send(line)
            if line in (b"\r\n", b"\n"):
                return
