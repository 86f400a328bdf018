"""A package as Azure block-blob blocks: their size, their ids, the block list committing them.

Why blocks: the largest body one Put Blob takes depends on the version of the SAS F&O hands
out (``sv``): 64 MiB before 2016-05-31, 256 MiB before 2019-12-12, 5000 MiB after, and F&O's
version is not documented. Put Block takes 4 MiB in every version (100 MiB from 2016-05-31,
4000 MiB from 2019-12-12), and a blob holds up to 50,000 blocks, so 4 MiB blocks carry any
package up to 50,000 x 4 MiB (about 195 GiB) whatever the version. Staged blocks are invisible
until Put Block List commits them; uncommitted ones are discarded by the service.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from urllib.parse import quote
from xml.sax.saxutils import escape

from ._body import Readable

__all__ = [
    "BLOCK_SIZE",
    "MAX_BLOCKS",
    "block_id",
    "block_list_xml",
    "block_query",
    "read_block",
    "with_query",
]

BLOCK_SIZE = 4 * 1024 * 1024
"""Bytes per Put Block: the limit of the oldest SAS versions, so every version takes it."""
MAX_BLOCKS = 50_000
"""The most blocks one block blob holds."""


def block_id(index: int) -> str:
    """The id of block `index`: Base64 of a fixed-width number (every id of a blob must have
    the same length)."""
    return base64.b64encode(f"{index:06d}".encode("ascii")).decode("ascii")


def block_list_xml(ids: Sequence[str]) -> bytes:
    """The Put Block List body committing `ids` in order, each the latest staged version."""
    latest = "".join(f"<Latest>{escape(identifier)}</Latest>" for identifier in ids)
    return f'<?xml version="1.0" encoding="utf-8"?><BlockList>{latest}</BlockList>'.encode()


def with_query(url: str, query: str) -> str:
    """`url` (a SAS URL, which has a query string) with `query` appended."""
    return f"{url}{'&' if '?' in url else '?'}{query}"


def block_query(identifier: str) -> str:
    """The query string of a Put Block of block `identifier`."""
    return f"comp=block&blockid={quote(identifier, safe='')}"


def read_block(stream: Readable, size: int) -> bytes:
    """Up to `size` bytes of `stream` (fewer only at its end), read piece by piece: a blob
    download hands out one chunk at a time."""
    pieces = []
    filled = 0
    while filled < size:
        piece = stream.read(size - filled)
        if not piece:
            break
        pieces.append(piece)
        filled += len(piece)
    return b"".join(pieces)
