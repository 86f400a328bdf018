"""What ``GET /api/messages`` answers: tracked files, one by its id or a filtered listing.

``?direction=export`` is handed to :mod:`shared.views.exports`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.context import AppContext
from shared.tracking import TrackedFile, TrackingState, is_record_key
from shared.views import exports, pages
from shared.views.guard import with_context
from shared.views.params import (
    check_blob_path,
    check_names,
    company_param,
    limit_param,
    parse_message_id,
    time_param,
)
from shared.views.records import RecordView, record_json
from shared.views.response import ApiResponse, problem

__all__ = ["DIRECTION", "find_record", "get_message", "list_messages", "messages"]

DIRECTION = "import"
"""``?direction=`` of the tracked (inbound) files, the default; ``export`` lists exports."""
_LIST_PARAMS = (
    "blob",
    "state",
    "route",
    "company",
    "prefix",
    "since",
    "until",
    "limit",
    pages.PARAM,
)
_EXPECTED_ID = (
    "the message id F&O returned on enqueue, e.g. 84a383c8-336d-45e4-9933-0c3e8bfb734a "
    "(or a record_key from a listing)"
)


def messages(
    context_factory: Callable[[], AppContext], message_id: str | None, params: Mapping[str, str]
) -> ApiResponse:
    """``GET /api/messages/{id}`` or ``GET /api/messages?...``."""

    def answer(context: AppContext) -> ApiResponse:
        direction = params.get("direction", DIRECTION)
        if direction == exports.DIRECTION:
            return exports.list_exports(context, message_id, params)
        if direction != DIRECTION:
            return problem(
                400,
                f"direction {direction[:20]!r} is not accepted; expected {DIRECTION} "
                f"(the default: tracked files) or {exports.DIRECTION} (export records)",
            )
        if message_id:
            return get_message(context, message_id)
        return list_messages(context, {k: v for k, v in params.items() if k != "direction"})

    return with_context(context_factory, answer)


def find_record(context: AppContext, key: str) -> TrackedFile | ApiResponse:
    """The record of an F&O message id or of a record key (``record_key`` of a listing); the
    400 or 404 to answer when there is none."""
    if is_record_key(key):
        record = context.store.get(key)
        return record or problem(404, f"no tracked file has record key {key}")
    try:
        message_id = parse_message_id(key, expected=_EXPECTED_ID)
    except ValueError as exc:
        return problem(400, str(exc))
    record = context.store.get_by_message_id(message_id)
    return record or problem(404, f"no tracked file has message id {message_id}")


def get_message(context: AppContext, key: str) -> ApiResponse:
    """``GET /api/messages/{message_id or record_key}``."""
    found = find_record(context, key)
    if isinstance(found, ApiResponse):
        return found
    return ApiResponse(200, record_json(found, RecordView.of(context, full_errors=True)))


def list_messages(context: AppContext, params: Mapping[str, str]) -> ApiResponse:
    """``GET /api/messages?blob=`` (latest version) or ``?state=&route=&since=&limit=``."""
    try:
        check_names(params, _LIST_PARAMS)
    except ValueError as exc:
        return problem(400, str(exc))
    if "blob" in params:
        return _by_blob(context, params)
    try:
        page = context.store.list_records(**_list_query(context, params))
    except ValueError as exc:
        return problem(400, str(exc))
    view = RecordView.of(context, full_errors=False)
    return ApiResponse(
        200, pages.page_json((record_json(r, view) for r in page.records), page.continuation)
    )


def _by_blob(context: AppContext, params: Mapping[str, str]) -> ApiResponse:
    others = sorted(set(params) - {"blob", "code"})
    if others:
        return problem(400, f"blob cannot be combined with {', '.join(others)}")
    blob = params["blob"].strip().lstrip("/")
    container_prefix = context.settings.inbound_container + "/"
    if blob.startswith(container_prefix):
        blob = blob[len(container_prefix) :]
    if not blob:
        return problem(400, "blob is empty; expected a path inside the inbound container")
    try:
        check_blob_path("blob", blob)
    except ValueError as exc:
        return problem(400, str(exc))
    record = context.store.latest_for_blob(blob)
    if record is None:
        return problem(404, f"no tracked file for blob {blob!r}")
    return ApiResponse(200, record_json(record, RecordView.of(context, full_errors=True)))


def _list_query(context: AppContext, params: Mapping[str, str]) -> dict[str, Any]:
    """The store's filters from ``params``, checked in the order they are listed in."""
    state, route = params.get("state"), params.get("route")
    return {
        "state": TrackingState.parse(state) if state else None,
        "route": _route_name(context, route) if route else None,
        "company": company_param(params),
        "blob_prefix": check_blob_path("prefix", params.get("prefix", "").lstrip("/")) or None,
        "since": time_param(params, "since"),
        "until": time_param(params, "until"),
        "limit": limit_param(params),
        "continuation": pages.continuation(params),
    }


def _route_name(context: AppContext, text: str) -> str:
    names = [route.name for route in context.settings.routes]
    if text not in names:
        raise ValueError(f"unknown route {text!r}; configured routes: {', '.join(names)}")
    return text
