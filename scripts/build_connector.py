"""Build the Power Platform custom connector of the HTTP API.

Usage::

    python scripts/build_connector.py [--output connector]

Writes ``apiDefinition.swagger.json`` and ``apiProperties.json``, the two files of a custom
connector (``paconn create --api-def ... --api-prop ...``), from
``shared.views.openapi.document()``, the document ``GET /api/openapi.json`` serves. Never edit
them by hand:
``tests/deploy/test_connector.py`` regenerates both and fails when the committed files differ.

Power Platform imports only OpenAPI 2.0, so the OpenAPI 3 document is converted, and the
conversion adds what the flow designer needs (the rules are Microsoft's connector string
guidance, learn.microsoft.com/connectors/custom-connectors/connector-string-guidance):

- one API-key connection parameter sent as the ``x-functions-key`` header (the ``?code=``
  scheme is left out: one key, one place);
- a placeholder ``host``: apiProperties' ``dynamichosturl`` policy takes the function app's
  host name from the connection, as Microsoft's connectors to per-customer hosts do (an
  import without apiProperties sets the host in the connector's General tab instead);
- an action name (``summary``) per operation from ``ACTION_NAMES``, ``x-ms-summary`` (title
  case, from the name) on every parameter and field, ``x-ms-visibility: internal`` on the
  operations of ``INTERNAL`` (the console page and this document: no use in a flow);
- no ``oneOf``: an answer that takes one of several shapes becomes one object with the fields
  of all of them (a field is required only where every shape requires it), named after them
  (``RecordOrExportRecord``), so the designer offers every field as dynamic content without a
  Parse JSON step.

Anything with no OpenAPI 2.0 form raises :class:`ConnectorError` naming where it is.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from shared.views import openapi  # noqa: E402 - needs the repository root on the path

DEFAULT_OUTPUT = REPO_ROOT / "connector"
API_DEFINITION = "apiDefinition.swagger.json"
API_PROPERTIES = "apiProperties.json"

TITLE = "D365 FO Recurring Integrations"
"""The connector's name: at most 30 characters, without the word API."""
PLACEHOLDER_HOST = "DefinedInConnectionParameters"
"""The ``host`` of Microsoft's connectors whose host is a connection parameter."""
HOST_PARAMETER = "hostName"
KEY_PARAMETER = "api_key"
"""The connection parameter Power Platform gives an API-key security definition."""
SECURITY_NAME = "API Key"
KEY_HEADER = "x-functions-key"
ACTION_NAMES = {
    "listMessages": "List tracked files or get the latest record of a blob",
    "getMessage": "Get a tracked file with its row errors",
    "resubmitMessage": "Resubmit a final file",
    "releaseLine": "Release an ordered line",
    "countMessages": "Count files by state and route",
    "listAudit": "List operator actions by time and person",
    "health": "Check the health of the integration",
    "console": "Open the operator console",
    "openapi": "Get the OpenAPI document",
}
"""The name the designer shows for each operation: sentence case, at most 80 characters."""
INTERNAL = frozenset({"console", "openapi"})

_SCHEMA_KEYWORDS = frozenset(
    {
        "type", "format", "title", "description", "default", "enum", "example", "readOnly",
        "multipleOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems",
        "minProperties", "maxProperties", "required",
    }
)  # fmt: skip
"""Keywords an OpenAPI 2.0 schema takes as they are in OpenAPI 3."""
_PARAMETER_KEYWORDS = _SCHEMA_KEYWORDS - {"title", "readOnly", "example", "required"} | {"items"}
_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch"})
_OPERATION_KEYWORDS = frozenset(
    {"operationId", "summary", "description", "parameters", "requestBody", "responses"}
)
_COMPONENT = "#/components/schemas/"
_WORDS = {"id": "ID", "etag": "ETag", "d365": "D365", "api": "API", "json": "JSON"}


class ConnectorError(ValueError):
    """The OpenAPI 3 document has something the connector cannot express; says where."""


