"""The HTTP routes: a thin adapter from Azure Functions requests to :mod:`shared.views`.

Routes: tracked files (and export records), counts, resubmit, release of an ordered line, the
audit trail, the health check, the operator console, the OpenAPI document.
"""

import json

import azure.functions as func

from shared import telemetry
from shared.context import get_context
from shared.tracking import Actor
from shared.views import audit as audit_view
from shared.views import console, files, openapi
from shared.views import counts as counts_view
from shared.views import health as health_view
from shared.views import release as release_view
from shared.views import resubmit as resubmit_view
from shared.views.response import ApiResponse

bp = func.Blueprint()


def _json(response: ApiResponse) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(response.body, ensure_ascii=False),
        status_code=response.status,
        mimetype="application/json",
        charset="utf-8",
    )


@bp.function_name("http_status")
@bp.route(route="messages/{message_id?}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@telemetry.invocation("http_status", trigger="http")
def http_status(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/messages/{message_id} and GET /api/messages?blob=|state=&route=&since=..."""
    message_id = req.route_params.get("message_id")
    return _json(files.messages(get_context, message_id, dict(req.params)))


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@telemetry.invocation("health", trigger="http")
def health(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/health: settings valid, storage reachable, token obtainable, pending count."""
    return _json(health_view.health(get_context))


@bp.function_name("resubmit")
@bp.route(
    route="messages/{message_id}/resubmit", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
@telemetry.invocation("resubmit", trigger="http")
def resubmit(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/messages/{id}/resubmit: copy a final file back into the inbound path, once
    per request id (Idempotency-Key header or request_id); confirm=true for a risky one."""
    message_id = req.route_params.get("message_id", "")
    # Key mode: the caller is whoever holds the key (sign-in hands the signed-in actor here).
    return _json(
        resubmit_view.resubmit(
            get_context, message_id, dict(req.headers), req.get_body(), actor=Actor.function_key()
        )
    )


@bp.function_name("audit")
@bp.route(route="audit", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@telemetry.invocation("audit", trigger="http")
def audit(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/audit?since=&until=&person=&action=: operator actions, newest first."""
    return _json(audit_view.audit(get_context, dict(req.params)))


@bp.function_name("release")
@bp.route(
    route="messages/{message_id}/release", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
@telemetry.invocation("release", trigger="http")
def release(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/messages/{id}/release: an ordered line goes on past the failed file that
    blocks it, once per request id (Idempotency-Key header or request_id)."""
    message_id = req.route_params.get("message_id", "")
    return _json(
        release_view.release(
            get_context,
            message_id,
            dict(req.headers),
            req.get_body(),
            actor=Actor.function_key(),
        )
    )


@bp.function_name("counts")
@bp.route(route="counts", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@telemetry.invocation("counts", trigger="http")
def counts(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/counts?since=&until=: files by state and route over a period."""
    return _json(counts_view.counts(get_context, dict(req.params)))


@bp.function_name("console")
@bp.route(route="console", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@telemetry.invocation("console", trigger="http")
def console_page(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/console: the operator console (one HTML page, its script and style inline)."""
    page = console.page()
    return func.HttpResponse(
        page.body, status_code=200, headers=dict(page.headers), mimetype="text/html"
    )


@bp.function_name("openapi")
@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@telemetry.invocation("openapi", trigger="http")
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/openapi.json: the OpenAPI 3 description of this API, its server URL this
    request's own."""
    return _json(ApiResponse(200, openapi.served(req.url)))
