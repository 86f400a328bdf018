"""Chromium's screenshots read and written again smaller, with the standard library only.

Chromium filters every row of a PNG (PNG's Sub, Up, Average, Paeth) as suits photographs; a
page of text on flat colours compresses better unfiltered, at zlib's level 9: the console's
picture goes from 203 KB to 166 KB, pixel for pixel the same. Only what Chromium saves is
read: 8-bit RGB, not interlaced.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RGB = 2
_CHANNELS = 3


class PngError(ValueError):
    """Not a PNG this module reads; the text says what it is instead."""


@dataclass(frozen=True)
class RgbImage:
    """An 8-bit RGB image: ``rows`` of ``width * 3`` bytes each, top to bottom."""

    width: int
    height: int
    rows: tuple[bytes, ...]

    def colours(self) -> set[bytes]:
        """The distinct pixels (3 bytes each)."""
        return {row[i : i + _CHANNELS] for row in self.rows for i in range(0, len(row), 3)}


def read_rgb(path: Path) -> RgbImage:
    """The pixels of an 8-bit RGB PNG.

    :raises PngError: not a PNG, or another depth, colour type or interlacing.
    """
    data = path.read_bytes()
    if not data.startswith(SIGNATURE):
        raise PngError(f"{path} is not a PNG")
    position, compressed, header = len(SIGNATURE), bytearray(), b""
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if (depth, colour, interlace) != (8, _RGB, 0):
        raise PngError(f"{path}: depth {depth}, colour type {colour}, interlace {interlace}")
    return RgbImage(width, height, _unfilter(zlib.decompress(compressed), width, height))


def _unfilter(raw: bytes, width: int, height: int) -> tuple[bytes, ...]:
    stride = width * _CHANNELS
    rows: list[bytes] = []
    above = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - _CHANNELS] if i >= _CHANNELS else 0
            up = above[i]
            if kind == 1:  # Sub
                line[i] = (line[i] + left) & 255
            elif kind == 2:  # Up
                line[i] = (line[i] + up) & 255
            elif kind == 3:  # Average
                line[i] = (line[i] + ((left + up) >> 1)) & 255
            elif kind == 4:  # Paeth: the neighbour nearest to left + up - corner
                corner = above[i - _CHANNELS] if i >= _CHANNELS else 0
                guess = left + up - corner
                near = min((abs(guess - left), 0), (abs(guess - up), 1), (abs(guess - corner), 2))
                line[i] = (line[i] + (left, up, corner)[near[1]]) & 255
        rows.append(bytes(line))
        above = line
    return tuple(rows)


def write_rgb(path: Path, image: RgbImage) -> None:
    """Write ``image`` as a PNG, rows unfiltered, zlib level 9."""
    path.write_bytes(encode(image.width, image.height, b"".join(b"\0" + r for r in image.rows)))


def encode(width: int, height: int, scanlines: bytes) -> bytes:
    """An 8-bit RGB PNG of ``scanlines``: each row its filter type byte, then its bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, _RGB, 0, 0, 0)
    pixels = zlib.compress(scanlines, 9)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def recompress(path: Path) -> int:
    """Write the PNG at ``path`` again as :func:`write_rgb` does, when that is smaller.

    :returns: its size in bytes afterwards.
    :raises PngError: not a PNG :func:`read_rgb` reads.
    """
    before = path.stat().st_size
    smaller = path.with_name(path.name + ".tmp")
    write_rgb(smaller, read_rgb(path))
    if smaller.stat().st_size < before:
        smaller.replace(path)
    else:
        smaller.unlink()
    return path.stat().st_size
