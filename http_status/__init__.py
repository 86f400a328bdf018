"""The HTTP routes: a thin adapter from Azure Functions requests to :mod:`shared.views`.

Routes: tracked files (and export records), counts, resubmit, release of an ordered line, the
audit trail, the health check, the operator console, the OpenAPI document. Each first asks
:func:`shared.views.signin.admit` whether the caller may (``HTTP_AUTH``; the role each route
needs is in ``shared.views.signin.ROUTES``).
"""

import json
import os
from collections.abc import Mapping

import azure.functions as func

from shared import telemetry
from shared.config import HttpAuthMode, SettingsError, http_auth_mode
from shared.context import get_context
from shared.views import audit as audit_view
from shared.views import console, files, openapi, signin
from shared.views import counts as counts_view
from shared.views import health as health_view
from shared.views import release as release_view
from shared.views import resubmit as resubmit_view
from shared.views.response import ApiResponse


def _auth_level(environ: Mapping[str, str]) -> func.AuthLevel:
    """The routes' auth level, fixed when the host indexes the app (a changed app setting
    restarts it): in entra mode App Service authentication guards them, and Microsoft asks
    for ``anonymous`` behind app-level security; key, or an invalid HTTP_AUTH, keeps the key."""
    try:
        entra = http_auth_mode(environ) is HttpAuthMode.ENTRA
    except SettingsError:
        return func.AuthLevel.FUNCTION
    return func.AuthLevel.ANONYMOUS if entra else func.AuthLevel.FUNCTION


AUTH_LEVEL = _auth_level(os.environ)

bp = func.Blueprint()


def _json(response: ApiResponse) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(response.body, ensure_ascii=False),
        status_code=response.status,
        mimetype="application/json",
        charset="utf-8",
    )


def _admit(req: func.HttpRequest, function: str) -> signin.Admission:
    return signin.admit(function, dict(req.headers), os.environ)


@bp.function_name("http_status")
@bp.route(route="messages/{message_id?}", methods=["GET"], auth_level=AUTH_LEVEL)
@telemetry.invocation("http_status", trigger="http")
def http_status(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/messages/{message_id} and GET /api/messages?blob=|state=&route=&since=..."""
    if (refusal := _admit(req, "http_status").refusal) is not None:
        return _json(refusal)
    message_id = req.route_params.get("message_id")
    return _json(files.messages(get_context, message_id, dict(req.params)))


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=AUTH_LEVEL)
@telemetry.invocation("health", trigger="http")
def health(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/health: settings valid, storage reachable, token obtainable, pending count."""
    if (refusal := _admit(req, "health").refusal) is not None:
        return _json(refusal)
    return _json(health_view.health(get_context))


@bp.function_name("resubmit")
@bp.route(route="messages/{message_id}/resubmit", methods=["POST"], auth_level=AUTH_LEVEL)
@telemetry.invocation("resubmit", trigger="http")
def resubmit(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/messages/{id}/resubmit: copy a final file back into the inbound path, once
    per request id (Idempotency-Key header or request_id); confirm=true for a risky one."""
    admission = _admit(req, "resubmit")
    if admission.refusal is not None:
        return _json(admission.refusal)
    assert admission.actor is not None  # a route with a role admits only a known caller
    message_id = req.route_params.get("message_id", "")
    return _json(
        resubmit_view.resubmit(
            get_context, message_id, dict(req.headers), req.get_body(), actor=admission.actor
        )
    )


@bp.function_name("audit")
@bp.route(route="audit", methods=["GET"], auth_level=AUTH_LEVEL)
@telemetry.invocation("audit", trigger="http")
def audit(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/audit?since=&until=&person=&action=: operator actions, newest first."""
    if (refusal := _admit(req, "audit").refusal) is not None:
        return _json(refusal)
    return _json(audit_view.audit(get_context, dict(req.params)))


@bp.function_name("release")
@bp.route(route="messages/{message_id}/release", methods=["POST"], auth_level=AUTH_LEVEL)
@telemetry.invocation("release", trigger="http")
def release(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/messages/{id}/release: an ordered line goes on past the failed file that
    blocks it, once per request id (Idempotency-Key header or request_id)."""
    admission = _admit(req, "release")
    if admission.refusal is not None:
        return _json(admission.refusal)
    assert admission.actor is not None  # a route with a role admits only a known caller
    message_id = req.route_params.get("message_id", "")
    return _json(
        release_view.release(
            get_context, message_id, dict(req.headers), req.get_body(), actor=admission.actor
        )
    )


@bp.function_name("counts")
@bp.route(route="counts", methods=["GET"], auth_level=AUTH_LEVEL)
@telemetry.invocation("counts", trigger="http")
def counts(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/counts?since=&until=: files by state and route over a period."""
    if (refusal := _admit(req, "counts").refusal) is not None:
        return _json(refusal)
    return _json(counts_view.counts(get_context, dict(req.params)))


@bp.function_name("console")
@bp.route(route="console", methods=["GET"], auth_level=AUTH_LEVEL)
@telemetry.invocation("console", trigger="http")
def console_page(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/console: the operator console (one HTML page, its script and style inline)."""
    if (refusal := _admit(req, "console").refusal) is not None:
        return _json(refusal)
    page = console.page(http_auth_mode(os.environ))
    return func.HttpResponse(
        page.body, status_code=200, headers=dict(page.headers), mimetype="text/html"
    )


@bp.function_name("openapi")
@bp.route(route="openapi.json", methods=["GET"], auth_level=AUTH_LEVEL)
@telemetry.invocation("openapi", trigger="http")
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/openapi.json: the OpenAPI 3 description of this API, its server URL this
    request's own."""
    if (refusal := _admit(req, "openapi").refusal) is not None:
        return _json(refusal)
    return _json(ApiResponse(200, openapi.served(req.url)))
