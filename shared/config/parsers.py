"""Parsers of setting values: durations, URLs, GUIDs, byte sizes, counts, storage names.

Each takes the text as typed and returns the normalised value, or raises
:class:`InvalidValueError`, a ``ValueError`` whose ``problem`` says what is wrong without repeating
the value, so a caller can name a confidential setting without echoing it.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
from datetime import timedelta
from typing import TypeVar
from urllib.parse import SplitResult, urlsplit

from shared.clients.d365 import normalize_guid

__all__ = [
    "DURATION_FORMS",
    "EXAMPLE_GUID",
    "LONGEST_DURATION",
    "MAX_BYTE_SIZE",
    "InvalidValueError",
    "byte_size_form",
    "container_name_form",
    "format_byte_size",
    "format_duration",
    "is_container_name",
    "parse_byte_size",
    "parse_choice",
    "parse_container_name",
    "parse_duration",
    "parse_guid",
    "parse_table_name",
    "parse_url",
    "parse_whole_number",
    "shown",
]

EXAMPLE_GUID = "6d31e09f-0249-459f-94f0-aad9c2c47b64"
"""The GUID the examples of error texts show."""
DURATION_FORMS = "written as 90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"
LONGEST_DURATION = timedelta(days=36500)
"""The longest duration :func:`parse_duration` takes unless told otherwise (100 years)."""
MAX_BYTE_SIZE = 1024**3
"""The largest byte size accepted (1 GiB): F&O refused a 50 MB enqueue; more is a typo."""

_NIL_GUID = "00000000-0000-0000-0000-000000000000"
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# ASCII digits only: \d would also take digits of other scripts. \Z, not $: $ also matches
# before a final newline (a route's JSON string may end with one).
_SIMPLE_DURATION = re.compile(r"^(\d{1,30}(?:\.\d{1,9})?)\s*([smhd])?\Z", re.IGNORECASE | re.ASCII)
_ISO_DURATION = re.compile(
    # Lookaheads refuse the empty forms "P", "PT" and "P1DT".
    r"^P(?=\d|T\d)(?:(?P<d>\d{1,30})D)?"
    r"(?:T(?=\d)(?:(?P<h>\d{1,30})H)?(?:(?P<m>\d{1,30})M)?(?:(?P<s>\d{1,30}(?:\.\d{1,9})?)S)?)?\Z",
    re.IGNORECASE | re.ASCII,
)
_CLOCK_DURATION = re.compile(
    r"^(?:(?P<d>\d{1,30})\.)?(?P<h>\d{1,2}):(?P<m>[0-5]\d):(?P<s>[0-5]\d(?:\.\d{1,9})?)\Z",
    re.ASCII,
)
_SIZE = re.compile(r"^\s*(\d{1,20})\s*([KMGT]i?B|B)?\s*\Z", re.IGNORECASE | re.ASCII)
_SIZE_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z", re.ASCII)
_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]\Z", re.ASCII)
_TABLE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}\Z", re.ASCII)
_WHOLE_NUMBER = re.compile(r"^[0-9]{1,9}\Z", re.ASCII)


class InvalidValueError(ValueError):
    """A value that does not parse. ``str()`` shows the value (shortened); ``problem`` does not.

    :param value: the value as given.
    :param problem: what is wrong, worded to follow the value, e.g. ``"is not a GUID"``.
    :keyword hidden: the value may hold a secret: ``str()`` is the problem alone.
    """

    def __init__(self, value: object, problem: str, *, hidden: bool = False) -> None:
        self.problem = problem
        super().__init__(problem if hidden else f"{shown(value)} {problem}")


def shown(value: object, limit: int = 80) -> str:
    """A value for an error text: its repr (control characters visible), shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


_Choice = TypeVar("_Choice", bound=enum.StrEnum)


def parse_choice(raw: str, choices: type[_Choice], what: str) -> _Choice:
    """The member of ``choices`` whose value ``raw`` is, in any case.

    :raises InvalidValueError: no member's value; the text says it ``is not {what}``.
    """
    try:
        return choices(raw.strip().lower())
    except ValueError:
        raise InvalidValueError(raw, f"is not {what}") from None


def format_duration(value: timedelta) -> str:
    """A duration in the largest unit that divides it: ``90s``, ``10m``, ``4h``, ``30d``."""
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_duration(
    text: str, *, minimum: timedelta | None = None, maximum: timedelta = LONGEST_DURATION
) -> timedelta:
    """Parse ``90s``, ``30m``, ``24h``, ``1d``, ``PT24H``, ``[d.]hh:mm:ss`` or plain seconds.

    :keyword minimum: the shortest accepted; default: any positive duration.
    :keyword maximum: the longest accepted; default :data:`LONGEST_DURATION`.
    :raises InvalidValueError: not one of these forms, not positive, or out of range.
    """
    value = text.strip()
    seconds: float | None = None
    if match := _SIMPLE_DURATION.match(value):
        seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
    elif match := _ISO_DURATION.match(value) or _CLOCK_DURATION.match(value):
        seconds = _seconds_of(match)
    if seconds is None:
        raise InvalidValueError(text, "is not a duration")
    if seconds <= 0:
        raise InvalidValueError(text, "is not a positive duration")
    # Compared as numbers first: timedelta() itself overflows (past 999999999 days).
    if not math.isfinite(seconds) or seconds > maximum.total_seconds():
        raise InvalidValueError(text, f"is longer than {format_duration(maximum)}")
    duration = timedelta(seconds=seconds)
    if minimum is not None and duration < minimum:
        raise InvalidValueError(text, f"is shorter than {format_duration(minimum)}")
    return duration


