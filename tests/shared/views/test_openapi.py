"""The OpenAPI document against answers the views give: each one valid under the schema of its
status code (the live routes are fuzzed in tests/e2e/test_http_fuzz.py)."""

from __future__ import annotations

from typing import Any

import openapi_schema_validator

from shared.views.openapi import document


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
