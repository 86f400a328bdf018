"""JSON from outside the app, refused before parsing when it nests deeper than its reader
allows: F&O's answers, request bodies, the sign-in header, blob metadata, route settings.

``json.loads`` takes a stack frame per level. 100,000 ``[`` raise ``RecursionError``, and
even a parse that only nears the interpreter's recursion limit breaks any finalizer that
runs meanwhile ("Exception ignored ... RecursionError", seen in CI). The depth is checked
first, with the parser never called on what is too deep.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "JsonTooDeepError", "loads", "nesting_depth"]

MAX_DEPTH = 64
"""The deepest JSON read by default. What the app reads nests a few levels (F&O's answers
at most five); 64 leaves room for any formatting and keeps the parser far from the limit."""

# A JSON string, escapes included (the unrolled form: linear on any input).
_STRING_TEXT = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_NOT_BRACKET = r"[^\[\]{}]+"
_STRINGS = {
    str: re.compile(_STRING_TEXT, re.DOTALL),
    bytes: re.compile(_STRING_TEXT.encode(), re.DOTALL),
}
_OTHERS = {str: re.compile(_NOT_BRACKET), bytes: re.compile(_NOT_BRACKET.encode())}


class JsonTooDeepError(ValueError):
    """JSON nested deeper than its reader allows; a ``ValueError`` like any text that is not
    JSON, so a caller that refuses junk refuses this too."""

    def __init__(self, depth: int, max_depth: int) -> None:
        super().__init__(f"JSON nested {depth} levels deep, over the {max_depth} read")
        self.depth = depth
        self.max_depth = max_depth


def nesting_depth(text: str | bytes) -> int:
    """How deeply arrays and objects nest in ``text``, strings skipped; an unclosed string's
    brackets count, which can only overstate the depth of what is not JSON anyway."""
    kind = type(text)
    brackets = _OTHERS[kind].sub(kind(), _STRINGS[kind].sub(kind(), text))
    opening = "[{" if kind is str else b"[{"
    depth = deepest = 0
    for char in brackets:
        depth += 1 if char in opening else -1
        deepest = max(deepest, depth)
    return deepest


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, **options: Any) -> Any:
    """``json.loads(text, **options)`` for JSON nested at most ``max_depth`` levels.

    :raises JsonTooDeepError: deeper than ``max_depth`` (checked before any parsing).
    :raises ValueError: not JSON (``json.JSONDecodeError``), or bytes that are not UTF-8
        (``UnicodeDecodeError``).
    """
    if isinstance(text, str):
        opened = text.count("[") + text.count("{")
    else:
        opened = text.count(b"[") + text.count(b"{")
    # No more brackets than the limit cannot nest deeper: most texts skip the scan.
    if opened > max_depth:
        depth = nesting_depth(text)
        if depth > max_depth:
            raise JsonTooDeepError(depth, max_depth)
    return json.loads(text, **options)
