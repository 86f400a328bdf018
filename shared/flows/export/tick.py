"""One export tick: each enabled route's lease, then its messages dequeued one by one.

Per tick, for each enabled export route (``EXPORT_ROUTES``), the exporter takes the route's
lease (one tick at a time per route, across instances), then dequeues until F&O answers 204,
``max_messages`` is reached or the time budget is spent. A dequeue that fails ends the route's
tick; the next tick starts again.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared import telemetry
from shared.clients.d365 import D365Client, D365Error, DequeuedMessage, normalize_guid
from shared.config.exports import ExportRoute, ExportRoutes
from shared.flows.export.ack import Acker
from shared.flows.export.download import MessageWriter
from shared.flows.export.events import error_text
from shared.flows.export.failures import Failures
from shared.flows.export.models import ExportPolicy, ExportTickResult
from shared.flows.export.scheduled import PackageExporter
from shared.tracking import ConcurrencyError, ExportStore, LeaseHeld, utcnow

__all__ = ["Exporter"]

_LOGGER = logging.getLogger(__name__)


class Exporter:
    """Runs the export routes: see :mod:`shared.flows.export` for the steps and their failures.

    :param store: the export records and leases.
    :param client: the F&O client.
    :param blob_service: the storage account the exports land in.
    :param routes: the export routes.
    :keyword policy: lease, budget and block sizes.
    :keyword clock: the time source (UTC).
    :keyword temp_dir: where an unzip route keeps the package while reading it.
    :keyword packages: the package export routes' runner, run after the recurring routes by
        the same tick (None: no package exports).
    """

    def __init__(
        self,
        store: ExportStore,
        client: D365Client,
        blob_service: BlobServiceClient,
        routes: ExportRoutes,
        *,
        policy: ExportPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        temp_dir: str | None = None,
        packages: PackageExporter | None = None,
    ) -> None:
        self._store = store
        self._packages = packages
        self._client = client
        self._blobs = blob_service
        self._routes = routes
        self._policy = policy or ExportPolicy()
        self._clock = clock
        self._holder = uuid.uuid4().hex
        failures = Failures(store, max_attempts=self._policy.max_attempts)
        self._writer = MessageWriter(store, client, self._policy, failures, temp_dir=temp_dir)
        self._acker = Acker(store, client, failures)

    @property
    def store(self) -> ExportStore:
        """The export records and leases."""
        return self._store

    @property
    def packages(self) -> PackageExporter | None:
        """The package export routes' runner, None when there is none."""
        return self._packages

    def tick(self) -> ExportTickResult:
        """Run every enabled route once: the recurring export routes, then the package
        export routes."""
        result = ExportTickResult()
        started = time.monotonic()
        for route in self._routes:
            if not route.enabled:
                continue
            try:
                self.run_route(route, result)
            except Exception as exc:  # one route's defect must not stop the others
                result.errors.append(f"{route.name}: {error_text(exc)}")
                _LOGGER.exception(
                    "export route=%s failed: %s",
                    route.name,
                    error_text(exc),
                    extra=telemetry.log_ids(
                        event="export_failed", route=route.name, reason=error_text(exc)
                    ),
                )
        if self._packages is not None:
            self._packages.tick(result, started=started)
        return result

    def run_route(self, route: ExportRoute, result: ExportTickResult | None = None) -> None:
        """Dequeue and export the messages of one route under its lease."""
        result = result or ExportTickResult()
        lease = self._store.lease(route.name).acquire(
            self._holder, until=self._clock() + self._policy.lease
        )
        if lease is None:
            result.skipped_leased += 1
            _LOGGER.info("export route=%s skipped: another tick holds its lease", route.name)
            return
        result.routes += 1
        try:
            container = self._container(route)
            deadline = time.monotonic() + self._policy.time_budget.total_seconds()
            for _ in range(route.max_messages):
                if time.monotonic() > deadline:
                    break
                message = self._client.dequeue(route.activity_id)
                if message is None:
                    break
                result.dequeued += 1
                self._export(route, container, message, result)
        except (D365Error, AzureError, ConcurrencyError, ValueError) as exc:
            # ValueError: a dequeue answer whose CorrelationId is not a GUID (junk from F&O).
            result.errors.append(f"{route.name}: {error_text(exc)}")
            _LOGGER.warning(
                "export route=%s tick ended early: %s",
                route.name,
                error_text(exc),
                extra=telemetry.log_ids(
                    event="export_failed",
                    route=route.name,
                    activity_id=route.activity_id,
                    reason=error_text(exc),
                ),
            )
        finally:
            self._release(lease)

    def _release(self, lease: LeaseHeld) -> None:
        """End the route's lease; if storage fails, it runs out at its ``until``."""
        try:
            self._store.lease(lease.name).release(lease)
        except AzureError as exc:
            _LOGGER.warning("export lease %s not released: %s", lease.name, error_text(exc))

    def _container(self, route: ExportRoute) -> ContainerClient:
        container = self._blobs.get_container_client(route.container)
        with contextlib.suppress(ResourceExistsError):
            container.create_container()
        return container

    def _export(
        self,
        route: ExportRoute,
        container: ContainerClient,
        message: DequeuedMessage,
        result: ExportTickResult,
    ) -> None:
        message_id = normalize_guid(message.correlation_id, "CorrelationId")
        now = self._clock()
        try:
            record = self._store.dequeued(
                message_id=message_id,
                route=route.name,
                activity_id=route.activity_id,
                container=route.container,
                target=_target(route, message_id, now),
            )
            record = self._writer.write_once(route, container, message, record, result)
            # Each message is counted once: acked, or failed (not written, not acked, or given up).
            if (
                record is not None
                and self._acker.ack(route, message, record)
                and not record.gave_up_at
            ):
                result.acked += 1
            else:
                result.failed += 1
        except ConcurrencyError as exc:
            _LOGGER.warning("export message_id=%s left to another writer: %s", message_id, exc)


def _target(route: ExportRoute, message_id: str, dequeued_at: datetime) -> str:
    folder = route.folder(dequeued_at=dequeued_at.astimezone(UTC), message_id=message_id)
    return folder if route.unzip else f"{folder}{message_id}{route.extension}"
