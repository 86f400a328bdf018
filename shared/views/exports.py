"""What ``GET /api/messages?direction=export`` answers: export records as JSON.

Reached through :func:`shared.views.files.messages`, which hands it that direction. Both kinds
are listed: a recurring export job's messages (``kind`` ``recurring``, by F&O's message id)
and scheduled package exports (``kind`` ``package``, by their execution id).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.context import AppContext
from shared.tracking import ExportRecord, ExportStore, PackageExportRecord, is_package_key
from shared.views import pages
from shared.views.params import check_names, limit_param, parse_message_id
from shared.views.response import ApiResponse, json_time, problem

__all__ = ["DIRECTION", "export_json", "list_exports"]

DIRECTION = "export"
_PARAMS = ("direction", "route", "limit", pages.PARAM)
# Fields only one kind of export record has (null in the other's JSON).
_RECURRING_ONLY = ("activity_id", "dequeue_count", "dequeued_at", "acked_at", "gave_up_at")
_PACKAGE_ONLY = (
    "execution_id",
    "fno_execution_id",
    "definition_group",
    "legal_entity",
    "d365_status",
    "fno_errors",
    "scheduled_for",
    "requested_at",
)
_EXPECTED_ID = (
    "the message id F&O gave the export, e.g. 84a383c8-336d-45e4-9933-0c3e8bfb734a, or a "
    "package export's execution id, e.g. customers-daily-20260101T020000-a1b2c3"
)


def export_json(
    record: ExportRecord | PackageExportRecord, blobs: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """The public JSON form of an export record of either kind; ``blobs``: all of them, when
    the row keeps only the first (a listing shows those, ``blob_count`` and ``blobs_blob``)."""
    if isinstance(record, PackageExportRecord):
        return package_json(record, blobs)
    return {
        **dict.fromkeys(_PACKAGE_ONLY),
        "direction": DIRECTION,
        "kind": record.kind,
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
        "dequeued_at": json_time(record.dequeued_at),
        "downloaded_at": json_time(record.downloaded_at),
        "acked_at": json_time(record.acked_at),
        "gave_up_at": json_time(record.gave_up_at),
        "updated_at": json_time(record.updated_at),
        "last_error": record.error,
        "history": [
            {"state": state, "at": at, "reason": reason} for state, at, reason in record.history
        ],
        "history_dropped": record.history_dropped,
    }


def package_json(
    record: PackageExportRecord, blobs: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """The public JSON form of a package export record (``message_id`` is its execution id);
    the fields of a recurring export's are there too, null, so both kinds have one shape."""
    return {
        **dict.fromkeys(_RECURRING_ONLY),
        "direction": DIRECTION,
        "kind": record.kind,
        "message_id": record.execution_id,
        "execution_id": record.execution_id,
        "fno_execution_id": record.fno_execution_id,
        "route": record.route,
        "definition_group": record.definition_group,
        "legal_entity": record.legal_entity,
        "container": record.container,
        "blobs": list(record.blobs if blobs is None else blobs),
        "blob_count": record.blob_count,
        "blobs_blob": record.blobs_blob,
        "target": record.target,
        "size": record.size,
        "state": record.state.value,
        "d365_status": record.d365_status,
        "fno_errors": record.fno_errors,
        "scheduled_for": json_time(record.scheduled_for),
        "requested_at": json_time(record.requested_at),
        "downloaded_at": json_time(record.downloaded_at),
        "updated_at": json_time(record.updated_at),
        "last_error": record.error,
        "history": [
            {"state": state, "at": at, "reason": reason} for state, at, reason in record.history
        ],
        "history_dropped": record.history_dropped,
    }


def list_exports(
    context: AppContext, message_id: str | None, params: Mapping[str, str]
) -> ApiResponse:
    """``GET /api/messages?direction=export[&route=&limit=&continuation=]`` or one record by
    ``/api/messages/{message_id}?direction=export``."""
    store: ExportStore = context.exporter.store
    if message_id and is_package_key(message_id):
        return _one_package(context, message_id)
    if message_id:
        try:
            key = parse_message_id(message_id, expected=_EXPECTED_ID)
        except ValueError as exc:
            return problem(400, str(exc))
        record = store.get(key)
        if record is None:
            return problem(404, f"no export record has message id {key}")
        return ApiResponse(200, export_json(record, store.list_blobs(record)))
    try:
        page = store.list_records(**_query(context, params))
    except ValueError as exc:
        return problem(400, str(exc))
    return ApiResponse(200, pages.page_json(map(export_json, page.records), page.continuation))


def _one_package(context: AppContext, execution_id: str) -> ApiResponse:
    """One package export record by its execution id."""
    packages = context.exporter.packages
    record = packages.store.get(execution_id) if packages is not None else None
    if packages is None or record is None:
        return problem(404, f"no export record has execution id {execution_id}")
    return ApiResponse(200, package_json(record, packages.store.list_blobs(record)))


def _query(context: AppContext, params: Mapping[str, str]) -> dict[str, Any]:
    check_names(params, _PARAMS)
    route = params.get("route") or None
    names = [r.name for r in context.settings.exports]
    names += [r.name for r in context.settings.package_exports]
    if route is not None and route not in names:
        raise ValueError(f"unknown export route {route!r}; configured: {', '.join(names)}")
    return {
        "route": route,
        "limit": limit_param(params),
        "continuation": pages.continuation(params),
    }
