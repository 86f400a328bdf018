"""What ``GET /api/audit`` answers: the operator actions, newest first, filtered by time or person.

The parameters are read as ``GET /api/messages`` reads its own (:mod:`shared.views.params`),
and the listing is paged with the same continuation token (:mod:`shared.views.pages`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.context import AppContext
from shared.tracking import AuditEntry
from shared.views import pages
from shared.views.guard import with_context
from shared.views.params import check_names, limit_param, time_param
from shared.views.response import ApiResponse, json_time, problem

__all__ = ["PARAMS", "TEXT_LIMIT", "audit", "audit_json"]

PARAMS = ("since", "until", "person", "action", "limit", pages.PARAM)
TEXT_LIMIT = 256
"""The longest ``person`` or ``action`` accepted (a display name is kept up to this)."""


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    """The public JSON form of an audit entry."""
    return {
        "audit_key": entry.row_key,
        "action": entry.action,
        "actor": entry.actor.to_dict(),
        "at": json_time(entry.at),
        "request_id": entry.request_id,
        "targets": list(entry.targets),
        "subject": entry.subject,
        "outcome": entry.outcome.value,
        "detail": entry.detail,
        "completed_at": json_time(entry.completed_at),
    }


def audit(context_factory: Callable[[], AppContext], params: Mapping[str, str]) -> ApiResponse:
    """``GET /api/audit?since=&until=&person=&action=&limit=&continuation=``."""

    def answer(context: AppContext) -> ApiResponse:
        try:
            page = context.audit.list_entries(**_query(params))
        except ValueError as exc:
            return problem(400, str(exc))
        return ApiResponse(200, pages.page_json(map(audit_json, page.records), page.continuation))

    return with_context(context_factory, answer)


def _query(params: Mapping[str, str]) -> dict[str, Any]:
    """The store's filters from ``params``, checked in the order they are listed in."""
    check_names(params, PARAMS)
    return {
        "since": time_param(params, "since"),
        "until": time_param(params, "until"),
        "person": _text_param(params, "person", "an object id or a display name"),
        "action": _text_param(params, "action", "an action's name, e.g. resubmit"),
        "limit": limit_param(params),
        "continuation": pages.continuation(params),
    }


def _text_param(params: Mapping[str, str], name: str, expected: str) -> str | None:
    """A free text filter; None when absent or blank.

    :raises ValueError: longer than :data:`TEXT_LIMIT`.
    """
    text = params.get(name, "").strip()
    if len(text) > TEXT_LIMIT:
        raise ValueError(
            f"{name} is {len(text):,} characters long; expected {expected} of at most "
            f"{TEXT_LIMIT} characters"
        )
    return text or None
