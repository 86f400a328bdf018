"""The public JSON form of a tracked file, as every view that shows one writes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.context import AppContext
from shared.flows.line import blocks_line
from shared.flows.resubmit import risk_of
from shared.tracking import TrackedFile, error_to_dict
from shared.views.response import json_time

__all__ = ["ERRORS_IN_RESPONSE", "RecordView", "record_json"]

ERRORS_IN_RESPONSE = 1000


@dataclass(frozen=True)
class RecordView:
    """How much of each record a response carries."""

    context: AppContext
    full_errors: bool
    now: datetime

    @classmethod
    def of(cls, context: AppContext, *, full_errors: bool) -> RecordView:
        """A view as of now; ``full_errors``: a single record's, not a listing's."""
        return cls(context, full_errors, datetime.now(UTC))


def record_json(record: TrackedFile, view: RecordView) -> dict[str, Any]:
    """The public JSON form of a tracked file.

    A single record carries its errors and error files (read from the errors container when
    they did not fit the row); a listing carries what the row keeps, so a page costs no blob
    reads.
    """
    store = view.context.store
    errors = store.load_errors(record) if view.full_errors else record.errors
    error_files = store.list_error_files(record) if view.full_errors else record.error_files
    poll_count, next_poll_at = store.next_poll(record, view.now)
    inbound = view.context.settings.inbound_container
    return {
        "record_key": record.row_key,
        "record_id": record.record_id,
        "message_id": record.message_id,
        "blob": record.blob,
        "blob_etag": record.blob_etag,
        "route": record.route,
        "activity_id": record.activity_id,
        "entity": record.entity,
        "company": record.company,
        "size": record.size,
        "state": record.state.value,
        "terminal": record.state.is_terminal,
        "d365_status": record.d365_status,
        "execution_id": record.execution_id,
        "sent_execution_id": record.sent_execution_id,
        "errors": [error_to_dict(e) for e in errors[:ERRORS_IN_RESPONSE]],
        "errors_truncated": len(errors) < record.error_count or len(errors) > ERRORS_IN_RESPONSE,
        "error_count": record.error_count,
        "errors_blob": record.errors_blob,
        "reject_reason": record.reject_reason,
        "archived_to": record.archived_to,
        "archive_error": record.archive_error,
        "received_at": json_time(record.received_at),
        "enqueued_at": json_time(record.enqueued_at),
        "updated_at": json_time(record.updated_at),
        "completed_at": json_time(record.completed_at),
        "next_poll_at": json_time(next_poll_at),
        "poll_count": poll_count,
        "enqueue_attempts": record.enqueue_attempts,
        "last_error": record.last_error,
        "history": [{"state": state, "at": at} for state, at in record.history],
        "history_dropped": record.history_dropped,
        # The package API (None / [] for enqueued files).
        "api": record.api,
        "definition_group": record.definition_group,
        "api_note": record.api_note,
        "error_files": list(error_files),
        "error_file_count": record.error_file_count,
        "error_files_blob": record.error_files_blob,
        "location": record.archived_to or f"{inbound}/{record.blob}",
        "resubmit_of": record.resubmit_of,
        "resubmit_request": record.resubmit_request,
        "resubmit_by": record.resubmit_by and record.resubmit_by.to_dict(),
        "resubmit_at": json_time(record.resubmit_at),
        "resubmitted_as": record.resubmitted_as,
        "resubmitted_request": record.resubmitted_request,
        "resubmitted_by": record.resubmitted_by and record.resubmitted_by.to_dict(),
        "resubmitted_at": json_time(record.resubmitted_at),
        "resubmit_risk": risk_of(record),
        "line": line_json(record),
    }


def line_json(record: TrackedFile) -> dict[str, Any] | None:
    """A file's place in its ordered line (None: its route sends in parallel)."""
    if not record.line:
        return None
    return {
        "name": record.line,
        "order": record.line_mode,
        "stops_on_failure": record.line_stops,
        "created_at": json_time(record.line_created),
        "behind": record.behind,
        "turn_at": json_time(record.turn_at),
        "late_after": record.late_after,
        "blocks_line": blocks_line(record),
        "released_at": json_time(record.released_at),
        "released_by": record.released_by and record.released_by.to_dict(),
        "release_request": record.release_request,
    }
