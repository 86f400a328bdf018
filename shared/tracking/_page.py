"""One page of a listing, with the opaque continuation token that asks for the next.

The token is the row key of the page's last item, base64url without padding: the one codec
of the HTTP API's ``continuation`` for files and exports alike. A listing decodes it with the
test its row keys pass, so a token it did not issue is refused, never used as a bound.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Page", "decode_continuation", "encode_continuation"]

_T = TypeVar("_T")
_NOT_OURS = "continuation is not a token this API issued"


@dataclass(frozen=True)
class Page(Generic[_T]):
    """One page of a listing; ``continuation`` is opaque, None on the last page."""

    records: tuple[_T, ...]
    continuation: str | None


def encode_continuation(row_key: str) -> str:
    """Opaque continuation token for the HTTP API: the row key the next page starts after."""
    return base64.urlsafe_b64encode(row_key.encode()).decode().rstrip("=")


def decode_continuation(token: str, *, accepts: Callable[[str], bool]) -> str:
    """Inverse of :func:`encode_continuation`.

    :keyword accepts: whether a decoded key is one of the listing's row keys.
    :raises ValueError: a token this API did not issue.
    """
    try:
        padded = token + "=" * (-len(token) % 4)
        row_key = base64.urlsafe_b64decode(padded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(_NOT_OURS) from exc
    if not accepts(row_key):
        raise ValueError(_NOT_OURS)
    return row_key
