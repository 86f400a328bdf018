"""HTTP API: status of tracked files, and the health check."""

import json

import azure.functions as func

from shared import status_api, telemetry
from shared.context import get_context

bp = func.Blueprint()


def _json(response: status_api.ApiResponse) -> func.HttpResponse:
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
    return _json(status_api.messages(get_context, message_id, dict(req.params)))


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@telemetry.invocation("health", trigger="http")
def health(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/health: settings valid, storage reachable, token obtainable, pending count."""
    return _json(status_api.health(get_context))
