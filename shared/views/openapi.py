"""The OpenAPI 3 description of the HTTP API (``GET /api/openapi.json``).

For API Management and any client generator; ``scripts/build_connector.py`` derives the
Power Platform custom connector (OpenAPI 2.0, ``connector/``) from it. Written out here
rather than generated, so it says what each route promises; tests check it with a
maintained validator and that every HTTP route of the app is in it.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

from shared.tracking import ExportState, TrackingState
from shared.views import exports
from shared.views.body import MAX_BODY_BYTES
from shared.views.params import DEFAULT_LIMIT, EARLIEST, LATEST, MAX_LIMIT
from shared.views.status import IMPORT_DIRECTION

__all__ = ["BASE_PATH", "document", "served"]

BASE_PATH = "/api"
"""Where the routes are: host.json's ``extensions.http.routePrefix``."""

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_TIME = {"type": "string", "format": "date-time", "nullable": True}
_INT = {"type": "integer"}
_STATES = [state.value for state in TrackingState]
_STRINGS = {"type": "array", "items": _STRING}
_DROPPED = "older history entries the record no longer keeps (it keeps the newest)"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return _json(_ref("Problem"), description)


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or _STRING}  # fmt: skip


def _time_query(name: str, description: str) -> dict[str, Any]:
    accepted = f"{EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}; no offset means UTC"
    schema = {"type": "string", "format": "date-time"}
    return _query(name, f"{description} (ISO 8601, {accepted})", schema)


_RECORD_ID = {
    "name": "message_id",
    "in": "path",
    "required": True,
    "description": "F&O's message id (a GUID, any case, braces allowed) or a record_key",
    "schema": _STRING,
}

_DIRECTION = {
    "name": "direction",
    "in": "query",
    "required": False,
    "description": f"{IMPORT_DIRECTION} (the default): tracked files dropped into the inbound "
    f"container; {exports.DIRECTION}: export records (by F&O's message id; with it only "
    "route, limit and continuation apply)",
    "schema": {"type": "string", "enum": [IMPORT_DIRECTION, exports.DIRECTION]},
}

_RECORD = {
    "type": "object",
    "description": "One blob version and everything that happened to it.",
    "properties": {
        "record_key": {**_STRING, "description": "the record's key: addresses it in this API"},
        "record_id": _STRING,
        "message_id": _NULLABLE_STRING,
        "blob": {**_STRING, "description": "path inside the inbound container"},
        "blob_etag": _STRING,
        "route": _NULLABLE_STRING,
        "activity_id": _NULLABLE_STRING,
        "entity": _NULLABLE_STRING,
        "company": _NULLABLE_STRING,
        "size": {"type": "integer", "nullable": True},
        "state": {"type": "string", "enum": _STATES},
        "terminal": {"type": "boolean"},
        "d365_status": _NULLABLE_STRING,
        "execution_id": _NULLABLE_STRING,
        "sent_execution_id": {
            **_NULLABLE_STRING,
            "description": "the execution id sent with ImportFromPackage when F&O answered "
            "another one (execution_id is F&O's)",
        },
        "errors": {"type": "array", "items": _ref("ExecutionError")},
        "errors_truncated": {"type": "boolean"},
        "error_count": _INT,
        "errors_blob": {**_NULLABLE_STRING, "description": "<container>/<path> of all errors"},
        "reject_reason": _NULLABLE_STRING,
        "archived_to": _NULLABLE_STRING,
        "archive_error": _NULLABLE_STRING,
        "received_at": _TIME,
        "enqueued_at": _TIME,
        "updated_at": _TIME,
        "completed_at": _TIME,
        "next_poll_at": _TIME,
        "poll_count": _INT,
        "enqueue_attempts": _INT,
        "last_error": _NULLABLE_STRING,
        "history": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"state": _STRING, "at": {"type": "string", "format": "date-time"}},
            },
        },
        "history_dropped": {**_INT, "description": _DROPPED},
        "api": {**_NULLABLE_STRING, "description": '"package": the DMF package API; null: enqueue'},
        "definition_group": {
            **_NULLABLE_STRING,
            "description": "the data project a package import goes to",
        },
        "api_note": {
            **_NULLABLE_STRING,
            "description": "why the package API took a file of an enqueue route",
        },
        "error_files": {
            **_STRINGS,
            "description": "<container>/<path> of the error files F&O produced (package API); "
            "in a listing, the first ones when they did not fit the record",
        },
        "error_file_count": _INT,
        "error_files_blob": {
            **_NULLABLE_STRING,
            "description": "<container>/<path> of the whole list when it did not fit the record",
        },
        "location": {**_STRING, "description": "<container>/<path> where the file is now"},
        "resubmit_of": {**_NULLABLE_STRING, "description": "record_key it was resubmitted from"},
        "resubmitted_as": {**_NULLABLE_STRING, "description": "record_key of its resubmit"},
        "resubmit_risk": {
            **_NULLABLE_STRING,
            "description": "why a resubmit may import it twice (then confirm is required)",
        },
    },
    "required": ["record_key", "blob", "state", "terminal", "history"],
}


def _page(item: str) -> dict[str, Any]:
    """A page of a listing: its items, and the continuation of the next page."""
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "continuation": {**_NULLABLE_STRING, "description": "pass it for the next page"},
        },
        "required": ["items", "continuation"],
    }


