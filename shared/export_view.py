"""What ``GET /api/messages?direction=export`` answers: export records as JSON.

Called by :func:`shared.status_api.messages`; returns ``(status, body)`` so that the status
view keeps its own response type.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shared.context import AppContext
from shared.tracking import ExportRecord, ExportStore

__all__ = ["DIRECTION", "export_json", "list_exports"]

DIRECTION = "export"
_PARAMS = ("direction", "route", "limit", "continuation", "code")
_MAX_LIMIT = 1000
_DEFAULT_LIMIT = 50


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def export_json(record: ExportRecord) -> dict[str, Any]:
    """The public JSON form of an export record."""
    return {
        "direction": DIRECTION,
        "message_id": record.message_id,
        "route": record.route,
        "activity_id": record.activity_id,
        "container": record.container,
        "blobs": list(record.blobs),
        "target": record.target,
        "size": record.size,
        "state": record.state.value,
        "dequeue_count": record.dequeue_count,
        "dequeued_at": _time(record.dequeued_at),
        "downloaded_at": _time(record.downloaded_at),
        "acked_at": _time(record.acked_at),
        "gave_up_at": _time(record.gave_up_at),
        "updated_at": _time(record.updated_at),
        "last_error": record.error,
        "history": [
            {"state": state, "at": at, "reason": reason} for state, at, reason in record.history
        ],
    }


def list_exports(
    context: AppContext, message_id: str | None, params: Mapping[str, str]
) -> tuple[int, dict[str, Any]]:
    """``GET /api/messages?direction=export[&route=&limit=&continuation=]`` or one record by
    ``/api/messages/{message_id}?direction=export``."""
    store: ExportStore = context.exporter.store
    if message_id:
        record = store.get(message_id.strip().strip("{}"))
        if record is None:
            return 404, {"error": f"no export record has message id {message_id[:80]!r}"}
        return 200, export_json(record)
    try:
        page = store.list_records(**_query(context, params))
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return 200, {
        "items": [export_json(r) for r in page.records],
        "continuation": page.continuation,
    }


def _query(context: AppContext, params: Mapping[str, str]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(_PARAMS))
    if unknown:
        accepted = ", ".join(p for p in _PARAMS if p != "code")
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; accepted: {accepted}")
    route = params.get("route") or None
    names = [r.name for r in context.settings.exports]
    if route is not None and route not in names:
        raise ValueError(f"unknown export route {route!r}; configured: {', '.join(names)}")
    limit = params.get("limit") or str(_DEFAULT_LIMIT)
    if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= _MAX_LIMIT:
        raise ValueError(f"limit {limit[:20]!r} is not accepted; expected 1 to {_MAX_LIMIT}")
    return {"route": route, "limit": int(limit), "continuation": params.get("continuation")}
