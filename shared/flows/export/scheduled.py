"""One package export tick: each enabled route's lease, its run in flight, then its due slot.

Per tick (the ``export_jobs`` timer, ``EXPORT_SCHEDULE``), for each enabled package export
route (``PACKAGE_EXPORT_ROUTES``) while the tick's budget lasts, under the route's lease (one
tick at a time per route, across instances), with the route's row (``last_slot``,
``current``):

1. **The run in flight** (``current``): its record is sent (:mod:`.package_send`) or followed
   one step (:mod:`.package_follow`); once final, **the row's ``current`` is cleared**.
   *Stop before that write*: the next tick finds the record final and clears it. A row
   naming a record that does not exist (a tick that died between 2 and 3): the record is
   written now, ``Scheduled``, and sent.
2. No run in flight: the latest slot of the route's schedule after ``last_slot`` and at or
   before now (:func:`.slots.due_slot`; missed slots collapse into it, so a schedule missed
   while the app was down runs once). A route's first tick only sets ``last_slot`` to now:
   a new route starts at its next slot, not with its past. **The row says ``last_slot`` =
   that slot and ``current`` = a new execution id** (conditional on the row as read: of two
   instances on the same slot, one wins and the other skips). *Stop here*: the next tick
   finds ``current`` without a record, and writes it (1).
3. **Record Scheduled** with that execution id, *before* ExportToPackage: then 1 for it at
   once. A slot that comes while a run is in flight waits for it, and runs once after it.

So ExportToPackage goes to F&O at most once per slot, and every claimed slot reaches a final
state: the row never moves on while its run is not final.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared import telemetry
from shared.clients.d365 import D365Client
from shared.config.package_exports import PackageExportRoute, PackageExportRoutes
from shared.flows.export.events import error_text
from shared.flows.export.models import ExportPolicy, ExportTickResult
from shared.flows.export.package_follow import PackageFollower
from shared.flows.export.package_send import PackageSender
from shared.flows.export.slots import due_slot
from shared.tracking import (
    ConcurrencyError,
    LeaseKeeper,
    PackageExportRecord,
    PackageExportState,
    PackageExportStore,
    RouteRun,
    utcnow,
)

__all__ = ["PackageExporter", "execution_id_for"]

_LOGGER = logging.getLogger(__name__)


def execution_id_for(route: str, slot: datetime) -> str:
    """A new execution id for a run of ``route`` at ``slot``: readable, and never one F&O
    has seen (a random tail, so a table started afresh cannot meet an old execution)."""
    return f"{route}-{slot.astimezone(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


class PackageExporter:
    """Runs the package export routes: see :mod:`shared.flows.export.scheduled`.

    :param store: the package export records, route rows and leases.
    :param client: the F&O client.
    :param blob_service: the storage account the packages land in.
    :param routes: the package export routes.
    :keyword policy: lease and block sizes, zip limits.
    :keyword max_age: how long after its slot was claimed a run may stay unfinished
        (``MAX_PENDING_AGE``).
    :keyword clock: the time source (UTC).
    :keyword temp_dir: where an unzip route keeps the package while reading it.
    """

    def __init__(
        self,
        store: PackageExportStore,
        client: D365Client,
        blob_service: BlobServiceClient,
        routes: PackageExportRoutes,
        *,
        policy: ExportPolicy | None = None,
        max_age: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = utcnow,
        temp_dir: str | None = None,
    ) -> None:
        self._store = store
        self._blobs = blob_service
        self._routes = routes
        self._policy = policy or ExportPolicy()
        self._clock = clock
        self._holder = uuid.uuid4().hex
        self._sender = PackageSender(store, client, max_age=max_age, clock=clock)
        self._follower = PackageFollower(
            store, client, self._policy, max_age=max_age, clock=clock, temp_dir=temp_dir
        )

    @property
    def store(self) -> PackageExportStore:
        """The package export records."""
        return self._store

    def tick(
        self, result: ExportTickResult | None = None, *, started: float | None = None
    ) -> ExportTickResult:
        """Run every enabled route once; no route is started once the policy's time budget
        since ``started`` (``time.monotonic()``, default now) is spent: the next tick runs it.
        """
        result = result or ExportTickResult()
        deadline = (started or time.monotonic()) + self._policy.time_budget.total_seconds()
        for route in self._routes:
            if not route.enabled:
                continue
            if time.monotonic() > deadline:
                _LOGGER.info(
                    "package export route=%s left to the next tick: budget spent", route.name
                )
                continue
            try:
                self.run_route(route, result)
            except ConcurrencyError as exc:  # another tick's (one that overran its lease)
                _LOGGER.warning("package export route=%s left to another tick: %s", route.name, exc)
            except Exception as exc:  # one route's defect must not stop the others
                result.errors.append(f"{route.name}: {error_text(exc)}")
                _LOGGER.warning(
                    "package export route=%s tick ended early: %s",
                    route.name,
                    error_text(exc),
                    extra=telemetry.log_ids(
                        event="export_failed",
                        kind="package",
                        route=route.name,
                        cause="storage" if isinstance(exc, AzureError) else None,
                        reason=error_text(exc),
                    ),
                )
        return result

    def run_route(self, route: PackageExportRoute, result: ExportTickResult) -> None:
        """The route's run in flight, then its due slot, under its lease."""
        lease = self._store.lease(route.name)
        held = lease.acquire(self._holder, until=self._clock() + self._policy.lease)
        if held is None:
            result.skipped_leased += 1
            _LOGGER.info("package export route=%s skipped: another tick holds it", route.name)
            return
        result.routes += 1
        # Renewed while a package downloads: a download may outlast the lease.
        keeper = LeaseKeeper(lease, held, length=self._policy.lease, clock=self._clock)
        try:
            run = self._store.route_run(route.name)
            if run.current is not None:
                run = self._advance(route, run, None, result, keeper)
            if run.current is None:
                self._claim_due(route, run, result, keeper)
        finally:
            with contextlib.suppress(AzureError):  # else it runs out at its until
                lease.release(keeper.held)

    def _claim_due(
        self,
        route: PackageExportRoute,
        run: RouteRun,
        result: ExportTickResult,
        keeper: LeaseKeeper,
    ) -> None:
        now = self._clock()
        if run.last_slot is None:
            self._store.claim_slot(run, slot=now, execution_id="")
            _LOGGER.info("package export route=%s starts at its next slot", route.name)
            return
        slot = due_slot(route.schedule, last=run.last_slot, now=now)
        if slot is None:
            return
        execution_id = execution_id_for(route.name, slot)
        run = self._store.claim_slot(run, slot=slot, execution_id=execution_id)
        _LOGGER.info(
            "package export slot claimed route=%s slot=%s execution_id=%s",
            route.name,
            slot.isoformat(),
            execution_id,
            extra=telemetry.log_ids(route=route.name, execution_id=execution_id, kind="package"),
        )
        self._advance(route, run, slot, result, keeper)

    def _advance(
        self,
        route: PackageExportRoute,
        run: RouteRun,
        slot: datetime | None,
        result: ExportTickResult,
        keeper: LeaseKeeper,
    ) -> RouteRun:
        """One step of the run in flight; the row with ``current`` cleared once it is final."""
        assert run.current is not None
        record = self._store.get(run.current) or self._scheduled(route, run, slot)
        container = self._container(route)
        if record.state is PackageExportState.SCHEDULED:
            record = self._sender.send(route, record)
        if record.state in (PackageExportState.REQUESTED, PackageExportState.EXECUTING):
            record = self._follower.follow(route, container, record, keep=keeper.keep)
        if not record.state.is_final:
            return run
        result.written += record.state is PackageExportState.DELIVERED
        result.failed += record.state is PackageExportState.EXPORT_FAILED
        return self._store.end_run(run)

    def _scheduled(
        self, route: PackageExportRoute, run: RouteRun, slot: datetime | None
    ) -> PackageExportRecord:
        """The record of the row's run, written now (the row is written first)."""
        assert run.current is not None
        at = slot or run.last_slot or self._clock()
        return self._store.scheduled(
            execution_id=run.current,
            route=route.name,
            definition_group=route.definition_group,
            legal_entity=route.legal_entity,
            container=route.container,
            target=route.target(slot=at, execution_id=run.current),
            slot=at,
        )

    def _container(self, route: PackageExportRoute) -> ContainerClient:
        container = self._blobs.get_container_client(route.container)
        with contextlib.suppress(ResourceExistsError):
            container.create_container()
        return container
