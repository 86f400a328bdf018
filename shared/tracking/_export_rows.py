"""The table row of an export record, in the partition ``exports`` of the status table.

=================================  ===========================================================
row key                            row
=================================  ===========================================================
``<message id>``                   an export record; F&O's message id (the dequeue answer's
                                   CorrelationId), so a re-delivered message finds its record
``~lease-<route name>``            the lease of one export route: one tick at a time per route
=================================  ===========================================================

The rows are built with the codec's pieces (:func:`._properties.finish`, the history and list
encoders), so they fit Azure Tables whatever a record holds: the newest history entries with a
count of the dropped ones, and the blobs of a large unzip in a blob of the errors container.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from ._export_model import ExportRecord, ExportState
from ._model import utcnow
from ._properties import (
    EXPORT_BLOBS,
    decode_history,
    decode_list,
    decode_size,
    encode_history,
    encode_list,
    encode_size,
    finish,
    parse_time,
    row_etag,
)

__all__ = ["EXPORTS_PARTITION", "export_entity", "export_from", "is_export_key"]

EXPORTS_PARTITION = "exports"
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_export_key(text: str) -> bool:
    """True for a string shaped like an export record's row key (a lower-case GUID)."""
    return bool(_GUID.fullmatch(text))  # match() with $ let a trailing newline through


def export_entity(record: ExportRecord) -> dict[str, Any]:
    """The table entity of an export record."""
    entity: dict[str, Any] = {
        "PartitionKey": EXPORTS_PARTITION,
        "RowKey": record.message_id,
        "direction": "export",
        "route": record.route,
        "activity_id": record.activity_id,
        "container": record.container,
        "target": record.target,
        "state": record.state.value,
        **encode_list(EXPORT_BLOBS, record.blobs, record.blob_count, record.blobs_blob),
        "dequeue_count": record.dequeue_count,
        "dequeued_at": record.dequeued_at.astimezone(UTC),
        "updated_at": record.updated_at.astimezone(UTC),
        **encode_history(record.history, record.history_dropped),
        "size": encode_size(record.size),
        "downloaded_at": record.downloaded_at and record.downloaded_at.astimezone(UTC),
        "acked_at": record.acked_at and record.acked_at.astimezone(UTC),
        "gave_up_at": record.gave_up_at and record.gave_up_at.astimezone(UTC),
        "failed_attempts": record.failed_attempts,
        "error": record.error,
    }
    return finish(entity)


def export_from(row: Mapping[str, Any]) -> ExportRecord:
    """The export record of a table row."""
    return ExportRecord(
        message_id=row["RowKey"],
        route=row.get("route", ""),
        activity_id=row.get("activity_id", ""),
        container=row.get("container", ""),
        state=ExportState.parse(row.get("state", "Dequeued")),
        dequeued_at=parse_time(row.get("dequeued_at")) or utcnow(),
        updated_at=parse_time(row.get("updated_at")) or utcnow(),
        **decode_list(EXPORT_BLOBS, row),
        target=row.get("target", ""),
        size=decode_size(row.get("size")),
        dequeue_count=int(row.get("dequeue_count") or 1),
        downloaded_at=parse_time(row.get("downloaded_at")),
        acked_at=parse_time(row.get("acked_at")),
        error=row.get("error"),
        **decode_history(row),
        gave_up_at=parse_time(row.get("gave_up_at")),
        failed_attempts=int(row.get("failed_attempts") or 0),
        etag=row_etag(row),
    )
