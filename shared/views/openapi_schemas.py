"""The schemas of the OpenAPI document: the JSON shapes the HTTP API answers with.

:mod:`shared.views.openapi_paths` refers to them by :func:`ref`.
"""

from __future__ import annotations

from typing import Any

from shared.config import ORDER_FINAL, ORDER_UPLOAD
from shared.tracking import (
    PACKAGE_KIND,
    ActorKind,
    AuditOutcome,
    ExportState,
    PackageExportState,
    TrackingState,
)
from shared.views import exports
from shared.views.hourly import Outcome
from shared.views.signin import Role

__all__ = ["SCHEMAS", "STATES", "STRING", "ref"]

STRING = {"type": "string"}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_TIME = {"type": "string", "format": "date-time", "nullable": True}
_INT = {"type": "integer"}
STATES = [state.value for state in TrackingState]
_STRINGS = {"type": "array", "items": STRING}
_CHECKS = {"type": "object", "additionalProperties": {"type": "object"}}
_DROPPED = "older history entries the record no longer keeps (it keeps the newest)"

# Inline, not a component: OpenAPI 3.0 ignores "nullable" beside a $ref.
_ACTOR = {
    "type": "object",
    "description": "Who asked for an operator action.",
    "properties": {
        "kind": {"type": "string", "enum": [kind.value for kind in ActorKind]},
        "name": {**STRING, "description": "display name, or function key"},
        "object_id": {**STRING, "description": "Entra object id; empty for a key"},
        "provider": {**STRING, "description": "identity provider; empty for a key"},
    },
    "required": ["kind", "name"],
}


