"""What the HTTP routes answer: tracked files as JSON, queries, and the health check.

Kept free of ``azure.functions``: every function returns an :class:`ApiResponse` that the
adapter turns into an HTTP response.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError

from shared.clients.d365 import normalize_message_id
from shared.config import D365Settings, Settings, SettingsError, StorageSettings
from shared.context import AppContext
from shared.errors import safe_text
from shared.flows.access import check_access
from shared.flows.resubmit import ResubmitError, Resubmitter, risk_of
from shared.tracking import (
    ConcurrencyError,
    TrackedFile,
    TrackingState,
    TrackingStoreError,
    error_to_dict,
    is_record_key,
)
from shared.views import exports
from shared.views.body import BodyError, json_object
from shared.views.params import check_names, parse_limit, parse_time

__all__ = [
    "DEFAULT_COUNT_PERIOD",
    "ERRORS_IN_RESPONSE",
    "FAILED_STATES",
    "IMPORT_DIRECTION",
    "STUCK_AFTER",
    "ApiResponse",
    "counts",
    "get_message",
    "health",
    "health_summary",
    "list_messages",
    "messages",
    "record_json",
    "resubmit",
]


_LOGGER = logging.getLogger(__name__)

IMPORT_DIRECTION = "import"
"""``?direction=`` of the tracked (inbound) files, the default; ``export`` lists exports."""
ERRORS_IN_RESPONSE = 1000
_LIST_PARAMS = (
    "blob",
    "state",
    "route",
    "company",
    "prefix",
    "since",
    "until",
    "limit",
    "continuation",
)
_COUNT_PARAMS = ("since", "until")
_RESUBMIT_EXAMPLE = '{"request_id": "<a new UUID>", "confirm": true}'
DEFAULT_COUNT_PERIOD = timedelta(hours=24)
STUCK_AFTER = timedelta(hours=1)
"""A file not final this long after it arrived counts as stuck."""
FAILED_STATES = frozenset(
    {
        TrackingState.PROCESSED_WITH_ERRORS,
        TrackingState.PRE_PROCESSING_ERROR,
        TrackingState.POST_PROCESSING_FAILED,
        TrackingState.REJECTED,
        TrackingState.ENQUEUE_FAILED,
        TrackingState.TIMED_OUT,
        TrackingState.IMPORT_FAILED,
        TrackingState.IMPORT_CANCELED,
    }
)


@dataclass(frozen=True)
class ApiResponse:
    """An HTTP status and a JSON-ready body."""

    status: int
    body: dict[str, Any]


def _problem(status: int, message: str) -> ApiResponse:
    return ApiResponse(status, {"error": message})


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


@dataclass(frozen=True)
class _View:
    """How much of each record a response carries."""

    context: AppContext
    full_errors: bool
    now: datetime

    @classmethod
    def of(cls, context: AppContext, *, full_errors: bool) -> _View:
        return cls(context, full_errors, datetime.now(UTC))


def record_json(record: TrackedFile, view: _View) -> dict[str, Any]:
    """The public JSON form of a tracked file.

    A single record carries its errors and error files (read from the errors container when
    they did not fit the row); a listing carries what the row keeps, so a page costs no blob
    reads.
    """
    store = view.context.store
    errors = store.load_errors(record) if view.full_errors else record.errors
    error_files = store.list_error_files(record) if view.full_errors else record.error_files
    poll_count, next_poll_at = store.next_poll(record, view.now)
    inbound = view.context.settings.inbound_container
    return {
        "record_key": record.row_key,
        "record_id": record.record_id,
        "message_id": record.message_id,
        "blob": record.blob,
        "blob_etag": record.blob_etag,
        "route": record.route,
        "activity_id": record.activity_id,
        "entity": record.entity,
        "company": record.company,
        "size": record.size,
        "state": record.state.value,
        "terminal": record.state.is_terminal,
        "d365_status": record.d365_status,
        "execution_id": record.execution_id,
        "sent_execution_id": record.sent_execution_id,
        "errors": [error_to_dict(e) for e in errors[:ERRORS_IN_RESPONSE]],
        "errors_truncated": len(errors) < record.error_count or len(errors) > ERRORS_IN_RESPONSE,
        "error_count": record.error_count,
        "errors_blob": record.errors_blob,
        "reject_reason": record.reject_reason,
        "archived_to": record.archived_to,
        "archive_error": record.archive_error,
        "received_at": _time(record.received_at),
        "enqueued_at": _time(record.enqueued_at),
        "updated_at": _time(record.updated_at),
        "completed_at": _time(record.completed_at),
        "next_poll_at": _time(next_poll_at),
        "poll_count": poll_count,
        "enqueue_attempts": record.enqueue_attempts,
        "last_error": record.last_error,
        "history": [{"state": state, "at": at} for state, at in record.history],
        "history_dropped": record.history_dropped,
        # The package API (None / [] for enqueued files).
        "api": record.api,
        "definition_group": record.definition_group,
        "api_note": record.api_note,
        "error_files": list(error_files),
        "error_file_count": record.error_file_count,
        "error_files_blob": record.error_files_blob,
        "location": record.archived_to or f"{inbound}/{record.blob}",
        "resubmit_of": record.resubmit_of,
        "resubmitted_as": record.resubmitted_as,
        "resubmit_risk": risk_of(record),
    }


def _with_context(
    context_factory: Callable[[], AppContext], answer: Callable[[AppContext], ApiResponse]
) -> ApiResponse:
    """``answer`` with the app's context; a 503 that names the problem when the app cannot
    start or its table cannot be used, never a 500."""
    try:
        context = context_factory()
    except SettingsError as exc:
        return ApiResponse(503, {"error": str(exc), "problems": list(exc.problems)})
    except Exception as exc:
        _LOGGER.exception("context could not be built")
        return _problem(503, f"the app could not start ({safe_text(exc)}); see /api/health")
    try:
        return answer(context)
    except TrackingStoreError as exc:
        return _problem(503, str(exc))
    except (AzureError, ConcurrencyError) as exc:
        _LOGGER.exception("storage failed while answering")
        return _problem(
            503, f"storage failed or changed while answering ({safe_text(exc)}); try again"
        )


def messages(
    context_factory: Callable[[], AppContext], message_id: str | None, params: Mapping[str, str]
) -> ApiResponse:
    """``GET /api/messages/{id}`` or ``GET /api/messages?...``."""

    def answer(context: AppContext) -> ApiResponse:
        direction = params.get("direction", IMPORT_DIRECTION)
        if direction == exports.DIRECTION:
            return ApiResponse(*exports.list_exports(context, message_id, params))
        if direction != IMPORT_DIRECTION:
            return _problem(
                400,
                f"direction {direction[:20]!r} is not accepted; expected {IMPORT_DIRECTION} "
                f"(the default: tracked files) or {exports.DIRECTION} (export records)",
            )
        if message_id:
            return get_message(context, message_id)
        return list_messages(context, {k: v for k, v in params.items() if k != "direction"})

    return _with_context(context_factory, answer)


def _find(context: AppContext, key: str) -> TrackedFile | ApiResponse:
    """The record of an F&O message id or of a record key (``record_key`` of a listing)."""
    if is_record_key(key):
        record = context.store.get(key)
        return record or _problem(404, f"no tracked file has record key {key}")
    try:
        message_id = normalize_message_id(key)
    except ValueError:
        return _problem(
            400,
            f"message_id {key[:80]!r} is not a GUID; expected the message id F&O "
            "returned on enqueue, e.g. 84a383c8-336d-45e4-9933-0c3e8bfb734a (or a "
            "record_key from a listing)",
        )
    record = context.store.get_by_message_id(message_id)
    return record or _problem(404, f"no tracked file has message id {message_id}")


def get_message(context: AppContext, key: str) -> ApiResponse:
    """``GET /api/messages/{message_id or record_key}``."""
    found = _find(context, key)
    if isinstance(found, ApiResponse):
        return found
    return ApiResponse(200, record_json(found, _View.of(context, full_errors=True)))


def list_messages(context: AppContext, params: Mapping[str, str]) -> ApiResponse:
    """``GET /api/messages?blob=`` (latest version) or ``?state=&route=&since=&limit=``."""
    try:
        check_names(params, _LIST_PARAMS)
    except ValueError as exc:
        return _problem(400, str(exc))
    if "blob" in params:
        return _by_blob(context, params)
    try:
        query = _list_query(context, params)
        page = context.store.list_records(**query)
    except ValueError as exc:
        return _problem(400, str(exc))
    view = _View.of(context, full_errors=False)
    return ApiResponse(
        200,
        {
            "items": [record_json(r, view) for r in page.records],
            "continuation": page.continuation,
        },
    )


def _by_blob(context: AppContext, params: Mapping[str, str]) -> ApiResponse:
    others = sorted(set(params) - {"blob", "code"})
    if others:
        return _problem(400, f"blob cannot be combined with {', '.join(others)}")
    blob = params["blob"].strip().lstrip("/")
    container_prefix = context.settings.inbound_container + "/"
    if blob.startswith(container_prefix):
        blob = blob[len(container_prefix) :]
    if not blob:
        return _problem(400, "blob is empty; expected a path inside the inbound container")
    record = context.store.latest_for_blob(blob)
    if record is None:
        return _problem(404, f"no tracked file for blob {blob!r}")
    return ApiResponse(200, record_json(record, _View.of(context, full_errors=True)))


def _list_query(context: AppContext, params: Mapping[str, str]) -> dict[str, Any]:
    query: dict[str, Any] = {}
    parsers: dict[str, Callable[[str], Any]] = {
        "state": TrackingState.parse,
        "route": lambda text: _route_name(context, text),
        "company": lambda text: text.strip().upper(),
        "prefix": lambda text: text.lstrip("/"),
        "since": functools.partial(parse_time, "since"),
        "until": functools.partial(parse_time, "until"),
        "limit": parse_limit,
        "continuation": lambda text: text,
    }
    names = {"prefix": "blob_prefix"}
    for name, parse in parsers.items():
        if params.get(name):
            query[names.get(name, name)] = parse(params[name])
    return query


def _route_name(context: AppContext, text: str) -> str:
    names = [route.name for route in context.settings.routes]
    if text not in names:
        raise ValueError(f"unknown route {text!r}; configured routes: {', '.join(names)}")
    return text


def counts(context_factory: Callable[[], AppContext], params: Mapping[str, str]) -> ApiResponse:
    """``GET /api/counts?since=&until=``: files by state and by route over a period (default
    the last 24 hours), with the stuck and failed ones; reads only that period's records."""

    def answer(context: AppContext) -> ApiResponse:
        now = datetime.now(UTC)
        try:
            check_names(params, _COUNT_PARAMS)
            since = parse_time("since", params["since"]) if params.get("since") else None
            until = parse_time("until", params["until"]) if params.get("until") else None
        except ValueError as exc:
            return _problem(400, str(exc))
        since = since or (until or now) - DEFAULT_COUNT_PERIOD
        return ApiResponse(200, _count(context, since, until, now))

    return _with_context(context_factory, answer)


