"""The views' one place for a listing's continuation token, read from a query or written out.

The token stays opaque here: the store that issued it decodes it (a token it did not issue is
its ``ValueError``, answered with 400). Any change to how views handle tokens is made here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["PARAM", "continuation", "page_json"]

PARAM = "continuation"
"""The query parameter that carries the previous page's token."""


def continuation(params: Mapping[str, str]) -> str | None:
    """The token of the page asked for; None for the first page."""
    return params.get(PARAM) or None


def page_json(items: Iterable[dict[str, Any]], token: str | None) -> dict[str, Any]:
    """A listing's body: its items with the token of the next page (None on the last)."""
    return {"items": list(items), PARAM: token}