def ref(name: str) -> dict[str, str]:
    """A reference to the schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


_LINE = {
    "type": "object",
    "description": 'A file of an ordered route ("order"): one company\'s files go one at a time.',
    "properties": {
        "name": {**STRING, "description": "<route>/<company>"},
        "order": {"type": "string", "enum": [ORDER_UPLOAD, ORDER_FINAL]},
        "stops_on_failure": {"type": "boolean"},
        "created_at": {**_TIME, "description": "the blob's creation time: its place in line"},
        "behind": {**_NULLABLE_STRING, "description": "record_key of the file it waits behind"},
        "turn_at": {**_TIME, "description": "when it got its turn (left Waiting)"},
        "late_after": {
            **_NULLABLE_STRING,
            "description": "record_key of a newer file sent before this one arrived",
        },
        "blocks_line": {"type": "boolean", "description": "it failed and holds its line"},
        "released_at": _TIME,
        "released_by": {**_ACTOR, "nullable": True, "description": "who released it"},
        "release_request": _NULLABLE_STRING,
    },
}


_RECORD = {
    "type": "object",
    "description": "One blob version and everything that happened to it.",
    "properties": {
        "record_key": {**STRING, "description": "the record's key: addresses it in this API"},
        "record_id": STRING,
        "message_id": _NULLABLE_STRING,
        "blob": {**STRING, "description": "path inside the inbound container"},
        "blob_etag": STRING,
        "route": _NULLABLE_STRING,
        "activity_id": _NULLABLE_STRING,
        "entity": _NULLABLE_STRING,
        "company": _NULLABLE_STRING,
        "size": {"type": "integer", "nullable": True},
        "state": {"type": "string", "enum": STATES},
        "terminal": {"type": "boolean"},
        "d365_status": _NULLABLE_STRING,
        "execution_id": _NULLABLE_STRING,
        "sent_execution_id": {
            **_NULLABLE_STRING,
            "description": "the execution id sent with ImportFromPackage when F&O answered "
            "another one (execution_id is F&O's)",
        },
        "errors": {"type": "array", "items": ref("ExecutionError")},
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
                "properties": {"state": STRING, "at": {"type": "string", "format": "date-time"}},
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
        "location": {**STRING, "description": "<container>/<path> where the file is now"},
        "resubmit_of": {**_NULLABLE_STRING, "description": "record_key it was resubmitted from"},
        "resubmit_request": {
            **_NULLABLE_STRING,
            "description": "request id of the resubmit that made this version",
        },
        "resubmit_by": {**_ACTOR, "nullable": True},
        "resubmit_at": {**_TIME, "description": "when the resubmit that made it was asked for"},
        "resubmitted_as": {**_NULLABLE_STRING, "description": "record_key of its resubmit"},
        "resubmitted_request": {
            **_NULLABLE_STRING,
            "description": "request id of the resubmit that made resubmitted_as",
        },
        "resubmitted_by": {**_ACTOR, "nullable": True},
        "resubmitted_at": {**_TIME, "description": "when its resubmit was asked for"},
        "resubmit_risk": {
            **_NULLABLE_STRING,
            "description": "why a resubmit may import it twice (then confirm is required)",
        },
        "line": {
            **_LINE,
            "nullable": True,
            "description": 'its place in an ordered line (route "order"); null: its route '
            "sends in parallel",
        },
    },
    "required": ["record_key", "blob", "state", "terminal", "history"],
}


def _page(item: str) -> dict[str, Any]:
    """A page of a listing: its items, and the continuation of the next page."""
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": ref(item)},
            "continuation": {**_NULLABLE_STRING, "description": "pass it for the next page"},
        },
        "required": ["items", "continuation"],
    }


_EXPORT_RECORD = {
    "type": "object",
    "description": "One export and what happened to it: a message of a recurring export job "
    "(kind recurring), or one scheduled run of a package export route (kind package: "
    "ExportToPackage of a data project; its message_id is its execution id).",
    "properties": {
        "direction": {"type": "string", "enum": [exports.DIRECTION]},
        "kind": {"type": "string", "enum": ["recurring", PACKAGE_KIND]},
        "message_id": {
            **STRING,
            "description": "F&O's message id (recurring), or the execution id (package): "
            "addresses it in this API",
        },
        "route": {**STRING, "description": "the export route's or package export route's name"},
        "execution_id": {
            **_NULLABLE_STRING,
            "description": "package: our execution id, sent to F&O",
        },
        "fno_execution_id": {
            **_NULLABLE_STRING,
            "description": "package: the execution id F&O answered, when not ours",
        },
        "definition_group": {
            **_NULLABLE_STRING,
            "description": "package: the export data project",
        },
        "legal_entity": {**_NULLABLE_STRING, "description": "package: the company exported from"},
        "d365_status": {
            **_NULLABLE_STRING,
            "description": "package: F&O's last GetExecutionSummaryStatus, as it came",
        },
        "fno_errors": {
            **_NULLABLE_STRING,
            "description": "package: the execution's errors (failed or partial runs)",
        },
        "scheduled_for": {**_TIME, "description": "package: the slot of the schedule it ran for"},
        "requested_at": {**_TIME, "description": "package: when ExportToPackage was sent"},
        "activity_id": {**_NULLABLE_STRING, "description": "recurring: the export job's id"},
        "container": {**STRING, "description": "the container the blobs are written to"},
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
        "target": {**STRING, "description": "the planned blob name (folder when unzipping)"},
        "size": {"type": "integer", "nullable": True},
        "state": {
            "type": "string",
            "enum": list(dict.fromkeys(s.value for s in [*ExportState, *PackageExportState])),
        },
        "dequeue_count": {"type": "integer", "nullable": True, "description": "recurring"},
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
                    "state": STRING,
                    "at": {"type": "string", "format": "date-time"},
                    "reason": _NULLABLE_STRING,
                },
                "required": ["state", "at"],
            },
        },
        "history_dropped": {**_INT, "description": _DROPPED},
    },
    "required": ["direction", "kind", "message_id", "route", "state", "blobs", "history"],
}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "properties": {
            "error": {**STRING, "description": "what is wrong and what to do"},
            "problems": {"type": "array", "items": STRING},
            "required_role": {
                "type": "string",
                "enum": [role.value for role in Role],
                "description": "HTTP_AUTH=entra, a 403: the app role the route needs",
            },
            "healthy": {
                "type": "boolean",
                "description": "HTTP_AUTH=entra without App Service authentication, a 503: "
                "false, the answer shaped as a failed /api/health",
            },
            "checks": {**_CHECKS, "description": "with healthy: the check that failed"},
        },
        "required": ["error"],
    },
    "ExecutionError": {
        "type": "object",
        "properties": {"record_id": STRING, "field": STRING, "message": STRING},
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
            "interval": {"type": "string", "description": "with ?interval=hour only"},
            "buckets": {
                "type": "array",
                "description": "with ?interval=hour only: every hour (UTC) of the period, "
                "oldest first, an hour without files as zeros",
                "items": ref("HourCounts"),
            },
        },
    },
    "HourCounts": {
        "type": "object",
        "description": "The files received in one hour: processed, failed (a final state "
        "other than Processed), pending (not final yet).",
        "properties": {
            "start": {"type": "string", "format": "date-time"},
            **{outcome.value: _INT for outcome in Outcome},
        },
        "required": ["start", *(outcome.value for outcome in Outcome)],
    },
    "Health": {
        "type": "object",
        "properties": {
            "healthy": {"type": "boolean"},
            "checks": _CHECKS,
        },
        "required": ["healthy", "checks"],
    },
    "AuditEntry": {
        "type": "object",
        "description": "One operator action: who, when, what, and how it ended.",
        "properties": {
            "audit_key": STRING,
            "action": {**STRING, "description": "what was asked, e.g. resubmit"},
            "actor": _ACTOR,
            "at": {"type": "string", "format": "date-time"},
            "request_id": STRING,
            "targets": {
                **_STRINGS,
                "description": "what it was asked on (a record_key first), then what it made",
            },
            "subject": {**_NULLABLE_STRING, "description": "what it was asked on (a blob path)"},
            "outcome": {
                "type": "string",
                "enum": [outcome.value for outcome in AuditOutcome],
                "description": "requested: begun, its end not recorded (see its records)",
            },
            "detail": {**_NULLABLE_STRING, "description": "why it was refused"},
            "completed_at": _TIME,
        },
        "required": ["audit_key", "action", "actor", "at", "request_id", "targets", "outcome"],
    },
    "AuditPage": _page("AuditEntry"),
    "ResubmitRequest": {
        "type": "object",
        "properties": {
            "request_id": {
                **STRING,
                "description": "instead of the Idempotency-Key header",
                "pattern": "^[A-Za-z0-9._:-]{1,100}$",
            },
            "confirm": {
                "type": "boolean",
                "description": "required when the record has a resubmit_risk",
            },
        },
    },
    "ReleaseRequest": {
        "type": "object",
        "properties": {
            "request_id": {
                **STRING,
                "description": "instead of the Idempotency-Key header",
                "pattern": "^[A-Za-z0-9._:-]{1,100}$",
            },
        },
    },
    "ResubmitResult": {
        "type": "object",
        "properties": {
            "resubmitted_as": STRING,
            "request_id": STRING,
            "original": ref("Record"),
            # Null until the new version is tracked; inline, as 3.0 ignores nullable by a $ref.
            "resubmitted": {**_RECORD, "nullable": True},
        },
    },
}
