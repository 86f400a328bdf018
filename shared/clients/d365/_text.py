"""Text helpers every part of the client shares: short one-line texts, JSON text, redaction."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "SHORT_TEXT_LIMIT",
    "get_ci",
    "json_text",
    "json_type",
    "redact_sas",
    "require_text",
    "shorten",
    "string_value",
    "url_without_query",
]

SHORT_TEXT_LIMIT = 200
_WHITESPACE = re.compile(r"\s+")
# A SAS token's signature, wherever a URL holding one is quoted (JSON-escaped or not).
_SAS_SIGNATURE = re.compile(r"(sig=)[^&\s\"'\\]+", re.IGNORECASE)


def shorten(text: str, limit: int = SHORT_TEXT_LIMIT) -> str:
    """`text` on one line (whitespace runs collapsed), cut to `limit` characters."""
    flat = _WHITESPACE.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def json_text(value: Any) -> str:
    """`value` as JSON text, keys sorted and non-ASCII kept: how a JSON answer that is not a
    string is stored and shown (never as a Python repr)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def string_value(value: Any, what: str) -> str | None:
    """An OData action's `value` that F&O documents as a string: the string, or None for null.

    :raises ValueError: naming `what`, the JSON type and the JSON text (shortened) for an
        object, array, number or boolean.
    """
    if value is None or isinstance(value, str):
        return value
    raise ValueError(
        f"expected {what} as a JSON string, got {json_type(value)}: {shorten(json_text(value))}"
    )


def json_type(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    return "a number" if isinstance(value, int | float) else type(value).__name__


def get_ci(mapping: Mapping[str, Any], key: str) -> Any:
    """`mapping[key]` matched case-insensitively (F&O's JSON casing is not guaranteed), or None."""
    if key in mapping:
        return mapping[key]
    lowered = key.lower()
    for name, value in mapping.items():
        if name.lower() == lowered:
            return value
    return None


def url_without_query(url: str) -> str:
    """`url` without query string or fragment, for messages and logs."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def redact_sas(text: str) -> str:
    """`text` with every SAS signature (``sig=...``) replaced, for logs and error texts."""
    return _SAS_SIGNATURE.sub(r"\1REDACTED", text)


def require_text(value: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return value.strip()


class _SasRedactingFilter(logging.Filter):
    """Removes SAS signatures from urllib3's DEBUG request lines (it logs whole URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                redact_sas(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_SasRedactingFilter())
