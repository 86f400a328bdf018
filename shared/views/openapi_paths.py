"""The paths of the OpenAPI document: each route with its parameters, its answers."""

from __future__ import annotations

from typing import Any

from shared.views import audit, exports, files, hourly
from shared.views.body import MAX_BODY_BYTES
from shared.views.openapi_schemas import STATES, STRING, ref
from shared.views.params import DEFAULT_LIMIT, EARLIEST, LATEST, MAX_LIMIT

__all__ = ["paths"]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return _json(ref("Problem"), description)


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or STRING}  # fmt: skip


def _time_query(name: str, description: str) -> dict[str, Any]:
    accepted = f"{EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}; no offset means UTC"
    schema = {"type": "string", "format": "date-time"}
    return _query(name, f"{description} (ISO 8601, {accepted})", schema)


_RECORD_ID = {
    "name": "message_id",
    "in": "path",
    "required": True,
    "description": "F&O's message id (a GUID, any case, braces allowed) or a record_key; "
    "with direction=export, a package export's execution id too",
    "schema": STRING,
}

_DIRECTION = {
    "name": "direction",
    "in": "query",
    "required": False,
    "description": f"{files.DIRECTION} (the default): tracked files dropped into the inbound "
    f"container; {exports.DIRECTION}: export records, recurring and package (by F&O's message "
    "id or a package export's execution id; with it only route, limit and continuation apply)",
    "schema": {"type": "string", "enum": [files.DIRECTION, exports.DIRECTION]},
}


_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "the request id (or request_id in the body)",
    "schema": STRING,
}

_UNAVAILABLE = _problem("settings invalid, or the status table cannot be used")


def paths() -> dict[str, Any]:
    """The ``paths`` object: every route of the API."""
    return {
        "/messages": {
            "get": {
                "operationId": "listMessages",
                "summary": "Tracked files newest first, the latest version of one blob, or "
                "export records (direction=export)",
                "parameters": [
                    _DIRECTION,
                    _query("blob", "path inside the inbound container: its latest version"),
                    _query("state", "one state", {"type": "string", "enum": STATES}),
                    _query("route", "a configured route's name"),
                    _query("company", "legal entity (DataAreaId: 1-4 letters or digits)"),
                    _query("prefix", "blob path starts with"),
                    _time_query("since", "modified at or after"),
                    _time_query("until", "modified at or before"),
                    _query(
                        "limit",
                        f"page size (default {DEFAULT_LIMIT})",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                    ),
                    _query("continuation", "the previous page's continuation"),
                ],
                "responses": {
                    "200": _json(
                        {"anyOf": [ref("Page"), ref("Record"), ref("ExportPage")]},
                        "a page, a record, or (direction=export) a page of export records",
                    ),
                    "400": _problem("a bad parameter"),
                    "404": _problem("no tracked file for that blob"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/messages/{message_id}": {
            "get": {
                "operationId": "getMessage",
                "summary": "One tracked file with all its row errors, or one export record",
                "parameters": [_RECORD_ID, _DIRECTION],
                "responses": {
                    "200": _json(
                        {"anyOf": [ref("Record"), ref("ExportRecord")]},
                        "the record (direction=export: the export record of that message id)",
                    ),
                    "400": _problem("not a GUID nor a record key"),
                    "404": _problem("unknown"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/messages/{message_id}/resubmit": {
            "post": {
                "operationId": "resubmitMessage",
                "summary": "Copy a final file back into the inbound path as a new version",
                "description": "Idempotent per request id: a retry with the same id answers "
                "alike and sends nothing more. The new record links to the old one "
                "(resubmit_of) and the old one to it (resubmitted_as).",
                "parameters": [_RECORD_ID, _IDEMPOTENCY_KEY],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": ref("ResubmitRequest")}},
                },
                "responses": {
                    "200": _json(ref("ResubmitResult"), "resubmitted (or the same request again)"),
                    "400": _problem(
                        "no or a bad request id, a body that is not a JSON object, or a field "
                        "of the wrong type"
                    ),
                    "404": _problem("unknown record"),
                    "409": _problem(
                        "not final, being archived, a risk not confirmed, resubmitted by "
                        "another request, or the file is not where its record says"
                    ),
                    "413": _problem(f"a body larger than {MAX_BODY_BYTES:,} bytes"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/audit": {
            "get": {
                "operationId": "listAudit",
                "summary": "Operator actions newest first: who resubmitted what, and when",
                "description": "Every operator action (a resubmit, ...) with who asked, when, "
                "its request id, the records it names and its outcome; rows are never rewritten.",
                "parameters": [
                    _time_query("since", "asked at or after"),
                    _time_query("until", "asked at or before"),
                    _query(
                        "person",
                        f"an Entra object id or a display name, any case (at most "
                        f"{audit.TEXT_LIMIT} characters); function key: key mode's actions",
                    ),
                    _query("action", "one action, e.g. resubmit"),
                    _query(
                        "limit",
                        f"page size (default {DEFAULT_LIMIT})",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                    ),
                    _query("continuation", "the previous page's continuation"),
                ],
                "responses": {
                    "200": _json(ref("AuditPage"), "a page of operator actions"),
                    "400": _problem("a bad parameter"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/messages/{message_id}/release": {
            "post": {
                "operationId": "releaseLine",
                "summary": "Release an ordered line past the failed file that blocks it",
                "description": "The line's next file is sent as if this one had passed; the "
                "release is recorded on this file (line.released_at, released_by, "
                "release_request). Idempotent per request id.",
                "parameters": [_RECORD_ID, _IDEMPOTENCY_KEY],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": ref("ReleaseRequest")}},
                },
                "responses": {
                    "200": _json(ref("Record"), "released (or the same request again)"),
                    "400": _problem("no or a bad request id, or a body that is not JSON"),
                    "404": _problem("unknown record"),
                    "409": _problem(
                        "not a file of an ordered route, not the failed head of its line, "
                        "resubmitted, or released by another request"
                    ),
                    "413": _problem(f"a body larger than {MAX_BODY_BYTES:,} bytes"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/counts": {
            "get": {
                "operationId": "countMessages",
                "summary": "Files by state and route over a period (default the last 24 h)",
                "parameters": [
                    _time_query("since", "from"),
                    _time_query("until", "to"),
                    _query(
                        "interval",
                        "hour: also the files of each hour (UTC) by outcome, in buckets; "
                        f"for a period of at most {hourly.MAX_HOURS} hours",
                        {"type": "string", "enum": [hourly.HOUR]},
                    ),
                ],
                "responses": {
                    "200": _json(ref("Counts"), "the counts"),
                    "400": _problem(
                        f"a bad parameter, or interval=hour over more than {hourly.MAX_HOURS} hours"
                    ),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Settings, storage, an F&O token, the poll schedule; no secrets",
                "responses": {
                    "200": _json(ref("Health"), "healthy"),
                    "503": _json(ref("Health"), "a check failed"),
                },
            }
        },
        "/console": {
            "get": {
                "operationId": "console",
                "summary": "The operator console (HTML); open it with ?code=<function key>",
                "responses": {
                    "200": {
                        "description": "the page",
                        "content": {"text/html": {"schema": STRING}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "the OpenAPI document")},
            }
        },
    }