def _seconds_of(match: re.Match[str]) -> float:
    parts = match.groupdict(default="0")
    return (
        int(parts["d"]) * 86400 + int(parts["h"]) * 3600 + int(parts["m"]) * 60 + float(parts["s"])
    )


def parse_guid(value: object) -> str:
    """Return ``value`` as a bare lower-case GUID (braces and upper case accepted).

    :raises InvalidValueError: not a GUID, or the all-zero GUID (a placeholder, never an id).
    """
    if not isinstance(value, str):
        raise InvalidValueError(value, "is not a GUID")
    try:
        guid = normalize_guid(value, "value")
    except ValueError:
        raise InvalidValueError(value, "is not a GUID") from None
    if guid == _NIL_GUID:
        raise InvalidValueError(value, "is the all-zero GUID, a placeholder")
    return guid


def format_byte_size(size: int) -> str:
    """A size in the largest binary unit that divides it: ``1GiB``, ``48MiB``, ``1000B``."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def parse_byte_size(value: str | int, *, maximum: int = MAX_BYTE_SIZE) -> int:
    """Parse a size in bytes: an integer or a text like ``"48MiB"``, ``"50MB"``, ``"512KiB"``.

    :keyword maximum: the largest accepted; default :data:`MAX_BYTE_SIZE`.
    :raises InvalidValueError: not a size, not positive, or larger than ``maximum``.
    """
    if isinstance(value, bool):
        raise InvalidValueError(value, "is not a size")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(value)
        if not match:
            raise InvalidValueError(value, "is not a size")
        size = int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "B").upper()]
    if size <= 0:
        raise InvalidValueError(value, "is not a positive size")
    if size > maximum:
        raise InvalidValueError(value, f"is larger than {format_byte_size(maximum)}")
    return size


def byte_size_form(maximum: int, example: str) -> str:
    """The expected form of a byte size up to ``maximum``, for an error text."""
    return f"expected a positive byte count up to {format_byte_size(maximum)}, e.g. {example}"


def parse_whole_number(text: str, *, minimum: int, maximum: int) -> int:
    """Parse a whole number written in ASCII digits, from ``minimum`` to ``maximum``.

    :raises InvalidValueError: anything else.
    """
    if not _WHOLE_NUMBER.match(text) or not minimum <= int(text) <= maximum:
        raise InvalidValueError(text, f"is not a whole number from {minimum} to {maximum}")
    return int(text)


def is_container_name(text: str) -> bool:
    """True for a blob container name by Azure's rules (see :func:`parse_container_name`)."""
    return _CONTAINER.match(text) is not None


def container_name_form(example: str) -> str:
    """The expected form of a blob container name, for an error text."""
    return f"expected 3-63 lower-case letters, digits and single hyphens, e.g. {example}"


def parse_container_name(text: str) -> str:
    """A blob container name by Azure's rules: 3-63 lower-case letters, digits, single hyphens.

    :raises InvalidValueError: any other name.
    """
    if not is_container_name(text):
        raise InvalidValueError(text, "is not a valid container name")
    return text


def parse_table_name(text: str) -> str:
    """A table name by Azure's rules: 3-63 letters or digits, a letter first, not ``tables``.

    :raises InvalidValueError: any other name.
    """
    if not _TABLE.match(text) or text.lower() == "tables":
        raise InvalidValueError(text, "is not a valid table name")
    return text


def parse_url(raw: str, *, allow_path: bool = False, default_scheme: str | None = None) -> str:
    """Validate an endpoint URL; return it with lower-case scheme and host, no trailing slash.

    https only, except for loopback hosts. A URL with a user name, password or query string
    may carry a secret: its value is not repeated.

    :keyword allow_path: keep a path (a storage endpoint of Azurite has one).
    :keyword default_scheme: the scheme of a bare host name.
    :raises InvalidValueError: naming what is wrong.
    """
    text = raw if "://" in raw or default_scheme is None else f"{default_scheme}://{raw}"
    parts = urlsplit(text)
    if parts.username or parts.password or parts.query:
        raise InvalidValueError(
            raw, "holds a user name, password or query string (value not shown)", hidden=True
        )
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidValueError(raw, "is not an http(s) URL")
    problem = _host_problem(host) or _port_problem(parts)
    if problem:
        raise InvalidValueError(raw, problem)
    if parts.scheme == "http" and not _is_loopback(host):
        raise InvalidValueError(raw, "uses http; https is required (http only for loopback hosts)")
    if parts.fragment or (parts.path.strip("/") and not allow_path):
        raise InvalidValueError(raw, "has a path or fragment")
    netloc = parts.netloc.lower()
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/') if allow_path else ''}"


def _host_problem(host: str) -> str | None:
    if host.endswith("."):
        return "has a host name ending in '.'; remove the trailing dot"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.split(".")
        if len(host) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
            return "has an invalid host name (letters, digits and hyphens between dots)"
    return None


def _port_problem(parts: SplitResult) -> str | None:
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return "has an invalid port (ports run from 1 to 65535)"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
