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
from shared.views.openapi_schemas import SCHEMAS

__all__ = ["BASE_PATH", "document", "served"]

BASE_PATH = "/api"
"""Where the routes are: host.json's ``extensions.http.routePrefix``."""


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
        "security": [{"functionKey": []}, {"functionKeyQuery": []}],
        "paths": paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
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
