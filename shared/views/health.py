"""What ``GET /api/health`` answers: whether the app can do its work, with no secret shown.

Checks the settings, storage (with the poll schedule's backlog), the retention in force with
the oldest record kept, a token, one authorized F&O call
(:func:`shared.flows.access.check_access`); 200 when all pass, else 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shared.config import D365Settings, Settings, SettingsError, StorageSettings
from shared.context import AppContext
from shared.errors import safe_text
from shared.flows.access import check_access
from shared.views.response import ApiResponse, json_time

__all__ = ["health", "health_summary"]

_LOGGER = logging.getLogger(__name__)


def health(context_factory: Callable[[], AppContext]) -> ApiResponse:
    """``GET /api/health``: settings, storage, a token, one authorized F&O call, the poll
    schedule; no secrets."""
    checks: dict[str, Any] = {}
    try:
        context = context_factory()
    except SettingsError as exc:
        return ApiResponse(
            503, {"healthy": False, "checks": {"settings": {"ok": False, "problems": exc.problems}}}
        )
    except Exception as exc:
        _LOGGER.exception("health: context could not be built")
        return ApiResponse(
            503, {"healthy": False, "checks": {"startup": {"ok": False, "error": safe_text(exc)}}}
        )
    checks["settings"] = {"ok": True, "summary": health_summary(context.settings), "problems": []}
    # Reached only once the request was admitted: in entra mode the platform's sign-in is on.
    checks["http_auth"] = {"ok": True, "mode": context.settings.http_auth.value}
    try:
        schedule = context.store.schedule
        pending, oldest = schedule.backlog()
        checks["storage"] = {
            "ok": True,
            "pending": pending,
            "oldest_pending_since": json_time(oldest),
            "last_tick": json_time(schedule.last_tick()),
        }
    except Exception as exc:
        checks["storage"] = {"ok": False, "error": safe_text(exc)}
    checks["retention"] = _retention(context)
    try:
        context.credential.get_token(context.settings.d365.scope)
        checks["d365_token"] = {"ok": True}
    except Exception as exc:
        checks["d365_token"] = {"ok": False, "error": safe_text(exc)}
    else:
        checks["d365_access"] = check_access(context.client)
    healthy = all(check["ok"] for check in checks.values())
    return ApiResponse(200 if healthy else 503, {"healthy": healthy, "checks": checks})


def _retention(context: AppContext) -> dict[str, Any]:
    """The retention in force, and the oldest record kept as of the last run (one read)."""
    check: dict[str, Any] = {"ok": True, **context.settings.retention.as_dict()}
    try:
        last = context.retention.last_run()
    except Exception as exc:
        return {**check, "ok": False, "error": safe_text(exc)}
    check["last_run"] = json_time(last and last.until)
    check["oldest_record"] = json_time(last and last.watermark)
    return check


def health_summary(settings: Settings) -> dict[str, Any]:
    """A JSON-ready description of ``settings``; holds no secret and no storage key."""
    return {
        "d365": _d365(settings.d365),
        "storage": _storage(settings.storage),
        "routes": [route.as_dict() for route in settings.routes],
        "export_routes": [route.name for route in settings.exports]
        + [route.name for route in settings.package_exports],
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