_EXPORT_RECORD = {
    "type": "object",
    "description": "One message of a recurring export job and what happened to it.",
    "properties": {
        "direction": {"type": "string", "enum": [exports.DIRECTION]},
        "message_id": {**_STRING, "description": "F&O's message id: addresses it in this API"},
        "route": {**_STRING, "description": "the export route's name"},
        "activity_id": _STRING,
        "container": {**_STRING, "description": "the container the blobs are written to"},
        "blobs": {
            **_STRINGS,
            "description": "the blobs written (several when unzipped); in a listing, the first "
            "ones when they did not fit the record",
        },
        "blob_count": _INT,
        "blobs_blob": {
            **_NULLABLE_STRING,
            "description": "<container>/<path> of the whole list when it did not fit the record",
        },
        "target": {**_STRING, "description": "the planned blob name (folder when unzipping)"},
        "size": {"type": "integer", "nullable": True},
        "state": {"type": "string", "enum": [state.value for state in ExportState]},
        "dequeue_count": _INT,
        "dequeued_at": _TIME,
        "downloaded_at": _TIME,
        "acked_at": _TIME,
        "gave_up_at": {
            **_TIME,
            "description": "when it was given up (EXPORT_MAX_ATTEMPTS, or a package the zip "
            "limits refuse): it stays ExportFailed, acknowledged, never written again",
        },
        "updated_at": _TIME,
        "last_error": _NULLABLE_STRING,
        "history": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "state": _STRING,
                    "at": {"type": "string", "format": "date-time"},
                    "reason": _NULLABLE_STRING,
                },
                "required": ["state", "at"],
            },
        },
        "history_dropped": {**_INT, "description": _DROPPED},
    },
    "required": ["direction", "message_id", "route", "state", "blobs", "history"],
}

_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "properties": {
            "error": {**_STRING, "description": "what is wrong and what to do"},
            "problems": {"type": "array", "items": _STRING},
        },
        "required": ["error"],
    },
    "ExecutionError": {
        "type": "object",
        "properties": {"record_id": _STRING, "field": _STRING, "message": _STRING},
    },
    "Record": _RECORD,
    "Page": _page("Record"),
    "ExportRecord": _EXPORT_RECORD,
    "ExportPage": _page("ExportRecord"),
    "Counts": {
        "type": "object",
        "properties": {
            "since": _TIME,
            "until": _TIME,
            "total": _INT,
            "failed": _INT,
            "stuck": _INT,
            "stuck_after_seconds": {"type": "number"},
            "by_state": {"type": "object", "additionalProperties": _INT},
            "by_route": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"total": _INT, "failed": _INT, "stuck": _INT},
                },
            },
        },
    },
    "Health": {
        "type": "object",
        "properties": {
            "healthy": {"type": "boolean"},
            "checks": {"type": "object", "additionalProperties": {"type": "object"}},
        },
        "required": ["healthy", "checks"],
    },
    "ResubmitRequest": {
        "type": "object",
        "properties": {
            "request_id": {
                **_STRING,
                "description": "instead of the Idempotency-Key header",
                "pattern": "^[A-Za-z0-9._:-]{1,100}$",
            },
            "confirm": {
                "type": "boolean",
                "description": "required when the record has a resubmit_risk",
            },
        },
    },
    "ResubmitResult": {
        "type": "object",
        "properties": {
            "resubmitted_as": _STRING,
            "request_id": _STRING,
            "original": _ref("Record"),
            "resubmitted": {**_ref("Record"), "nullable": True},
        },
    },
}

_UNAVAILABLE = _problem("settings invalid, or the status table cannot be used")


def _paths() -> dict[str, Any]:
    return {
        "/messages": {
            "get": {
                "operationId": "listMessages",
                "summary": "Tracked files newest first, the latest version of one blob, or "
                "export records (direction=export)",
                "parameters": [
                    _DIRECTION,
                    _query("blob", "path inside the inbound container: its latest version"),
                    _query("state", "one state", {"type": "string", "enum": _STATES}),
                    _query("route", "a configured route's name"),
                    _query("company", "legal entity (DataAreaId)"),
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
                        {"anyOf": [_ref("Page"), _ref("Record"), _ref("ExportPage")]},
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
                        {"anyOf": [_ref("Record"), _ref("ExportRecord")]},
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
                "parameters": [
                    _RECORD_ID,
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "the request id (or request_id in the body)",
                        "schema": _STRING,
                    },
                ],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("ResubmitRequest")}},
                },
                "responses": {
                    "200": _json(_ref("ResubmitResult"), "resubmitted (or the same request again)"),
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
        "/counts": {
            "get": {
                "operationId": "countMessages",
                "summary": "Files by state and route over a period (default the last 24 h)",
                "parameters": [
                    _time_query("since", "from"),
                    _time_query("until", "to"),
                ],
                "responses": {
                    "200": _json(_ref("Counts"), "the counts"),
                    "400": _problem("a bad parameter"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Settings, storage, an F&O token, the poll schedule; no secrets",
                "responses": {
                    "200": _json(_ref("Health"), "healthy"),
                    "503": _json(_ref("Health"), "a check failed"),
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
                        "content": {"text/html": {"schema": _STRING}},
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


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.0 document of the API."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "D365 F&O recurring integrations: status and resubmit API",
            "version": "1.0.0",
            "description": "Files dropped into the inbound container, their fate in F&O "
            "(row errors included), and resubmitting them.",
        },
        "servers": [{"url": BASE_PATH}],
        "security": [{"functionKey": []}, {"functionKeyQuery": []}],
        "paths": _paths(),
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
    }


def served(request_url: str) -> dict[str, Any]:
    """The document as ``GET /api/openapi.json`` at ``request_url`` serves it: with the
    absolute server URL of that request.

    API Management takes an imported API's backend from ``servers`` and resolves a relative
    URL only against the URL it imported from, so a saved file would leave it empty. The
    query string (``?code=<key>``) and any user info are left out: no secret in a response.
    """
    parts = urlsplit(request_url)
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme not in ("http", "https") or not host:
        return document()
    return {**document(), "servers": [{"url": f"{parts.scheme}://{host}{BASE_PATH}"}]}
