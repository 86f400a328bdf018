"""How an export tells of what happened: its log ids, its error texts, the failure event."""

from __future__ import annotations

import logging

from azure.core.exceptions import AzureError, HttpResponseError

from shared import telemetry
from shared.errors import safe_text
from shared.tracking import ExportRecord, ExportState, PackageExportRecord

__all__ = ["CAUSE_ACK", "CAUSE_MESSAGE", "CAUSE_STORAGE", "error_text", "tell_failed"]

_LOGGER = logging.getLogger(__name__)
# The cause of a failed attempt, as the export_failed event's ``cause`` says it.
CAUSE_MESSAGE = "message"
"""The message's own (F&O's download, the package, the target name): counts toward giving up."""
CAUSE_STORAGE = "storage"
"""Our own storage refused a write: retried at every offer, never given up for it."""
CAUSE_ACK = "ack"
"""F&O did not take the ack: retried at the next offer (which only acks)."""


def tell_failed(
    record: ExportRecord | PackageExportRecord,
    reason: str,
    *,
    cause: str | None = None,
    gave_up: bool = False,
) -> None:
    """Log the ``export_failed`` event the alert reads (``cause``, or ``gave_up``: a package
    export's final failure too), with the record's ``kind``, and count it."""
    _LOGGER.log(
        logging.ERROR if gave_up else logging.WARNING,
        "export %s message_id=%s route=%s: %s",
        "given up" if gave_up else "failed",
        record.message_id,
        record.route,
        reason,
        extra=telemetry.record_ids(
            record,
            state=ExportState.EXPORT_FAILED.value,
            event="export_failed",
            kind=record.kind,
            reason=reason,
            cause=cause,
            gave_up=gave_up or None,  # None is left out: only a given-up event carries it
        ),
    )
    telemetry.record_export(ExportState.EXPORT_FAILED.value, record.route, kind=record.kind)


def error_text(exc: BaseException) -> str:
    """What a record or a log line says of ``exc``: never a secret, a token or a SAS query."""
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        code = getattr(exc, "error_code", None)
        suffix = f" ({code})" if code else ""
        return f"{type(exc).__name__}: {exc.status_code} {exc.reason}{suffix}"
    if isinstance(exc, ValueError | OSError) and not isinstance(exc, AzureError):
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    return safe_text(exc)