def title(name: str) -> str:
    """The title-case ``x-ms-summary`` of a parameter or field name (``blob_etag``: Blob ETag)."""
    words = re.split(r"[_\-\s]+|(?<=[a-z0-9])(?=[A-Z])", name)
    return " ".join(_WORDS.get(word.lower(), word[:1].upper() + word[1:]) for word in words if word)


def swagger(document: Mapping[str, Any]) -> dict[str, Any]:
    """The connector's API definition (OpenAPI 2.0) of an OpenAPI 3 ``document``."""
    converter = _Converter(document.get("components", {}).get("schemas", {}))
    definitions = {
        name: converter.schema(schema, f"components/schemas/{name}")
        for name, schema in converter.components.items()
    }
    paths = {path: converter.path_item(item, path) for path, item in document["paths"].items()}
    info = document["info"]
    return {
        "swagger": "2.0",
        "info": {"title": TITLE, "description": info["description"], "version": info["version"]},
        "host": PLACEHOLDER_HOST,
        "basePath": openapi.BASE_PATH,
        "schemes": ["https"],
        "paths": paths,
        "definitions": {**definitions, **converter.merged},
        "securityDefinitions": {
            SECURITY_NAME: {"type": "apiKey", "in": "header", "name": _key_header(document)}
        },
        "security": [{SECURITY_NAME: []}],
    }


def api_properties() -> dict[str, Any]:
    """The connector's apiProperties.json: the connection's two parameters and the policy
    that sends each call to the host of the connection."""
    return {
        "properties": {
            "connectionParameters": {
                HOST_PARAMETER: {
                    "type": "string",
                    "uiDefinition": {
                        "displayName": "Function app host",
                        "description": "The host name of the function app, e.g. "
                        "contoso-d365.azurewebsites.net (no https://, no path)",
                        "tooltip": "The function app's default domain in the Azure portal",
                        "constraints": {"tabIndex": 1, "required": "true"},
                    },
                },
                KEY_PARAMETER: {
                    "type": "securestring",
                    "uiDefinition": {
                        "displayName": "Function key",
                        "description": f"A function key of the app, sent as {KEY_HEADER}",
                        "tooltip": "The function app's App keys in the Azure portal",
                        "constraints": {"tabIndex": 2, "clearText": False, "required": "true"},
                    },
                },
            },
            "iconBrandColor": "#0078D4",
            "capabilities": ["actions"],
            "policyTemplateInstances": [
                {
                    "templateId": "dynamichosturl",
                    "title": "Function app host",
                    "parameters": {
                        "x-ms-apimTemplateParameter.urlTemplate": (
                            f"https://@connectionParameters('{HOST_PARAMETER}'){openapi.BASE_PATH}"
                        )
                    },
                }
            ],
        }
    }


def render(document: Mapping[str, Any]) -> dict[str, str]:
    """The connector's files, name to text, as they are committed."""
    return {
        API_DEFINITION: _json_text(swagger(document)),
        API_PROPERTIES: _json_text(api_properties()),
    }


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def _key_header(document: Mapping[str, Any]) -> str:
    schemes = document.get("components", {}).get("securitySchemes", {}).values()
    headers = [s["name"] for s in schemes if s.get("type") == "apiKey" and s.get("in") == "header"]
    if headers != [KEY_HEADER]:
        raise ConnectorError(
            f"components/securitySchemes: expected one API key in the {KEY_HEADER} header "
            f"(the connection's key), found {headers}"
        )
    return KEY_HEADER


