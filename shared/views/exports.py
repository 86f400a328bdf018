"""What ``GET /api/messages?direction=export`` answers: export records as JSON.

Called by :func:`shared.views.status.messages`; returns ``(status, body)`` so that the status
view keeps its own response type.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shared.clients.d365 import normalize_message_id
from shared.context import AppContext
from shared.tracking import ExportRecord, ExportStore
from shared.views.params import check_names, parse_limit

__all__ = ["DIRECTION", "export_json", "list_exports"]

DIRECTION = "export"
_PARAMS = ("direction", "route", "limit", "continuation")


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def export_json(record: ExportRecord, blobs: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The public JSON form of an export record; ``blobs``: all of them, when the row keeps
    only the first (a listing shows those, ``blob_count`` and ``blobs_blob``)."""
    return {
        "direction": DIRECTION,
        "message_id": record.message_id,
        "route": record.route,
        "activity_id": record.activity_id,
        "container": record.container,
        "blobs": list(record.blobs if blobs is None else blobs),
        "blob_count": record.blob_count,
        "blobs_blob": record.blobs_blob,
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
        "history_dropped": record.history_dropped,
    }


def list_exports(
    context: AppContext, message_id: str | None, params: Mapping[str, str]
) -> tuple[int, dict[str, Any]]:
    """``GET /api/messages?direction=export[&route=&limit=&continuation=]`` or one record by
    ``/api/messages/{message_id}?direction=export``."""
    store: ExportStore = context.exporter.store
    if message_id:
        try:
            key = normalize_message_id(message_id)
        except ValueError:
            # Checked before the read: a key with '/', '#' or '?' cannot be a row key at all.
            return 400, {
                "error": f"message_id {message_id[:80]!r} is not a GUID; expected the message "
                "id F&O gave the export, e.g. 84a383c8-336d-45e4-9933-0c3e8bfb734a"
            }
        record = store.get(key)
        if record is None:
            return 404, {"error": f"no export record has message id {key}"}
        return 200, export_json(record, store.list_blobs(record))
    try:
        page = store.list_records(**_query(context, params))
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return 200, {
        "items": [export_json(r) for r in page.records],
        "continuation": page.continuation,
    }


def _query(context: AppContext, params: Mapping[str, str]) -> dict[str, Any]:
    check_names(params, _PARAMS)
    route = params.get("route") or None
    names = [r.name for r in context.settings.exports]
    if route is not None and route not in names:
        raise ValueError(f"unknown export route {route!r}; configured: {', '.join(names)}")
    limit = parse_limit(params.get("limit"))
    return {"route": route, "limit": limit, "continuation": params.get("continuation")}
