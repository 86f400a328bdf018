"""The one parser of the views' request parameters: names, times, page sizes, message ids, paths.

Every view reads its parameters through these functions, so a time or a page size is accepted,
or refused with the same text, alike on every route. Each refusal is a ``ValueError`` whose
text names the parameter and what is accepted; the views answer it with 400.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from shared.clients.d365 import normalize_message_id
from shared.config import MAX_BLOB_NAME_CHARS
from shared.config.blob_names import utf16_length
from shared.config.route_fields import company_problem

__all__ = [
    "DEFAULT_LIMIT",
    "EARLIEST",
    "LATEST",
    "MAX_LIMIT",
    "check_blob_path",
    "check_names",
    "company_param",
    "limit_param",
    "parse_message_id",
    "time_param",
]

EARLIEST = datetime(1601, 1, 1, tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
"""The date-times accepted: Azure Table Storage's own range. Near the ends of Python's (years 1
and 9999) a time overflowed once its offset or the default count period was applied (a 500);
a time in this range, held in UTC, cannot."""
MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
_FUNCTION_KEY = "code"
"""``?code=`` carries the function key: accepted on every route, never listed."""


def check_names(params: Mapping[str, str], accepted: Iterable[str]) -> None:
    """Refuse any parameter a route does not take.

    :raises ValueError: naming the unknown parameters and the accepted ones.
    """
    accepted = [name for name in accepted if name != _FUNCTION_KEY]
    unknown = sorted(set(params) - set(accepted) - {_FUNCTION_KEY})
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}"
        )


def parse_message_id(text: str, *, expected: str) -> str:
    """``text`` (a GUID in any case, braced or quoted) as the F&O message id used for keys.

    :param expected: what the refusal says is expected instead.
    :raises ValueError: not a GUID; checked before any read, so a key with '/', '#' or '?'
        never reaches the table.
    """
    try:
        return normalize_message_id(text)
    except ValueError:
        raise ValueError(f"message_id {text[:80]!r} is not a GUID; expected {expected}") from None


def time_param(params: Mapping[str, str], name: str) -> datetime | None:
    """The time ``params`` give as ``name`` (ISO 8601; without an offset it is UTC), in UTC;
    None when absent or empty.

    :raises ValueError: not a date-time, or outside :data:`EARLIEST` to :data:`LATEST`.
    """
    text = params.get(name)
    return _parse_time(name, text) if text else None


def limit_param(params: Mapping[str, str]) -> int:
    """The page size ``params`` give as ``limit``: :data:`DEFAULT_LIMIT` when absent or empty.

    :raises ValueError: not a whole number from 1 to :data:`MAX_LIMIT`.
    """
    text = params.get("limit")
    if not text:
        return DEFAULT_LIMIT
    # ASCII digits only (str.isdigit() also accepts "²", which int() refuses), and few of
    # them: int() refuses over 4,300 digits with a text of its own.
    digits = text.isascii() and text.isdigit() and len(text) <= len(str(MAX_LIMIT))
    if not digits or not 1 <= int(text) <= MAX_LIMIT:
        raise ValueError(f"limit {text[:20]!r} is not accepted; expected 1 to {MAX_LIMIT}")
    return int(text)


def company_param(params: Mapping[str, str]) -> str | None:
    """The legal entity ``params`` give as ``company``, upper case; None when absent or blank.

    :raises ValueError: not 1-4 letters or digits (a longer text would only make the table
        query too long for storage, a 503 instead of this 400).
    """
    text = params.get("company", "").strip()
    if not text:
        return None
    problem = company_problem(text)
    if problem:
        raise ValueError(f"company {problem}")
    return text.upper()


def check_blob_path(name: str, text: str) -> str:
    """``text``, a blob path (or its start) given as parameter ``name``, when it is not longer
    than a blob name is accepted.

    :raises ValueError: longer than :data:`MAX_BLOB_NAME_CHARS`, naming the parameter.
    """
    length = utf16_length(text)
    if length > MAX_BLOB_NAME_CHARS:
        raise ValueError(
            f"{name} is {length:,} characters long; expected a blob path of at most "
            f"{MAX_BLOB_NAME_CHARS} characters"
        )
    return text


def _parse_time(name: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{name} {text[:40]!r} is not a date-time; expected ISO 8601, e.g. 2026-11-28T09:00:00Z"
        ) from None
    try:
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        value = None  # its offset took it past year 1 or 9999
    if value is None or not EARLIEST <= value <= LATEST:
        raise ValueError(
            f"{name} {text[:40]!r} is out of range; expected a date-time from "
            f"{_iso(EARLIEST)} to {_iso(LATEST)}"
        )
    return value


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
