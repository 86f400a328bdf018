"""The wiring of one worker process: its objects, built once from its settings, then reused.

Function invocations share them (one HTTP session to F&O, one table client), and a change
of the app settings (tests; a restart in Azure) builds a fresh set.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.credentials import TokenCredential
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.clients import storage
from shared.clients.credentials import build_credential
from shared.clients.d365 import UNLIMITED, CallBudget, D365Client
from shared.config import D365Settings, Settings, StorageSettings
from shared.config.budget import BudgetMode
from shared.flows.archive import InboundContainer
from shared.flows.enqueue import Enqueuer
from shared.flows.export import Exporter, ExportPolicy, PackageExporter
from shared.flows.package.follow import ImportFollower
from shared.flows.package.importer import PackageImporter
from shared.flows.policies import EnqueuePolicy, PackagePolicy, PollPolicy
from shared.flows.poll import Poller
from shared.flows.retention import BUSY_SHARE, ROWS_PER_SECOND, Retention, steps_for
from shared.tracking import (
    AuditStore,
    Backoff,
    BudgetLimits,
    ExportRetention,
    ExportStore,
    PackageExportStore,
    RecordRetention,
    SharedBudget,
    TrackingStore,
    lease_for_call,
    utcnow,
)

__all__ = [
    "AppContext",
    "blob_service_client",
    "build_context",
    "call_budget",
    "d365_credential",
    "get_context",
    "storage_credential",
    "table_service_client",
]


_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppContext:
    """Everything the functions need, wired from one :class:`Settings`."""

    settings: Settings
    credential: TokenCredential
    blob_service: BlobServiceClient
    store: TrackingStore
    client: D365Client
    inbound: InboundContainer
    enqueuer: Enqueuer
    poller: Poller
    exporter: Exporter
    audit: AuditStore
    """The audit trail of operator actions (resubmit, ...)."""
    retention: Retention

    def close(self) -> None:
        """Close network sessions."""
        self.client.close()


def build_context(
    settings: Settings,
    *,
    storage_options: Mapping[str, Any] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> AppContext:
    """Wire the domain objects for ``settings`` and create missing tables/containers.

    :keyword storage_options: further azure-core options for the storage clients (hooks).
    :keyword clock: the time source (UTC) of every part.
    """
    # A poll tick's calls in flight, plus the blob trigger's alongside.
    options = {"pool_maxsize": settings.poll_concurrency + 4, **(storage_options or {})}
    blob_service = blob_service_client(settings.storage, **options)
    tables = table_service_client(settings.storage, **options)
    backoff = Backoff(settings.poll_interval_min, settings.poll_interval_max)
    errors_container = blob_service.get_container_client(settings.errors_container)
    store = TrackingStore(
        tables.get_table_client(settings.status_table),
        errors_container=errors_container,
        backoff=backoff,
        clock=clock,
    )
    inbound = InboundContainer(
        blob_service,
        inbound_container=settings.inbound_container,
        archive_container=settings.archive_container,
        mode=settings.archive_mode,
    )
    store.ensure_ready()
    inbound.ensure_ready()
    credential = d365_credential(settings.d365)
    client = D365Client(
        settings.d365.base_url,
        credential,
        read_timeout=settings.d365.http_timeout.total_seconds(),
        write_timeout=settings.d365.write_timeout.total_seconds(),
        # One connection per poll in flight: a smaller pool discards and re-handshakes.
        pool_maxsize=settings.poll_concurrency,
        sas_hosts=settings.d365.sas_hosts,
        budget=call_budget(settings, tables.get_table_client(settings.status_table), clock=clock),
    )
    package_policy = PackagePolicy(
        lease_span=lease_for_call(settings.d365.http_timeout),
        first_poll_delay=settings.poll_interval_min,
        poll_tick_budget=settings.poll_tick_budget,
        zip_limits=settings.zip_limits,
    )
    packages = PackageImporter(store, client, blob_service, policy=package_policy, clock=clock)
    enqueuer = Enqueuer(
        store,
        client,
        settings.routes,
        inbound,
        policy=EnqueuePolicy(
            claim_lease=settings.claim_lease,
            answer_timeout=settings.d365.http_timeout,
            first_poll_delay=settings.poll_interval_min,
            default_max_bytes=settings.max_file_bytes,
            retry=backoff,
            max_pending_age=settings.max_pending_age,
            order_settle=settings.order_settle,
        ),
        clock=clock,
        packages=packages,
    )
    poller = Poller(
        store,
        client,
        enqueuer,
        inbound,
        policy=PollPolicy(
            concurrency=settings.poll_concurrency,
            tick_budget=settings.poll_tick_budget,
            backoff=backoff,
            max_pending_age=settings.max_pending_age,
            # A call in flight at the end of the budget may take a whole read timeout.
            lease_margin=lease_for_call(settings.d365.http_timeout),
        ),
        clock=clock,
        packages=ImportFollower(
            store,
            client,
            errors_container=blob_service.get_container_client(settings.errors_container),
            policy=package_policy,
        ),
    )
    export_policy = ExportPolicy(
        # A download in flight at the end of the budget may take a whole read timeout.
        lease=settings.poll_tick_budget + lease_for_call(settings.d365.http_timeout),
        time_budget=settings.poll_tick_budget,
        max_attempts=settings.export_max_attempts,
        zip_limits=settings.zip_limits,
    )
    exports_table = tables.get_table_client(settings.status_table)
    exporter = Exporter(
        ExportStore(exports_table, errors_container=errors_container, clock=clock),
        client,
        blob_service,
        settings.exports,
        policy=export_policy,
        clock=clock,
        packages=PackageExporter(
            PackageExportStore(exports_table, errors_container=errors_container, clock=clock),
            client,
            blob_service,
            settings.package_exports,
            policy=export_policy,
            max_age=settings.max_pending_age,
            clock=clock,
        ),
    )
    audit = AuditStore(tables.get_table_client(settings.status_table), clock=clock)
    return AppContext(
        settings,
        credential,
        blob_service,
        store,
        client,
        inbound,
        enqueuer,
        poller,
        exporter,
        audit=audit,
        retention=_retention(settings, tables, errors_container, audit, clock),
    )


def _retention(
    settings: Settings,
    tables: TableServiceClient,
    errors_container: ContainerClient,
    audit: AuditStore,
    clock: Callable[[], datetime],
) -> Retention:
    table = tables.get_table_client(settings.status_table)
    where = {
        "errors_container": errors_container,
        "rows_per_second": ROWS_PER_SECOND,
        "busy_share": BUSY_SHARE,
    }
    records = RecordRetention(table, **where, clock=clock)
    exports = ExportRetention(table, **where)
    return Retention(
        records,
        exports,
        steps_for(settings.retention, records, exports, audit),
        budget=settings.retention.budget,
        lease_span=settings.retention.lease_span,
        clock=clock,
    )


def call_budget(
    settings: Settings, table: TableClient, *, clock: Callable[[], datetime] = utcnow
) -> CallBudget:
    """The F&O budget of this worker process: its share of the whole app's, kept in the
    status table (``D365_BUDGET=shared``), or none (``off``)."""
    budget = settings.budget
    if budget.mode is BudgetMode.OFF:
        return UNLIMITED
    limits = BudgetLimits(budget.max_concurrency, budget.max_requests_per_5min)
    return SharedBudget(table, limits, clock=clock)


def d365_credential(settings: Settings | D365Settings) -> TokenCredential:
    """The F&O credential of the ``D365_*`` settings (see
    :func:`shared.clients.credentials.build_credential`).

    :param settings: the app settings, or just their ``d365`` part.
    :raises ValueError: a secret or certificate without tenant or client id.
    :raises OSError: the certificate file cannot be read.
    """
    d365 = settings.d365 if isinstance(settings, Settings) else settings
    return build_credential(
        mode=d365.auth_mode.value,
        tenant_id=d365.tenant_id,
        client_id=d365.client_id,
        client_secret=d365.client_secret,
        client_certificate_path=d365.client_certificate_path,
        client_certificate_password=d365.client_certificate_password,
        managed_identity_client_id=d365.managed_identity_client_id,
        authority_host=d365.authority_host,
        read_timeout=d365.http_timeout.total_seconds(),
    )


def storage_credential(settings: StorageSettings) -> TokenCredential:
    """The Entra credential of the identity-based ``IntegrationStorage`` form.

    :raises ValueError: ``settings`` is the connection-string form.
    """
    if settings.uses_connection_string:
        raise ValueError("IntegrationStorage is a connection string; no token credential needed")
    return storage.storage_credential(
        managed_identity=settings.uses_managed_identity, client_id=settings.client_id
    )


def _endpoint(settings: StorageSettings, endpoint: str | None, setting: str) -> dict[str, Any]:
    """The connection keywords of a storage service client for ``settings``."""
    if settings.connection_string is not None:
        return {"connection_string": settings.connection_string}
    if not endpoint:
        raise ValueError(f"{setting} is not set")
    return {"endpoint": endpoint}


def blob_service_client(
    settings: StorageSettings, *, credential: TokenCredential | None = None, **options: Any
) -> BlobServiceClient:
    """A blob service client on the ``IntegrationStorage`` connection.

    :param credential: for the identity form, a credential to share between clients;
        default :func:`storage_credential`.
    :keyword options: those of :func:`shared.clients.storage.blob_service_client`.
    :raises ValueError: no blob endpoint in ``settings``.
    """
    where = _endpoint(
        settings,
        settings.blob_service_uri,
        "IntegrationStorage__blobServiceUri (or __serviceUri)",
    )
    if "endpoint" in where:
        where["credential"] = credential or storage_credential(settings)
    return storage.blob_service_client(**where, **options)


def table_service_client(
    settings: StorageSettings, *, credential: TokenCredential | None = None, **options: Any
) -> TableServiceClient:
    """A table service client on the ``IntegrationStorage`` connection.

    :param credential: for the identity form, a credential to share between clients;
        default :func:`storage_credential`.
    :keyword options: those of :func:`shared.clients.storage.table_service_client`.
    :raises ValueError: no table endpoint in ``settings``.
    """
    where = _endpoint(settings, settings.table_service_uri, "IntegrationStorage__tableServiceUri")
    if "endpoint" in where:
        where["credential"] = credential or storage_credential(settings)
    return storage.table_service_client(**where, **options)


_lock = threading.Lock()
_cached: tuple[str, AppContext] | None = None


def _environment_key(environ: Mapping[str, str]) -> str:
    # A hash, so the cache key keeps no secret around in reprs or memory dumps.
    return hashlib.sha256(repr(sorted(environ.items())).encode()).hexdigest()


def get_context(environ: Mapping[str, str] | None = None) -> AppContext:
    """The process's context for the current settings, built on first use.

    :raises SettingsError: the settings are invalid (the message names each problem).
    """
    global _cached  # noqa: PLW0603 - one context per worker process is the point
    env = os.environ if environ is None else environ
    key = _environment_key(env)
    with _lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1]
        context = build_context(Settings.from_env(env))
        if _cached is not None:
            _cached[1].close()
        _cached = (key, context)
        _LOGGER.info("app context built table=%s", context.settings.status_table)
        return context