def _count(
    context: AppContext, since: datetime, until: datetime | None, now: datetime
) -> dict[str, Any]:
    by_state: dict[str, int] = {}
    by_route: dict[str, dict[str, int]] = {}
    totals = {"total": 0, "failed": 0, "stuck": 0}
    fields = ["state", "route", "received_at"]
    for row in context.store.record_fields(fields, since=since, until=until):
        state = TrackingState.parse(row["state"])
        route = row["route"] or "(no route)"
        received = datetime.fromisoformat(str(row["received_at"]))
        stuck = not state.is_terminal and now - received > STUCK_AFTER
        by_state[state.value] = by_state.get(state.value, 0) + 1
        per_route = by_route.setdefault(route, {"total": 0, "failed": 0, "stuck": 0})
        for bucket in (totals, per_route):
            bucket["total"] += 1
            bucket["failed"] += state in FAILED_STATES
            bucket["stuck"] += stuck
    return {
        "since": _time(since),
        "until": _time(until),
        **totals,
        "stuck_after_seconds": STUCK_AFTER.total_seconds(),
        "by_state": by_state,
        "by_route": by_route,
    }


def resubmit(
    context_factory: Callable[[], AppContext],
    key: str,
    headers: Mapping[str, str],
    body: bytes,
) -> ApiResponse:
    """``POST /api/messages/{id}/resubmit``: the request id from the ``Idempotency-Key``
    header or ``request_id`` in the JSON body; ``confirm`` (JSON true) for a risky file."""

    def answer(context: AppContext) -> ApiResponse:
        try:
            body_request_id, confirm = _resubmit_options(body)
        except BodyError as exc:
            return _problem(exc.status, str(exc))
        found = _find(context, key)
        if isinstance(found, ApiResponse):
            return found
        lowered = {name.lower(): value for name, value in headers.items()}
        request_id = lowered.get("idempotency-key") or body_request_id
        resubmitter = Resubmitter(
            context.store, context.enqueuer, context.inbound, context.blob_service
        )
        try:
            result = resubmitter.resubmit(
                found.row_key,
                request_id=request_id or "",
                confirm=confirm,
            )
        except ResubmitError as exc:
            return _problem(exc.status, str(exc))
        except AzureError as exc:
            _LOGGER.exception("resubmit failed record=%s request=%s", found.record_id, request_id)
            return _problem(
                503,
                f"storage failed during the resubmit ({safe_text(exc)}); send it again with the "
                "same request id: it finishes what was started and sends the file at most once",
            )
        view = _View.of(context, full_errors=False)
        new = result.resubmitted
        return ApiResponse(
            200,
            {
                "resubmitted_as": result.original.resubmitted_as,
                "request_id": result.original.resubmit_request,
                "original": record_json(result.original, view),
                "resubmitted": record_json(new, view) if new else None,
            },
        )

    return _with_context(context_factory, answer)


