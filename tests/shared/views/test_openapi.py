"""The OpenAPI document against answers the views give: each one valid under the schema of its
status code (the live routes are fuzzed in tests/e2e/test_http_fuzz.py)."""

from __future__ import annotations

from typing import Any

import openapi_schema_validator

from devtools.local_host import IDENTITIES, principal_headers
from shared.views.openapi import OPERATIONS, document
from shared.views.signin import ROUTES, admit


def _schema(path: str, method: str, status: str) -> dict[str, Any]:
    spec = document()
    content = spec["paths"][path][method]["responses"][status]["content"]
    return {**content["application/json"]["schema"], "components": spec["components"]}


def test_an_empty_page_is_a_valid_listing() -> None:
    # An empty page is both a Page and an ExportPage: under oneOf it was invalid.
    openapi_schema_validator.validate(
        {"items": [], "continuation": None},
        _schema("/messages", "get", "200"),
        cls=openapi_schema_validator.OAS30Validator,
    )


def test_resubmit_documents_the_413_of_a_body_over_the_cap() -> None:
    answer = {"error": "the body is 100,000 bytes; at most 65,536 bytes (64 KiB) are accepted"}
    schema = _schema("/messages/{message_id}/resubmit", "post", "413")
    openapi_schema_validator.validate(answer, schema, cls=openapi_schema_validator.OAS30Validator)


def test_both_modes_security_is_described_with_the_role_of_each_operation() -> None:
    spec = document()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["functionKey"] == {"type": "apiKey", "in": "header", "name": "x-functions-key"}
    assert schemes["entra"]["type"] == "oauth2"
    assert "api://<client-id>/.default" in schemes["entra"]["flows"]["clientCredentials"]["scopes"]
    assert {"entra": []} in spec["security"]
    operations = [op for item in spec["paths"].values() for op in item.values()]
    assert {op["operationId"] for op in operations} == set(OPERATIONS)
    for operation in operations:
        role = ROUTES[OPERATIONS[operation["operationId"]]].role
        assert "401" in operation["responses"]
        assert ("403" in operation["responses"]) == (role is not None)
        if role is not None:
            assert role.value in operation["responses"]["403"]["description"]


def test_the_refusals_of_entra_mode_fit_the_document() -> None:
    environ = {"HTTP_AUTH": "entra", "WEBSITE_AUTH_ENABLED": "True"}
    reader = principal_headers(next(i for i in IDENTITIES if i.key == "riya"))
    answers = {
        ("/messages/{message_id}/resubmit", "post", "403"): admit("resubmit", reader, environ),
        ("/messages/{message_id}/release", "post", "403"): admit("release", reader, environ),
        ("/counts", "get", "401"): admit("counts", {}, environ),
        ("/audit", "get", "401"): admit("audit", {}, environ),
        ("/health", "get", "503"): admit("health", {}, {"HTTP_AUTH": "entra"}),
    }
    for (path, method, status), admission in answers.items():
        assert admission.refusal is not None and str(admission.refusal.status) == status
        openapi_schema_validator.validate(
            admission.refusal.body,
            _schema(path, method, status),
            cls=openapi_schema_validator.OAS30Validator,
        )
