"""The acknowledgement of an exported message, sent with the dequeue body exactly as received.

*Fails* (or its answer is lost): the record says ExportFailed with the ack's error (a message
given up keeps its reason as the error, the ack's in its history); the message comes back
after 30 minutes and is acked without writing. *Taken*: the record says Acked (a message given
up stays ExportFailed, with ``acked_at``).
"""

from __future__ import annotations

import logging

from shared import telemetry
from shared.clients.d365 import D365Client, D365Error, DequeuedMessage
from shared.config.exports import ExportRoute
from shared.flows.export.events import CAUSE_ACK, error_text
from shared.flows.export.failures import Failures
from shared.tracking import ExportRecord, ExportState, ExportStore

__all__ = ["Acker"]

_LOGGER = logging.getLogger(__name__)


class Acker:
    """Acknowledges exported messages to F&O, then records it.

    :param store: the export records.
    :param client: the F&O client.
    :param failures: where an ack F&O did not take is recorded.
    """

    def __init__(self, store: ExportStore, client: D365Client, failures: Failures) -> None:
        self._store = store
        self._client = client
        self._failures = failures

    def ack(self, route: ExportRoute, message: DequeuedMessage, record: ExportRecord) -> bool:
        """Acknowledge the message and record it; False when F&O did not take the ack
        (recorded: the ack is retried when F&O offers the message again)."""
        try:
            self._client.ack(route.activity_id, message)
        except D365Error as exc:
            done = "it was given up" if record.gave_up_at else "the blob is committed"
            reason = (
                f"ack failed: {error_text(exc)}; {done}, the ack is retried when F&O offers the "
                "message again"
            )
            self._failures.fail(record, reason, cause=CAUSE_ACK)
            return False
        self._store.acked(record)
        if record.gave_up_at is not None:
            _LOGGER.info(
                "export given up and acked message_id=%s route=%s",
                record.message_id,
                record.route,
                extra=telemetry.record_ids(record, state=ExportState.EXPORT_FAILED.value),
            )
            return True
        _LOGGER.info(
            "export acked message_id=%s route=%s",
            record.message_id,
            record.route,
            extra=telemetry.record_ids(record, state=ExportState.ACKED.value, event="export_acked"),
        )
        telemetry.record_export(ExportState.ACKED.value, record.route)
        return True
