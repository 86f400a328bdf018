"""Which blob names an inbound file may have, so its archive name still fits Azure's limits.

Blob names are accepted up to :data:`MAX_BLOB_NAME_CHARS` characters and
:data:`MAX_BLOB_NAME_SEGMENTS` segments, so that the archive's name for the file,
``<state>/<name>`` with ``.<12 hex>`` before the extension on a repeat, stays within Azure's
limits (1,024 characters, 254 segments).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from shared.config.parsers import shown
from shared.config.rejections import RejectReason, RoutingError
from shared.config.route_fields import has_control_character

__all__ = ["MAX_BLOB_NAME_CHARS", "MAX_BLOB_NAME_SEGMENTS", "checked_segments", "utf16_length"]

MAX_FILE_NAME_CHARS = 255
# Azure's limits for a blob name, and what the archive adds to one:
# "<state>/" (the longest terminal state is PostProcessingFailed) and, when that name was
# archived before, ".<12 hex>" of the record id before the extension.
_AZURE_BLOB_NAME_CHARS = 1024
_AZURE_BLOB_NAME_SEGMENTS = 254
_ARCHIVE_STATE_FOLDER = "PostProcessingFailed/"
_ARCHIVE_REPEAT_SUFFIX_CHARS = len(".") + 12
# Not UTF-8 encodable: neither Azure nor F&O can be sent such a name.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_BLOB_NAME_CHARS = (
    _AZURE_BLOB_NAME_CHARS - len(_ARCHIVE_STATE_FOLDER) - _ARCHIVE_REPEAT_SUFFIX_CHARS
)
"""The longest blob name accepted (990), counted in UTF-16 code units, the stricter reading of
Azure's "characters": its archive name then fits Azure's 1,024."""
MAX_BLOB_NAME_SEGMENTS = _AZURE_BLOB_NAME_SEGMENTS - 1
"""The most path segments a blob name may have (253): the archive adds the state folder."""


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units: characters beyond U+FFFF count twice (a lone surrogate,
    which is no character, counts once rather than raising)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def checked_segments(blob_path: str) -> list[str]:
    """Split a blob path, or raise BAD_NAME when F&O or a person could not use the name.

    :raises RoutingError: BAD_NAME, or NAME_TOO_LONG when the archive's name for the blob
        could exceed Azure's limits.
    """
    segments = blob_path.split("/")
    problem = None
    if not blob_path:
        problem = "is empty"
    elif has_control_character(blob_path):
        problem = "holds a control character"
    elif _LONE_SURROGATE.search(blob_path):
        problem = "holds a lone surrogate (U+D800-U+DFFF), which is not a character"
    elif any(not s.strip() for s in segments):
        problem = "has an empty folder or file name segment"
    elif any(s in (".", "..") for s in segments):
        problem = "holds a '.' or '..' segment"
    elif len(segments[-1]) > MAX_FILE_NAME_CHARS:
        problem = f"has a file name longer than {MAX_FILE_NAME_CHARS} characters"
    if problem:
        raise RoutingError(
            RejectReason.BAD_NAME,
            blob_path,
            f"blob name {shown(blob_path)} {problem}; F&O gets the file name as its external "
            "identifier: rename the file (printable characters, no empty segments) and upload "
            "it again",
        )
    _check_archive_limits(blob_path, segments)
    return segments


def _check_archive_limits(blob_path: str, segments: Sequence[str]) -> None:
    """NAME_TOO_LONG when the archive's name for the blob could exceed Azure's limits."""
    length = utf16_length(blob_path)
    if length > MAX_BLOB_NAME_CHARS:
        problem = (
            f"is {length} characters long; the archive adds up to "
            f"{_AZURE_BLOB_NAME_CHARS - MAX_BLOB_NAME_CHARS} ('{_ARCHIVE_STATE_FOLDER}' and "
            f"'.<12 hex>' for a repeat) and Azure takes at most {_AZURE_BLOB_NAME_CHARS}, so "
            f"names up to {MAX_BLOB_NAME_CHARS} characters are accepted"
        )
    elif len(segments) > MAX_BLOB_NAME_SEGMENTS:
        problem = (
            f"has {len(segments)} path segments; the archive adds one and Azure takes at most "
            f"{_AZURE_BLOB_NAME_SEGMENTS}, so names of up to {MAX_BLOB_NAME_SEGMENTS} "
            "segments are accepted"
        )
    else:
        return
    raise RoutingError(
        RejectReason.NAME_TOO_LONG,
        blob_path,
        f"blob name {shown(blob_path)} {problem}: use shorter or fewer folder names and "
        "upload it again",
    )
