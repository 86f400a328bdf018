"""connector/ (the Power Platform custom connector) and the OpenAPI 3 document for API
Management: generated, never drifting, valid against Microsoft's connector schemas, every
operation of the app in both documents, what the flow designer needs, real answers fitting
the connector's types, and docs/connector.md's flow and policy naming what exists (its
commands: tests/deploy/test_docs.py)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openapi_schema_validator
import pytest
import requests

from devtools.local_host import EasyAuth
from shared.tracking import ExportState, PackageExportState, TrackingState
from shared.views import openapi
from tests import fakes
from tests.deploy.conftest import REPO_ROOT, load_script
from tests.deploy.test_docs import code_blocks
from tests.e2e.conftest import App
from tests.e2e.test_export import export_route
from tests.e2e.test_ordered_lines import blocked_line
from tests.e2e.test_package_export import missed_slot, package_route
from tests.test_function_app import http_operations

build = load_script("build_connector")
CONNECTOR = REPO_ROOT / "connector"
SCHEMAS = Path(__file__).parent / "schema"
SWAGGER = json.loads((CONNECTOR / build.API_DEFINITION).read_text(encoding="utf-8"))
PROPERTIES = json.loads((CONNECTOR / build.API_PROPERTIES).read_text(encoding="utf-8"))
GUIDE = (REPO_ROOT / "docs" / "connector.md").read_text(encoding="utf-8")
HOST = json.loads((REPO_ROOT / "host.json").read_text(encoding="utf-8"))


# Third-party data files reach this project only through the steering side's shared/vendor/
# (beside the clone, also in CI); a copy here is taken first when someone placed one.
VENDOR_FOLDERS = (SCHEMAS, REPO_ROOT.parent / "shared" / "vendor")


def _microsoft_schema(name: str) -> dict[str, Any]:
    """A schema of microsoft/PowerPlatformConnectors as vendored (its ``//`` comments cut)."""
    found = [folder / name for folder in VENDOR_FOLDERS if (folder / name).is_file()]
    if not found:
        pytest.skip(
            f"{name} is not vendored yet (looked in tests/deploy/schema and ../shared/vendor): "
            "see tests/deploy/schema/README.md"
        )
    text = found[0].read_text(encoding="utf-8")
    # A comment outside a string runs to the end of its line; strings are kept whole.
    return json.loads(re.sub(r'("(?:\\.|[^"\\])*")|//[^\n]*', lambda m: m.group(1) or "", text))


def _swagger_errors(document: dict[str, Any]) -> list[jsonschema.ValidationError]:
    validator = jsonschema.Draft4Validator(_microsoft_schema("apiDefinition.swagger.schema.json"))
    return list(validator.iter_errors(document))


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def _schemas(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object under ``node`` (properties, items, additionalProperties)."""
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            yield f"{where}/{name}", sub
            yield from _schemas(sub, f"{where}/{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                yield from _schemas(node[key], f"{where}/{key}")


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return SWAGGER["definitions"][schema["$ref"].removeprefix("#/definitions/")]
    return schema


# --- generated, never drifting ----------------------------------------------------------------


@pytest.mark.parametrize("name", [build.API_DEFINITION, build.API_PROPERTIES])
def test_the_committed_connector_files_are_the_generated_ones(name: str) -> None:
    committed = (CONNECTOR / name).read_text(encoding="utf-8")
    assert committed == build.render(openapi.document())[name], (
        f"connector/{name} differs from what scripts/build_connector.py writes from "
        "shared/views/openapi.py: run `python scripts/build_connector.py` (never edit it by hand)"
    )


def test_the_script_writes_the_files_where_it_is_told(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "scripts/build_connector.py", "--output", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in (build.API_DEFINITION, build.API_PROPERTIES):
        assert (tmp_path / name).read_bytes() == (CONNECTOR / name).read_bytes()


# --- Microsoft's schemas -----------------------------------------------------------------------


def test_the_api_definition_validates_against_microsofts_schema() -> None:
    errors = _swagger_errors(SWAGGER)
    assert errors == [], [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors]


def test_the_api_properties_validate_against_microsofts_schema() -> None:
    schema = _microsoft_schema("paconn-apiProperties.schema.json")
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(PROPERTIES))
    assert errors == [], [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors]


def test_the_schema_refuses_the_openapi_3_document_and_a_oneof() -> None:
    # The schema bites: the OpenAPI 3 document itself fails it (39 errors when the connector
    # was built), and so does the connector with one oneOf put back.
    errors = _swagger_errors(json.loads(json.dumps(openapi.document())))
    assert any(e.message == "'swagger' is a required property" for e in errors)
    assert len(errors) > 10
    broken = copy.deepcopy(SWAGGER)
    ok = broken["paths"]["/messages/{message_id}"]["get"]["responses"]["200"]
    ok["schema"] = {"oneOf": [{"$ref": "#/definitions/Record"}, ok["schema"]]}
    assert _swagger_errors(broken)


# --- every operation in both documents ---------------------------------------------------------


def test_every_operation_of_the_app_is_in_both_documents() -> None:
    documents = {"openapi": openapi.document(), "connector": SWAGGER}
    for name, document in documents.items():
        listed = {(path, method.upper()) for path, method, _ in _operations(document)}
        assert http_operations() <= listed, (name, http_operations() - listed)
    ids = [{op["operationId"] for *_, op in _operations(d)} for d in documents.values()]
    assert ids[0] == ids[1]
    assert len(ids[1]) == len(list(_operations(SWAGGER)))  # unique


def test_both_documents_take_the_routes_under_host_jsons_route_prefix() -> None:
    prefix = "/" + HOST["extensions"]["http"]["routePrefix"]
    assert openapi.BASE_PATH == SWAGGER["basePath"] == prefix
    assert openapi.document()["servers"] == [{"url": prefix}]


# --- what the flow designer needs -------------------------------------------------------------


def test_one_api_key_sent_in_the_x_functions_key_header() -> None:
    assert SWAGGER["securityDefinitions"] == {
        "API Key": {"type": "apiKey", "in": "header", "name": "x-functions-key"}
    }
    assert SWAGGER["security"] == [{"API Key": []}]
    key = PROPERTIES["properties"]["connectionParameters"]["api_key"]
    assert key["type"] == "securestring"
    assert key["uiDefinition"]["constraints"]["required"] == "true"
    names = {p["name"].lower() for *_, op in _operations(SWAGGER) for p in op.get("parameters", [])}
    assert not names & {"code", "x-functions-key"}


def test_the_host_is_a_placeholder_that_the_connection_fills() -> None:
    assert SWAGGER["host"] == "DefinedInConnectionParameters"
    assert SWAGGER["schemes"] == ["https"]
    properties = PROPERTIES["properties"]
    host = properties["connectionParameters"]["hostName"]
    assert (host["type"], host["uiDefinition"]["constraints"]["required"]) == ("string", "true")
    [policy] = properties["policyTemplateInstances"]
    assert policy["templateId"] == "dynamichosturl"
    assert policy["parameters"]["x-ms-apimTemplateParameter.urlTemplate"] == (
        f"https://@connectionParameters('hostName'){SWAGGER['basePath']}"
    )


def test_every_parameter_and_field_has_a_title() -> None:
    titled = [
        *(p for *_, op in _operations(SWAGGER) for p in op.get("parameters", [])),
        *(s for d in SWAGGER["definitions"].values() for _, s in _schemas(d)),
        *(
            s
            for *_, op in _operations(SWAGGER)
            for r in op["responses"].values()
            for _, s in _schemas(r.get("schema", {}))
        ),
    ]
    assert len(titled) > 100
    for item in titled:
        summary = item.get("x-ms-summary", "")
        # Title case, at most 80 characters (the connector string guidance).
        assert re.fullmatch(r"[A-Z0-9][A-Za-z0-9]*( [A-Z0-9][A-Za-z0-9]*)*", summary), item
        assert len(summary) <= 80
    assert build.title("blob_etag") == "Blob ETag"
    assert build.title("Idempotency-Key") == "Idempotency Key"
    assert build.title("ResubmitRequest") == "Resubmit Request"


def test_the_console_and_document_routes_are_internal_and_only_they() -> None:
    internal = {
        (path, method)
        for path, method, operation in _operations(SWAGGER)
        if operation.get("x-ms-visibility") == "internal"
    }
    assert internal == {("/console", "get"), ("/openapi.json", "get")}


def test_strings_follow_microsofts_connector_string_guidance() -> None:
    info = SWAGGER["info"]
    assert len(info["title"]) <= 30
    for text in (info["title"], info["description"]):
        assert not re.search(r"\bAPI\b", text)
    for *_, operation in _operations(SWAGGER):
        summary = operation["summary"]
        assert len(summary) <= 80 and "/" not in summary and summary[-1].isalnum(), summary
        assert summary[0].isupper() and summary[1:] == summary[1:].lower().replace(
            "openapi", "OpenAPI"
        )
        assert re.fullmatch(r"[a-z][A-Za-z0-9]*", operation["operationId"])
        assert operation["description"]


def test_answers_are_typed_objects_without_oneof() -> None:
    assert '"oneOf"' not in json.dumps(SWAGGER) and '"anyOf"' not in json.dumps(SWAGGER)
    for path, method, operation in _operations(SWAGGER):
        if "application/json" not in operation.get("produces", []):
            continue
        ok = _resolve(operation["responses"]["200"]["schema"])
        assert ok["type"] == "object", (path, method)
        if path != "/openapi.json":  # the document itself: any object
            assert ok["properties"], (path, method)


def test_one_answer_of_several_shapes_has_the_fields_of_each() -> None:
    components = openapi.document()["components"]["schemas"]
    definitions = SWAGGER["definitions"]
    either = definitions["RecordOrExportRecord"]
    record, export = components["Record"], components["ExportRecord"]
    assert set(either["properties"]) == set(record["properties"]) | set(export["properties"])
    assert either["required"] == [n for n in record["required"] if n in export["required"]]
    exported = dict.fromkeys(s.value for s in [*ExportState, *PackageExportState])
    assert either["properties"]["state"]["enum"] == [
        *(s.value for s in TrackingState),
        *(s for s in exported if s not in {t.value for t in TrackingState}),
    ]
    assert either["properties"]["message_id"]["x-nullable"] is True  # null in a Record
    listing = definitions["PageOrRecordOrExportPage"]
    assert set(listing["properties"]) == {"items", "continuation"} | set(record["properties"])
    assert listing["properties"]["items"]["items"] == {"$ref": "#/definitions/RecordOrExportRecord"}
    assert "required" not in listing


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["paths"]["/counts"]["get"].update(operationId="countEverything"),
            "operation 'countEverything' has no action name; add one to ACTION_NAMES",
        ),
        (
            lambda d: d["components"]["schemas"]["Counts"]["properties"].update(
                total={"anyOf": [{"type": "integer"}, {"type": "string"}]}
            ),
            "components/schemas/Counts/total: 'anyOf' has no form in a connector",
        ),
        (
            lambda d: d["components"]["securitySchemes"].pop("functionKey"),
            "expected one API key in the x-functions-key header",
        ),
        (
            lambda d: d["paths"]["/counts"]["get"]["parameters"][0].update(
                schema={"$ref": "#/components/schemas/Counts"}
            ),
            "GET /counts parameter since: a parameter needs a primitive type",
        ),
    ],
)
def test_what_has_no_connector_form_is_named(change: Callable, message: str) -> None:
    document = copy.deepcopy(openapi.document())
    change(document)
    with pytest.raises(build.ConnectorError, match=re.escape(message)):
        build.swagger(document)


# --- API Management ------------------------------------------------------------------------------


def test_the_served_document_has_the_requests_absolute_server_url(
    app_factory: Callable[..., App],
) -> None:
    key = "fake-function-key-in-the-query"
    app = app_factory(function_key=key)
    answer = requests.get(f"{app.host.http_url}/api/openapi.json?code={key}", timeout=30)
    assert answer.status_code == 200
    assert answer.json()["servers"] == [{"url": f"{app.host.http_url}/api"}]
    assert key not in answer.text


def test_the_server_url_leaves_out_user_info_and_query() -> None:
    served = openapi.served("https://user:pw@fn.example.net/api/openapi.json?code=fake-key")
    assert served["servers"] == [{"url": "https://fn.example.net/api"}]
    assert served["paths"] == openapi.document()["paths"]
    assert openapi.served("not a url")["servers"] == [{"url": "/api"}]


# --- real answers fit the connector's types -------------------------------------------------------


def _strict(node: Any) -> Any:
    """A connector schema as JSON Schema: ``x-nullable`` allows null, and an object with
    properties has no others (a field the connector lacks is one the designer cannot offer)."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    strict = {k: _strict(v) for k, v in node.items() if not k.startswith("x-")}
    if "properties" in node:
        strict["properties"] = {k: _strict(v) for k, v in node["properties"].items()}
        strict.setdefault("additionalProperties", False)
    if node.get("x-nullable"):
        if "$ref" in strict:
            return {"anyOf": [strict, {"type": "null"}]}
        strict["type"] = [strict["type"], "null"]
        if "enum" in strict:
            strict["enum"] = [*strict["enum"], None]
    return strict


def _fits(path: str, method: str, answer: requests.Response, status: int = 200) -> None:
    assert answer.status_code == status, answer.text
    _body_fits(path, method, answer.json(), str(status))


def _body_fits(path: str, method: str, body: Any, status: str = "200") -> None:
    schema = SWAGGER["paths"][path][method]["responses"][status]["schema"]
    definitions = {name: _strict(d) for name, d in SWAGGER["definitions"].items()}
    jsonschema.validate(body, {**_strict(schema), "definitions": definitions})


def test_real_answers_fit_the_connectors_types(
    app_factory: Callable[..., App], unique_name: str
) -> None:
    app = app_factory(EXPORT_ROUTES=json.dumps([export_route(unique_name)]))
    blob = app.upload_sample("customers/USMF/customers-with-errors.xml")
    record = app.run_until_terminal([blob])[blob]
    assert record["errors"] and record["message_id"]
    message_id = app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID, rows=2)
    assert app.host.run_timer_once() >= 2  # poll_status and export_jobs

    _fits("/messages", "get", app.get("messages", blob=blob))
    _fits("/messages", "get", app.get("messages"))
    _fits("/messages", "get", app.get("messages", direction="export"))
    _fits("/messages/{message_id}", "get", app.get(f"messages/{record['message_id']}"))
    _fits("/messages/{message_id}", "get", app.get(f"messages/{message_id}", direction="export"))
    _fits("/counts", "get", app.get("counts"))
    _fits("/health", "get", app.get("health"))
    resubmitted = requests.post(
        f"{app.host.http_url}/api/messages/{record['record_key']}/resubmit",
        headers={"x-functions-key": app.function_key, "Idempotency-Key": "connector-1"},
        json={"confirm": True},
        timeout=60,
    )
    _fits("/messages/{message_id}/resubmit", "post", resubmitted)
    _fits("/messages/{message_id}", "get", app.get(f"messages/{record['record_key']}"))
    _fits("/audit", "get", app.get("audit"))
    assert app.get("audit").json()["items"][0]["request_id"] == "connector-1"
    # The strict form bites: a field the connector does not describe fails.
    with pytest.raises(jsonschema.ValidationError, match="'surprise' was unexpected"):
        jsonschema.validate(
            {"state": "Processed", "history": [], "surprise": 1},
            {**_strict(SWAGGER["definitions"]["RecordOrExportRecord"]), "definitions": {}},
        )


def test_the_answers_of_later_routes_fit_the_connectors_types(
    app_factory: Callable[..., App], unique_name: str
) -> None:
    # Added after the connector: the release of an ordered line, counts by hour, and the
    # records of package exports (kind package, the execution id as its id).
    app = app_factory(PACKAGE_EXPORT_ROUTES=json.dumps([package_route(unique_name)]))
    app.d365.knobs.package_export_seconds = 0
    app.d365.knobs.package_url_delay_seconds = 0
    missed_slot(app, days=1)
    _, first = blocked_line(app)
    released = requests.post(
        f"{app.host.http_url}/api/messages/{first['record_key']}/release",
        headers={"x-functions-key": app.function_key, "Idempotency-Key": "connector-2"},
        timeout=60,
    )
    _fits("/messages/{message_id}/release", "post", released)
    hourly = app.get("counts", interval="hour")
    assert hourly.json()["buckets"]
    _fits("/counts", "get", hourly)
    for _ in range(20):
        exports = app.get("messages", direction="export").json()["items"]
        if exports and exports[0]["state"] == "Delivered":
            break
        app.host.run_timer_once()
    [package] = exports
    assert (package["kind"], package["state"]) == ("package", "Delivered")
    _fits("/messages", "get", app.get("messages", direction="export"))
    _fits(
        "/messages/{message_id}",
        "get",
        app.get(f"messages/{package['message_id']}", direction="export"),
    )
    _fits("/audit", "get", app.get("audit", action="release"))


def test_the_refusals_of_entra_mode_fit_the_connectors_types(
    app_factory: Callable[..., App],
) -> None:
    # First: the stand-in of App Service authentication sets WEBSITE_AUTH_ENABLED for the test.
    unprotected = app_factory(HTTP_AUTH="entra")  # App Service authentication not on
    answer = requests.get(f"{unprotected.host.http_url}/api/counts", timeout=30)
    _fits("/counts", "get", answer, 503)
    # The platform lets anonymous requests through: the app's own 401 and 403 show.
    auth = EasyAuth(require_authentication=False)
    signed_in = app_factory(HTTP_AUTH="entra", easy_auth=auth)
    url = f"{signed_in.host.http_url}/api/counts"
    _fits("/counts", "get", requests.get(url, timeout=30), 401)
    no_role = {"Authorization": f"Bearer {auth.token('nina')}"}
    _fits("/counts", "get", requests.get(url, headers=no_role, timeout=30), 403)


def test_a_resubmit_answer_before_the_new_record_is_tracked_fits_both_documents() -> None:
    # "resubmitted" is null until the new version is tracked. OpenAPI 3.0 ignores nullable
    # beside a $ref, so the document must say it another way.
    path = "/messages/{message_id}/resubmit"
    record = {"record_key": "k", "blob": "b.xml", "state": "Processed", "terminal": True}
    body = {"resubmitted_as": "k2", "request_id": "r-1", "original": {**record, "history": []}}
    body["resubmitted"] = None
    document = openapi.document()
    answer = document["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]
    schema = {**answer["schema"], "components": document["components"]}
    openapi_schema_validator.validate(body, schema, cls=openapi_schema_validator.OAS30Validator)
    _body_fits(path, "post", body)


# --- docs/connector.md ----------------------------------------------------------------------------


def _actions(actions: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, action in actions.items():
        yield name, action
        yield from _actions(action.get("actions", {}))
        yield from _actions(action.get("else", {}).get("actions", {}))


def test_the_example_flow_uses_what_the_connector_has() -> None:
    [flow] = [json.loads(b) for b in code_blocks(GUIDE, "json")]
    actions = dict(_actions(flow["actions"]))
    by_id = {op["operationId"]: op for *_, op in _operations(SWAGGER)}
    answers = {}
    for name, action in actions.items():
        if action["type"] != "OpenApiConnection":
            continue
        operation = by_id[action["inputs"]["host"]["operationId"]]
        parameters = {p["name"] for p in operation.get("parameters", [])}
        assert set(action["inputs"]["parameters"]) <= parameters, name
        answers[name] = _resolve(operation["responses"]["200"]["schema"])
    assert answers
    text = json.dumps(flow)
    fields = re.findall(r"body\('(\w+)'\)\?\['(\w+)'\]", text)
    assert {field for _, field in fields} >= {"terminal", "error_count", "errors"}
    for action, field in fields:
        if action in answers:
            assert field in answers[action]["properties"], (action, field)
    # Select's item() reads the items of the row errors it is given.
    errors = _resolve(answers["Get_the_latest_record_of_the_blob"]["properties"]["errors"]["items"])
    select = actions["Select_the_row_errors"]["inputs"]
    assert select["from"].endswith("?['errors']")
    for value in select["select"].values():
        [field] = re.findall(r"item\(\)\?\['(\w+)'\]", value)
        assert field in errors["properties"], field


def test_the_guide_lists_every_action_a_flow_can_use() -> None:
    # A route added after the guide was written must show up in its table of actions.
    rows = set(re.findall(r"^\| ([A-Z][^|]*?) \| `(?:GET|POST) /api/", GUIDE, re.MULTILINE))
    visible = {
        op["summary"] for *_, op in _operations(SWAGGER) if op.get("x-ms-visibility") != "internal"
    }
    assert rows == visible


def test_the_guide_says_the_connector_takes_a_function_key_only() -> None:
    # With HTTP_AUTH=entra a function key opens nothing: the guide says so, and what to use.
    [section] = re.findall(r"^## \d\. With HTTP_AUTH=entra\n(.*?)(?=^## |\Z)", GUIDE, re.M | re.S)
    assert "a function key opens nothing" in section
    assert "HTTP_AUTH=key" in section
    assert '<authentication-managed-identity resource="api://<SIGNIN_CLIENT_ID>"' in section
    assert "Integration.Reader" in section and "Integration.Operator" in section
    assert "docs/auth.md" in section


def test_the_api_management_policy_sets_the_key_from_a_named_value() -> None:
    [xml] = code_blocks(GUIDE, "xml")
    header = ET.fromstring(xml).find("./inbound/set-header")  # noqa: S314 - our own docs
    assert header is not None
    assert (header.get("name"), header.get("exists-action")) == ("x-functions-key", "override")
    [named_value] = re.findall(r"\{\{([\w-]+)\}\}", header.findtext("value", ""))
    assert f"--named-value-id {named_value} " in GUIDE
    assert "--secret true" in GUIDE
