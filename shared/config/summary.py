"""What the health endpoint shows of the settings: every value that helps, no secret.

Presentation for the HTTP view; the settings themselves know nothing of it.
"""

from __future__ import annotations

from typing import Any

from shared.config.d365 import D365Settings
from shared.config.settings import Settings
from shared.config.storage import StorageSettings

__all__ = ["health_summary"]


def health_summary(settings: Settings) -> dict[str, Any]:
    """A JSON-ready description of ``settings``; holds no secret and no storage key."""
    return {
        "d365": _d365(settings.d365),
        "storage": _storage(settings.storage),
        "routes": [route.as_dict() for route in settings.routes],
        "inbound_container": settings.inbound_container,
        "archive_container": settings.archive_container,
        "errors_container": settings.errors_container,
        "archive_mode": settings.archive_mode.value,
        "status_table": settings.status_table,
        "poll_schedule": settings.poll_schedule,
        "poll_concurrency": settings.poll_concurrency,
        "poll_tick_budget_seconds": settings.poll_tick_budget.total_seconds(),
        "poll_interval_min_seconds": settings.poll_interval_min.total_seconds(),
        "poll_interval_max_seconds": settings.poll_interval_max.total_seconds(),
        "max_pending_age_seconds": settings.max_pending_age.total_seconds(),
        "claim_lease_seconds": settings.claim_lease.total_seconds(),
        "max_file_bytes": settings.max_file_bytes,
    }


def _d365(d365: D365Settings) -> dict[str, Any]:
    # Whether a secret is configured shows in auth_mode; the secret itself never does.
    return {
        "base_url": d365.base_url,
        "authority_host": d365.authority_host,
        "auth_mode": d365.auth_mode.value,
        "tenant_id": d365.tenant_id,
        "client_id": d365.client_id,
        "managed_identity_client_id": d365.managed_identity_client_id,
        "http_timeout_seconds": d365.http_timeout.total_seconds(),
        "write_timeout_seconds": d365.write_timeout.total_seconds(),
    }


def _storage(storage: StorageSettings) -> dict[str, Any]:
    if storage.uses_connection_string:
        return {"form": "connection_string", "account": storage.account}
    return {
        "form": "identity",
        "blob_service_uri": storage.blob_service_uri,
        "table_service_uri": storage.table_service_uri,
        "credential": storage.credential or "DefaultAzureCredential",
        "client_id": storage.client_id,
    }
