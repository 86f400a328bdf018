"""The answer every view returns: an HTTP status with a JSON-ready body.

Kept free of ``azure.functions``: the adapter in ``http_status/`` turns an :class:`ApiResponse`
into an HTTP response.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

__all__ = ["ApiResponse", "json_time", "problem"]


class ApiResponse(NamedTuple):
    """An HTTP status and a JSON-ready body."""

    status: int
    body: dict[str, Any]


def problem(status: int, message: str) -> ApiResponse:
    """A refusal: ``status`` with ``{"error": message}``."""
    return ApiResponse(status, {"error": message})


def json_time(value: datetime | None) -> str | None:
    """A time as every body shows it: ISO 8601 in UTC (None stays None)."""
    return value.astimezone(UTC).isoformat() if value else None
