"""HTTP API: status of tracked files."""

import azure.functions as func

bp = func.Blueprint()


@bp.function_name("http_status")
@bp.route(route="messages/{message_id?}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def http_status(req: func.HttpRequest) -> func.HttpResponse:
    """Placeholder until the status API lands."""
    raise NotImplementedError
