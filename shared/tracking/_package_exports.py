"""The package export store: every write of a package export record and its route's row.

Every write after the first is conditional on the ETag read: a second writer (a tick that
overran its lease) gets :class:`ConcurrencyError` and leaves the run to the other. A write
whose answer was lost is recognised as ours by its ``write_id`` (:mod:`._writes`). The rows
share the partition ``exports`` with the recurring exports' (:mod:`._package_export_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from ._export_partition import ExportPartition
from ._lease import Lease
from ._model import ConcurrencyError
from ._package_export_model import PackageExportRecord, PackageExportState, RouteRun
from ._package_export_rows import (
    package_entity,
    package_from,
    route_run_entity,
    route_run_from,
    route_run_key,
)
from ._writes import insert_own, replace_own

__all__ = ["PackageExportStore"]


class PackageExportStore(ExportPartition):
    """Package export records, route rows and route leases of one status table.

    :param client: the status table's client.
    :keyword errors_container: where a list of blobs too long for a row is written.
    :keyword clock: the time source (UTC).
    """

    def get(self, execution_id: str) -> PackageExportRecord | None:
        """The record of a run, or None."""
        row = self._table.get(execution_id)
        return None if row is None or row.get("kind") is None else package_from(row)

    # -- the route's row -----------------------------------------------------------------

    def route_run(self, route: str) -> RouteRun:
        """The route's schedule row (an empty one before its first run)."""
        return route_run_from(route, self._table.get(route_run_key(route)))

    def claim_slot(self, run: RouteRun, *, slot: datetime, execution_id: str) -> RouteRun:
        """Claim ``slot`` for the run ``execution_id``: the row says it before the record
        exists, so a crash leaves a run to finish, never a slot run twice.

        :raises ConcurrencyError: another writer changed the row meanwhile.
        """
        return self._write_run(replace(run, last_slot=slot, current=execution_id))

    def end_run(self, run: RouteRun) -> RouteRun:
        """The run in flight is final: the route may claim its next slot.

        :raises ConcurrencyError: another writer changed the row meanwhile.
        """
        return self._write_run(replace(run, current=None))

    def _write_run(self, run: RouteRun) -> RouteRun:
        entity = route_run_entity(run)
        if run.etag:
            written = replace_own(self._table, entity, etag=run.etag)
        else:
            written = insert_own(self._table, entity)
        if not written.ours:
            raise ConcurrencyError(f"package export route {run.route} was run by another tick")
        return replace(run, etag=written.etag)

    # -- records ---------------------------------------------------------------------------

    def scheduled(
        self,
        *,
        execution_id: str,
        route: str,
        definition_group: str,
        legal_entity: str,
        container: str,
        target: str,
        slot: datetime,
    ) -> PackageExportRecord:
        """Record a claimed slot before anything is sent to F&O (the record found when it
        exists: a tick that died after writing it)."""
        now = self._clock()
        record = PackageExportRecord(
            execution_id=execution_id,
            route=route,
            definition_group=definition_group,
            legal_entity=legal_entity,
            container=container,
            target=target,
            state=PackageExportState.SCHEDULED,
            scheduled_for=slot,
            created_at=now,
            updated_at=now,
            history=((PackageExportState.SCHEDULED.value, now.isoformat(), None),),
        )
        entity = package_entity(record)
        written = insert_own(self._table, entity)
        if written.ours:
            return replace(package_from(entity), etag=written.etag)
        return package_from(written.row)

    def change(
        self,
        record: PackageExportRecord,
        state: PackageExportState,
        *,
        reason: str | None = None,
        **changes: Any,
    ) -> PackageExportRecord:
        """Write ``record`` in ``state`` with ``changes``, conditional on its ETag; the
        history gets an entry when the state or the reason is new.

        :raises ConcurrencyError: another writer changed the record meanwhile.
        """
        now = self._clock()
        history = record.history
        last = history[-1] if history else None
        if last is None or (last[0], last[2]) != (state.value, reason):
            history = (*history, (state.value, now.isoformat(), reason))
        changed = replace(record, state=state, updated_at=now, history=history, **changes)
        return self._replaced(
            package_entity(changed),
            etag=record.etag,
            decode=package_from,
            what=f"package export {record.execution_id}",
        )

    def downloaded(
        self,
        record: PackageExportRecord,
        blobs: Sequence[str],
        size: int,
        *,
        reason: str,
        d365_status: str,
        fno_errors: str | None,
    ) -> PackageExportRecord:
        """Record the package committed in its container (final), with F&O's status and, for
        a partial export, its errors; a list of blobs too long for the row is written to a blob
        of the errors container first.

        :raises AzureError: storage failed (the list's blob, or the row).
        """
        listed = self._blobs_fields(record.execution_id, blobs)
        return self.change(
            record,
            PackageExportState.DELIVERED,
            reason=reason,
            size=size,
            downloaded_at=self._clock(),
            d365_status=d365_status,
            fno_errors=fno_errors,
            error=None,
            **listed,
        )

    def failed(
        self,
        record: PackageExportRecord,
        reason: str,
        *,
        blobs: Sequence[str] = (),
        **changes: Any,
    ) -> PackageExportRecord:
        """Record the run failed for good (final), with ``reason`` as its error and
        ``blobs`` (what was kept of it, e.g. a package the zip limits refused).

        :raises ConcurrencyError: another writer changed the record meanwhile.
        """
        listed = self._blobs_fields(record.execution_id, blobs)
        return self.change(
            record,
            PackageExportState.EXPORT_FAILED,
            reason=reason,
            error=reason,
            **changes,
            **listed,
        )

    def lease(self, route: str) -> Lease:
        """The lease of package export route ``route``: one tick at a time per route."""
        return Lease(self._table, f"pkg-{route.lower()}", clock=self._clock)
