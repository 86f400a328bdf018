"""The OpenAPI 3 description of the HTTP API (``GET /api/openapi.json``).

For API Management and any client generator; ``scripts/build_connector.py`` derives the
Power Platform custom connector (OpenAPI 2.0, ``connector/``) from it. Written out here
rather than generated, so it says what each route promises; tests check it with a
maintained validator and that every HTTP route of the app is in it.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

from shared.views.openapi_paths import paths
from shared.views.openapi_schemas import SCHEMAS, ref
from shared.views.signin import LOGIN_PATH, ROUTES

__all__ = ["BASE_PATH", "OPERATIONS", "document", "served"]

BASE_PATH = "/api"
"""Where the routes are: host.json's ``extensions.http.routePrefix``."""


OPERATIONS = {
    "listMessages": "http_status",
    "getMessage": "http_status",
    "resubmitMessage": "resubmit",
    "releaseLine": "release",
    "listAudit": "audit",
    "countMessages": "counts",
    "health": "health",
    "console": "console",
    "openapi": "openapi",
}
"""Each operation's HTTP function, whose entry in the route table says the role it needs."""

_ENTRA_SCHEME = {
    "type": "oauth2",
    "description": "HTTP_AUTH=entra: App Service authentication with Microsoft Entra ID. "
    "Programs (a managed identity, a service principal) use the client credentials flow for "
    "the app registration's application ID URI; people sign in through "
    f"{LOGIN_PATH}. The token's roles claim must hold the app role each operation names "
    "(Integration.Reader, or Integration.Operator which also allows all a reader may). "
    "Replace <client-id> with the app registration's client id (docs/auth.md).",
    "flows": {
        "clientCredentials": {
            "tokenUrl": "https://login.microsoftonline.com/organizations/oauth2/v2.0/token",
            "scopes": {"api://<client-id>/.default": "the app roles assigned to the program"},
        },
        "authorizationCode": {
            "authorizationUrl": "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize",
            "tokenUrl": "https://login.microsoftonline.com/organizations/oauth2/v2.0/token",
            "scopes": {"api://<client-id>/user_impersonation": "the signed-in person's app roles"},
        },
    },
}


def _with_access(all_paths: dict[str, Any]) -> dict[str, Any]:
    """Each operation with the answers of :func:`shared.views.signin.admit`: 401, 403 naming
    the app role, and 503 (in key mode the host answers 401 without a key, with no body)."""
    for item in all_paths.values():
        for operation in item.values():
            access = ROUTES[OPERATIONS[operation["operationId"]]]
            role = access.role
            # The console's page is HTML: its refusals are not part of a JSON contract.
            answer = _problem if role is not None else _bare
            answers = operation["responses"]
            answers["401"] = answer(
                "no function key (HTTP_AUTH=key), or nobody signed in (HTTP_AUTH=entra)"
            )
            answers.setdefault(
                "503",
                answer(
                    "settings invalid, or HTTP_AUTH=entra without App Service authentication on"
                ),
            )
            if role is not None:
                cross_site = ", or sent by a page of another site" if access.writes else ""
                answers["403"] = _problem(
                    f"HTTP_AUTH=entra: signed in without the app role {role.value}{cross_site}"
                )
    return all_paths


def _bare(description: str) -> dict[str, Any]:
    return {"description": description}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref("Problem")}}}


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.0 document of the API."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "D365 F&O recurring integrations: status and resubmit API",
            "version": "1.0.0",
            "description": "Files dropped into the inbound container, their fate in F&O "
            "(row errors included), and resubmitting them.",
        },
        "servers": [{"url": BASE_PATH}],
        "security": [{"functionKey": []}, {"functionKeyQuery": []}, {"entra": []}],
        "paths": _with_access(paths()),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
                "entra": _ENTRA_SCHEME,
            },
        },
    }


def served(request_url: str) -> dict[str, Any]:
    """The document as ``GET /api/openapi.json`` at ``request_url`` serves it: with the
    absolute server URL of that request.

    API Management takes an imported API's backend from ``servers`` and resolves a relative
    URL only against the URL it imported from, so a saved file would leave it empty. The
    query string (``?code=<key>``) and any user info are left out: no secret in a response.
    """
    parts = urlsplit(request_url)
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme not in ("http", "https") or not host:
        return document()
    return {**document(), "servers": [{"url": f"{parts.scheme}://{host}{BASE_PATH}"}]}