def _resubmit_options(body: bytes) -> tuple[str | None, bool]:
    """``request_id`` and ``confirm`` from a resubmit body (both optional).

    :raises BodyError: a body that is too large, not a JSON object, or has a field of the
        wrong type (a ``confirm`` of "true" must not be taken for false in silence).
    """
    options = json_object(body, example=_RESUBMIT_EXAMPLE)
    request_id = options.get("request_id")
    confirm = options.get("confirm", False)
    if request_id is not None and not isinstance(request_id, str):
        raise BodyError(
            400, f"request_id in the body is not a string; expected e.g. {_RESUBMIT_EXAMPLE}"
        )
    if not isinstance(confirm, bool):
        raise BodyError(
            400, f"confirm in the body is not true or false; expected e.g. {_RESUBMIT_EXAMPLE}"
        )
    return request_id, confirm


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
    try:
        schedule = context.store.schedule
        pending, oldest = schedule.backlog()
        checks["storage"] = {
            "ok": True,
            "pending": pending,
            "oldest_pending_since": _time(oldest),
            "last_tick": _time(schedule.last_tick()),
        }
    except Exception as exc:
        checks["storage"] = {"ok": False, "error": safe_text(exc)}
    try:
        context.credential.get_token(context.settings.d365.scope)
        checks["d365_token"] = {"ok": True}
    except Exception as exc:
        checks["d365_token"] = {"ok": False, "error": safe_text(exc)}
    else:
        checks["d365_access"] = check_access(context.client)
    healthy = all(check["ok"] for check in checks.values())
    return ApiResponse(200 if healthy else 503, {"healthy": healthy, "checks": checks})


def health_summary(settings: Settings) -> dict[str, Any]:
    """A JSON-ready description of ``settings``; holds no secret and no storage key."""
    return {
        "d365": _d365(settings.d365),
        "storage": _storage(settings.storage),
        "routes": [route.as_dict() for route in settings.routes],
        "export_routes": [route.name for route in settings.exports],
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
