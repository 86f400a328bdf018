"""The table rows of package exports, in the partition ``exports`` of the status table.

=================================  ===========================================================
row key                            row
=================================  ===========================================================
``<route>-<slot>-<6 hex>``         a package export record, keyed by our execution id (never a
                                   GUID, so it cannot meet a recurring export's message id)
``~pkgrun-<route name>``           the route's schedule row: the last slot claimed, the run
                                   in flight
``~lease-pkg-<route name>``        the route's lease: one tick at a time per route
=================================  ===========================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from ._export_rows import EXPORTS_PARTITION
from ._model import utcnow
from ._package_export_model import (
    PACKAGE_KIND,
    PackageExportRecord,
    PackageExportState,
    RouteRun,
)
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

__all__ = [
    "is_package_key",
    "package_entity",
    "package_from",
    "route_run_entity",
    "route_run_from",
    "route_run_key",
]

_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}-[0-9]{8}T[0-9]{6}-[0-9a-f]{6}")


def is_package_key(text: str) -> bool:
    """True for a string shaped like a package export record's row key."""
    return bool(_KEY.fullmatch(text))  # ASCII digits, and no trailing newline


def route_run_key(route: str) -> str:
    """The row key of a route's schedule row."""
    return f"~pkgrun-{route.lower()}"


def package_entity(record: PackageExportRecord) -> dict[str, Any]:
    """The table entity of a package export record."""
    return finish(
        {
            "PartitionKey": EXPORTS_PARTITION,
            "RowKey": record.execution_id,
            "direction": "export",
            "kind": PACKAGE_KIND,
            "route": record.route,
            "definition_group": record.definition_group,
            "legal_entity": record.legal_entity,
            "container": record.container,
            "target": record.target,
            "state": record.state.value,
            "scheduled_for": record.scheduled_for.astimezone(UTC),
            "created_at": record.created_at.astimezone(UTC),
            "updated_at": record.updated_at.astimezone(UTC),
            "fno_execution_id": record.fno_execution_id,
            "requested_at": record.requested_at and record.requested_at.astimezone(UTC),
            "send_attempts": record.send_attempts,
            "d365_status": record.d365_status,
            "fno_errors": record.fno_errors,
            **encode_list(EXPORT_BLOBS, record.blobs, record.blob_count, record.blobs_blob),
            "size": encode_size(record.size),
            "downloaded_at": record.downloaded_at and record.downloaded_at.astimezone(UTC),
            "error": record.error,
            **encode_history(record.history, record.history_dropped),
        }
    )


def package_from(row: Mapping[str, Any]) -> PackageExportRecord:
    """The package export record of a table row."""
    return PackageExportRecord(
        execution_id=row["RowKey"],
        route=row.get("route", ""),
        definition_group=row.get("definition_group", ""),
        legal_entity=row.get("legal_entity", ""),
        container=row.get("container", ""),
        target=row.get("target", ""),
        state=PackageExportState.parse(row.get("state", "Scheduled")),
        scheduled_for=parse_time(row.get("scheduled_for")) or utcnow(),
        created_at=parse_time(row.get("created_at")) or utcnow(),
        updated_at=parse_time(row.get("updated_at")) or utcnow(),
        fno_execution_id=row.get("fno_execution_id"),
        requested_at=parse_time(row.get("requested_at")),
        send_attempts=int(row.get("send_attempts") or 0),
        d365_status=row.get("d365_status"),
        fno_errors=row.get("fno_errors"),
        **decode_list(EXPORT_BLOBS, row),
        size=decode_size(row.get("size")),
        downloaded_at=parse_time(row.get("downloaded_at")),
        error=row.get("error"),
        **decode_history(row),
        etag=row_etag(row),
    )


def route_run_entity(run: RouteRun) -> dict[str, Any]:
    """The table entity of a route's schedule row."""
    return finish(
        {
            "PartitionKey": EXPORTS_PARTITION,
            "RowKey": route_run_key(run.route),
            "route": run.route,
            "last_slot": run.last_slot and run.last_slot.astimezone(UTC),
            "current": run.current,
        }
    )


def route_run_from(route: str, row: Mapping[str, Any] | None) -> RouteRun:
    """A route's schedule row; an absent row is a route that never ran."""
    if row is None:
        return RouteRun(route, None, None)
    return RouteRun(
        route,
        parse_time(row.get("last_slot")),
        row.get("current") or None,
        etag=row_etag(row),
    )
