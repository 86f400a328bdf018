"""The objects one worker process builds from its settings, built once and reused.

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
from azure.storage.blob import BlobServiceClient

from shared.clients.credentials import build_credential
from shared.clients.d365 import D365Client
from shared.clients.storage import blob_service_client, table_service_client
from shared.config import Settings
from shared.flows.enqueue import EnqueuePolicy, Enqueuer
from shared.flows.export import Exporter, ExportPolicy
from shared.flows.package import PackageImporter, PackagePolicy
from shared.flows.poll import Poller, PollPolicy
from shared.flows.source_blob import Archiver
from shared.tracking import Backoff, ExportStore, TrackingStore, lease_for_call, utcnow

__all__ = ["AppContext", "build_context", "get_context"]


_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppContext:
    """Everything the functions need, wired from one :class:`Settings`."""

    settings: Settings
    credential: TokenCredential
    blob_service: BlobServiceClient
    store: TrackingStore
    client: D365Client
    archiver: Archiver
    enqueuer: Enqueuer
    poller: Poller
    exporter: Exporter

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
    archiver = Archiver(
        blob_service,
        inbound_container=settings.inbound_container,
        archive_container=settings.archive_container,
        mode=settings.archive_mode,
    )
    store.ensure_ready()
    archiver.ensure_ready()
    credential = build_credential(settings.d365)
    client = D365Client(
        settings.d365.base_url,
        credential,
        read_timeout=settings.d365.http_timeout.total_seconds(),
        write_timeout=settings.d365.write_timeout.total_seconds(),
        # One connection per poll in flight: a smaller pool discards and re-handshakes.
        pool_maxsize=settings.poll_concurrency,
        sas_hosts=settings.d365.sas_hosts,
    )
    packages = PackageImporter(
        store,
        client,
        blob_service,
        errors_container=blob_service.get_container_client(settings.errors_container),
        policy=PackagePolicy(
            lease_span=lease_for_call(settings.d365.http_timeout),
            first_poll_delay=settings.poll_interval_min,
            poll_tick_budget=settings.poll_tick_budget,
            zip_limits=settings.zip_limits,
        ),
        clock=clock,
    )
    enqueuer = Enqueuer(
        store,
        client,
        settings.routes,
        archiver,
        policy=EnqueuePolicy(
            claim_lease=settings.claim_lease,
            answer_timeout=settings.d365.http_timeout,
            first_poll_delay=settings.poll_interval_min,
            default_max_bytes=settings.max_file_bytes,
            retry=backoff,
            max_pending_age=settings.max_pending_age,
        ),
        clock=clock,
        packages=packages,
    )
    poller = Poller(
        store,
        client,
        enqueuer,
        archiver,
        policy=PollPolicy(
            concurrency=settings.poll_concurrency,
            tick_budget=settings.poll_tick_budget,
            backoff=backoff,
            max_pending_age=settings.max_pending_age,
            # A call in flight at the end of the budget may take a whole read timeout.
            lease_margin=lease_for_call(settings.d365.http_timeout),
        ),
        clock=clock,
        packages=packages,
    )
    exporter = Exporter(
        ExportStore(
            tables.get_table_client(settings.status_table),
            errors_container=errors_container,
            clock=clock,
        ),
        client,
        blob_service,
        settings.exports,
        policy=ExportPolicy(
            # A download in flight at the end of the budget may take a whole read timeout.
            lease=settings.poll_tick_budget + lease_for_call(settings.d365.http_timeout),
            time_budget=settings.poll_tick_budget,
            max_attempts=settings.export_max_attempts,
            zip_limits=settings.zip_limits,
        ),
        clock=clock,
    )
    return AppContext(
        settings, credential, blob_service, store, client, archiver, enqueuer, poller, exporter
    )


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
