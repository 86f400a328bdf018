"""The export store: every write of an export record, conditional on the ETag it read.

Every write after the first is conditional on the ETag read: a second writer (a tick that
overran its lease) gets :class:`ConcurrencyError` and leaves the message to the other. A write
whose answer was lost is recognised as ours by its ``write_id`` (:mod:`._writes`), never taken
for another writer's. The records live in a partition of their own (:mod:`._export_rows`),
apart from the files' partition, which keeps its own transactions and listings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ._export_model import ExportRecord, ExportState
from ._export_partition import ExportPartition
from ._export_rows import export_entity, export_from, is_export_key
from ._lease import Lease
from ._package_export_model import PACKAGE_KIND, PackageExportRecord
from ._package_export_rows import is_package_key, package_from
from ._page import Page, decode_continuation, encode_continuation
from ._writes import insert_own

__all__ = ["ExportStore"]


class ExportStore(ExportPartition):
    """Export records and export leases of one status table.

    :param client: the status table's client (the table is the files' too).
    :keyword errors_container: where a list of blobs too long for a row is written.
    :keyword clock: the time source (UTC).
    """

    def ensure_ready(self) -> None:
        """Create the status table (and errors container) when missing."""
        self._table.create()
        self._overflow.ensure_ready()

    # -- records ----------------------------------------------------------------------------

    def get(self, message_id: str) -> ExportRecord | None:
        """The record of a message, or None."""
        row = self._table.get(message_id.lower())
        return None if row is None else export_from(row)

    def dequeued(
        self, *, message_id: str, route: str, activity_id: str, container: str, target: str
    ) -> ExportRecord:
        """Record a dequeue: a new record, or the next dequeue of a re-delivered message.

        :raises ConcurrencyError: another writer changed the record meanwhile.
        """
        now = self._clock()
        existing = self.get(message_id)
        if existing is None:
            record = ExportRecord(
                message_id=message_id.lower(),
                route=route,
                activity_id=activity_id,
                container=container,
                state=ExportState.DEQUEUED,
                dequeued_at=now,
                updated_at=now,
                target=target,
                history=((ExportState.DEQUEUED.value, now.isoformat(), None),),
            )
            entity = export_entity(record)
            written = insert_own(self._table, entity)
            if written.ours:
                return replace(export_from(entity), etag=written.etag)
            existing = export_from(written.row)
        return self._change(
            existing,
            # Given up: only its acknowledgement is left to do, and it stays failed.
            ExportState.EXPORT_FAILED if existing.gave_up_at else ExportState.DEQUEUED,
            reason=f"delivered again (dequeue {existing.dequeue_count + 1})",
            dequeue_count=existing.dequeue_count + 1,
        )

    def downloaded(
        self,
        record: ExportRecord,
        blobs: Sequence[str] | None,
        size: int,
        *,
        reason: str | None = None,
    ) -> ExportRecord:
        """Record that the message's blobs are committed.

        :param blobs: the blobs written; None: those the record names already (a message
            written before). A list too long for the row is written to a blob first.
        :raises AzureError: storage failed (the list's blob, or the row).
        """
        listed = {} if blobs is None else self._blobs_fields(record.message_id, blobs)
        return self._change(
            record,
            ExportState.DOWNLOADED,
            reason=reason,
            size=size,
            downloaded_at=record.downloaded_at or self._clock(),
            error=None,
            **listed,
        )

    def acked(self, record: ExportRecord) -> ExportRecord:
        """Record F&O's 200 to the ack: the message will not come back. A message given up
        stays ``ExportFailed`` with its reason."""
        if record.gave_up_at is not None:
            return self._change(
                record,
                ExportState.EXPORT_FAILED,
                reason="acknowledged: F&O will not offer it again",
                acked_at=self._clock(),
            )
        return self._change(record, ExportState.ACKED, acked_at=self._clock(), error=None)

    def failed(self, record: ExportRecord, reason: str, *, counted: bool = False) -> ExportRecord:
        """Record why a download or an ack failed; F&O offers the message again later.

        :keyword counted: the failure counts toward ``EXPORT_MAX_ATTEMPTS``
            (``failed_attempts``).

        A message given up keeps the reason it was given up as its ``error``: a later failure
        (of its ack) is in ``history`` only.
        """
        return self._change(
            record,
            ExportState.EXPORT_FAILED,
            reason=reason,
            error=record.error if record.gave_up_at is not None else reason,
            failed_attempts=record.failed_attempts + counted,
        )

    def gave_up(
        self, record: ExportRecord, reason: str, *, blobs: Sequence[str] = (), size: int | None
    ) -> ExportRecord:
        """Record that the message is given up for good (``blobs``: what was kept of it); it
        is acknowledged next, and never written again."""
        listed = self._blobs_fields(record.message_id, blobs)
        return self._change(
            record,
            ExportState.EXPORT_FAILED,
            reason=reason,
            error=reason,
            size=size,
            gave_up_at=self._clock(),
            **listed,
        )

    def list_records(
        self, *, route: str | None = None, limit: int = 50, continuation: str | None = None
    ) -> Page[ExportRecord | PackageExportRecord]:
        """Records in key order, ``limit`` per page: recurring exports (by message id) and
        package exports (by execution id, ``kind`` ``package``) alike.

        :raises ValueError: a continuation token this store did not issue.
        """
        clauses, parameters = ["RowKey lt @leases"], {"leases": "~"}
        if continuation:
            clauses.append("RowKey gt @after")
            parameters["after"] = decode_continuation(continuation, accepts=_is_record_key)
        if route:
            clauses.append("route eq @route")
            parameters["route"] = route
        records: list[ExportRecord | PackageExportRecord] = []
        for row in self._table.query(clauses, parameters, per_page=min(limit + 1, 1000)):
            if len(records) == limit:
                return Page(tuple(records), encode_continuation(records[-1].message_id))
            records.append(
                package_from(row) if row.get("kind") == PACKAGE_KIND else export_from(row)
            )
        return Page(tuple(records), None)

    def _change(
        self,
        record: ExportRecord,
        state: ExportState,
        *,
        reason: str | None = None,
        **changes: Any,
    ) -> ExportRecord:
        now = self._clock()
        history = (*record.history, (state.value, now.isoformat(), reason))
        changed = replace(record, state=state, updated_at=now, history=history, **changes)
        return self._replaced(
            export_entity(changed),
            etag=record.etag,
            decode=export_from,
            what=f"export record {record.message_id}",
        )

    # -- leases -----------------------------------------------------------------------------

    def lease(self, route: str) -> Lease:
        """The lease of export route ``route``: one tick at a time per route."""
        return Lease(self._table, route.lower(), clock=self._clock)


def _is_record_key(text: str) -> bool:
    """True for the row key of a recurring or a package export record."""
    return is_export_key(text) or is_package_key(text)
