"""A final file's blob filed away (archived or stamped), with its retries kept on the record."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from azure.core.exceptions import AzureError, HttpResponseError

from shared import telemetry
from shared.clients.storage import is_permanent, storage_reason
from shared.flows.archive import InboundContainer
from shared.flows.policies import PollPolicy
from shared.tracking import UNSCHEDULE, TrackedFile, TrackingStore

__all__ = ["Filing"]

_LOGGER = logging.getLogger(__name__)


class Filing:
    """Files final records' blobs away, retrying with back-off up to ``archive_attempts``.

    :param store: the tracking store.
    :param inbound: the inbound container, which files finished blobs away.
    :keyword policy: the back-off and ``archive_attempts``.
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self,
        store: TrackingStore,
        inbound: InboundContainer,
        *,
        policy: PollPolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._inbound = inbound
        self._policy = policy
        self._clock = clock

    def file_away(self, record: TrackedFile) -> None:
        """Archive (or stamp) a final record's blob, then take it off the schedule.

        A failure a retry can cure is retried with back-off, up to ``archive_attempts``; any
        other ends the archiving with its reason in ``archive_error`` (the file stays put).
        """
        attempts = record.archive_attempts + 1
        try:
            result = self._inbound.finish(record)
        except AzureError as exc:
            permanent = isinstance(exc, HttpResponseError) and is_permanent(exc)
            why = storage_reason(exc)
            if permanent or attempts >= self._policy.archive_attempts:
                self._archive_done(
                    record,
                    attempts,
                    None,
                    f"not archived: {why}; it stays in "
                    f"{self._inbound.inbound_container}/{record.blob}",
                )
                return
            self._archive_later(record, attempts, f"not archived yet ({why}); retried")
            return
        if result.retry:
            if attempts >= self._policy.archive_attempts:
                self._archive_done(
                    record,
                    attempts,
                    None,
                    "not archived: the copy did not "
                    f"complete; it stays in {self._inbound.inbound_container}/"
                    f"{record.blob}",
                )
            else:
                self._archive_later(record, attempts, "not archived yet (copy in progress)")
            return
        self._archive_done(record, attempts, result.archived_to, result.note)

    def _archive_done(
        self, record: TrackedFile, attempts: int, archived_to: str | None, note: str | None
    ) -> None:
        self._store.update(
            record,
            archived_to=archived_to,
            archive_pending=False,
            archive_attempts=attempts,
            archive_error=note,
            schedule_at=UNSCHEDULE,
        )
        if note:
            _LOGGER.warning(
                "archive ended blob=%s: %s",
                record.blob,
                note,
                extra=telemetry.record_ids(record),
            )

    def _archive_later(self, record: TrackedFile, attempts: int, note: str) -> None:
        due = self._clock() + self._policy.backoff.next_interval(attempts)
        self._store.update(record, archive_attempts=attempts, archive_error=note, schedule_at=due)
        _LOGGER.warning(
            "archive retried blob=%s: %s",
            record.blob,
            note,
            extra=telemetry.record_ids(record),
        )