@dataclass
class _Converter:
    """OpenAPI 3 parts to OpenAPI 2.0 ones; collects the definitions that merging makes."""

    components: Mapping[str, Any]
    merged: dict[str, Any] = field(default_factory=dict)

    def path_item(self, source: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The operations of one path."""
        other = sorted(set(source) - _METHODS)
        if other:
            raise ConnectorError(f"{where}: write {', '.join(other)} on each operation instead")
        return {m: self.operation(op, f"{m.upper()} {where}") for m, op in source.items()}

    def operation(self, source: Mapping[str, Any], where: str) -> dict[str, Any]:
        """One operation, with its action name, titles and visibility."""
        other = sorted(set(source) - _OPERATION_KEYWORDS)
        if other:
            raise ConnectorError(f"{where}: {', '.join(other)} has no form in the connector")
        operation_id = source.get("operationId", "")
        if operation_id not in ACTION_NAMES:
            raise ConnectorError(
                f"{where}: operation {operation_id!r} has no action name; add one to "
                "ACTION_NAMES in scripts/build_connector.py (sentence case, at most 80 "
                "characters, no '/', ending in a letter or digit)"
            )
        description = " ".join(filter(None, (source.get("summary"), source.get("description"))))
        parameters = [
            self.parameter(p, f"{where} parameter {p.get('name')}")
            for p in source.get("parameters", [])
        ]
        operation: dict[str, Any] = {
            "operationId": operation_id,
            "summary": ACTION_NAMES[operation_id],
            "description": description,
        }
        if "requestBody" in source:
            body, consumes = self.request_body(source["requestBody"], f"{where} request body")
            operation["consumes"] = consumes
            parameters.append(body)
        if parameters:
            operation["parameters"] = parameters
        responses: dict[str, Any] = {}
        produces: list[str] = []
        for status, response in source["responses"].items():
            responses[status], media = self.response(response, f"{where} response {status}")
            produces += [m for m in media if m not in produces]
        if produces:
            operation["produces"] = produces
        operation["responses"] = responses
        if operation_id in INTERNAL:
            operation["x-ms-visibility"] = "internal"
        return operation

    def parameter(self, source: Mapping[str, Any], where: str) -> dict[str, Any]:
        """A path, query or header parameter: its schema's keywords flattened into it."""
        if "$ref" in source:
            raise ConnectorError(f"{where}: write the parameter inline, not as a $ref")
        schema = self.schema(source.get("schema", {"type": "string"}), where)
        if schema.get("type") not in ("string", "integer", "number", "boolean", "array"):
            raise ConnectorError(f"{where}: a parameter needs a primitive type, not {schema}")
        extra = sorted(set(schema) - _PARAMETER_KEYWORDS - {"x-nullable"})
        if extra:
            raise ConnectorError(f"{where}: a parameter cannot have {', '.join(extra)}")
        return {
            "name": source["name"],
            "in": source["in"],
            "required": source.get("required", False),
            **({"description": source["description"]} if "description" in source else {}),
            **{k: v for k, v in schema.items() if k in _PARAMETER_KEYWORDS},
            "x-ms-summary": title(source["name"]),
        }

    def request_body(self, source: Mapping[str, Any], where: str) -> tuple[dict, list[str]]:
        """The body parameter of a request body, and the media type it consumes."""
        [(media, content)] = self._content(source, where).items()
        schema = content["schema"]
        name = schema.get("$ref", "").removeprefix(_COMPONENT) or "body"
        parameter = {
            "name": "body",
            "in": "body",
            "required": source.get("required", False),
            **({"description": source["description"]} if "description" in source else {}),
            "schema": self.schema(schema, where),
            "x-ms-summary": title(name),
        }
        return parameter, [media]

    def response(self, source: Mapping[str, Any], where: str) -> tuple[dict, list[str]]:
        """A response, and the media type it produces."""
        response: dict[str, Any] = {"description": source["description"]}
        content = self._content(source, where)
        if content:
            [body] = content.values()
            response["schema"] = self.schema(body["schema"], where)
        return response, list(content)

    @staticmethod
    def _content(source: Mapping[str, Any], where: str) -> Mapping[str, Any]:
        content = source.get("content", {})
        if len(content) > 1:
            raise ConnectorError(
                f"{where}: one media type per body in a connector, not {', '.join(content)}"
            )
        return content

    def schema(self, source: Mapping[str, Any], where: str) -> dict[str, Any]:
        """A schema: refs to definitions, ``nullable`` as ``x-nullable``, titled fields,
        and ``oneOf`` (or an ``anyOf`` of components) merged into one object."""
        for union in ("oneOf", "anyOf"):
            alternatives = source.get(union)
            if alternatives and (union == "oneOf" or all("$ref" in a for a in alternatives)):
                rest = {k: v for k, v in source.items() if k != union}
                return {**self.one_of(alternatives, where), **self.schema(rest, where)}
        converted: dict[str, Any] = {}
        for key, value in source.items():
            if key == "$ref":
                converted[key] = "#/definitions/" + self._component_name(value, where)
            elif key == "nullable":
                if value:
                    converted["x-nullable"] = True
            elif key == "properties":
                converted[key] = {
                    name: {**self.schema(sub, f"{where}/{name}"), "x-ms-summary": title(name)}
                    for name, sub in value.items()
                }
            elif key in ("items", "additionalProperties") and isinstance(value, Mapping):
                converted[key] = self.schema(value, f"{where}/{key}")
            elif key in _SCHEMA_KEYWORDS or key == "additionalProperties":
                converted[key] = value
            else:
                raise ConnectorError(
                    f"{where}: {key!r} has no form in a connector's OpenAPI 2.0 schema"
                )
        return converted

    def one_of(self, alternatives: Sequence[Mapping[str, Any]], where: str) -> dict[str, Any]:
        """One object with the fields of every alternative; a named definition when they
        are all components (``PageOrRecordOrExportPage``)."""
        names = [a.get("$ref", "").removeprefix(_COMPONENT) for a in alternatives]
        resolved = [self._resolve(a, where) for a in alternatives]
        if not all(names):
            return self.schema(_union(resolved, where), where)
        name = "Or".join(names)
        if name not in self.merged:
            self.merged[name] = {}  # taken first: a merge that meets itself refers to it
            union = {
                **_union(resolved, f"{where} ({name})"),
                "description": f"The fields of {', '.join(names)} in one object: an answer "
                "fills those of its kind (see the operation's description).",
            }
            self.merged[name] = self.schema(union, f"definitions/{name}")
        return {"$ref": f"#/definitions/{name}"}

    def _resolve(self, schema: Mapping[str, Any], where: str) -> Mapping[str, Any]:
        if "$ref" not in schema:
            return schema
        return self.components[self._component_name(schema["$ref"], where)]

    def _component_name(self, ref: str, where: str) -> str:
        name = ref.removeprefix(_COMPONENT)
        if ref == name or name not in self.components:
            raise ConnectorError(f"{where}: {ref!r} is not a schema of components/schemas")
        return name


def _union(schemas: Sequence[Mapping[str, Any]], where: str) -> dict[str, Any]:
    """The narrowest one schema that every one of ``schemas`` fits (OpenAPI 3 in and out)."""
    first = schemas[0]
    if all(s == first for s in schemas):
        return dict(first)
    if any("$ref" in s or "oneOf" in s for s in schemas):
        return {"oneOf": list(schemas)}
    types = {s.get("type") for s in schemas}
    if len(types) > 1:
        raise ConnectorError(f"{where}: cannot merge the types {sorted(map(str, types))}")
    union: dict[str, Any] = {}
    for key in dict.fromkeys(k for s in schemas for k in s):
        values = [s[key] for s in schemas if key in s]
        if key == "properties":
            names = dict.fromkeys(n for v in values for n in v)
            union[key] = {
                n: _union([v[n] for v in values if n in v], f"{where}/{n}") for n in names
            }
        elif key == "required":
            union[key] = [n for n in values[0] if all(n in s.get(key, ()) for s in schemas)]
        elif key == "nullable":
            union[key] = any(values)
        elif key in ("items", "additionalProperties") and len(values) == len(schemas):
            union[key] = _union(values, f"{where}/{key}")
        elif key == "enum" and len(values) == len(schemas):
            union[key] = list(dict.fromkeys(e for v in values for e in v))
        elif key == "description":
            union[key] = "; ".join(dict.fromkeys(values))
        elif len(values) == len(schemas) and all(v == values[0] for v in values):
            union[key] = values[0]
        # Otherwise a constraint some alternatives lack: the union drops it.
    if not union.get("required", True):
        del union["required"]
    return union


def main(argv: Sequence[str] | None = None) -> int:
    """Write the connector's files into ``--output``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="folder to write")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    for name, text in render(openapi.document()).items():
        (args.output / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
