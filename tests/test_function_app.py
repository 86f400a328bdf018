"""The app as the Functions host indexes it: functions, bindings, parameter names."""

import inspect
import json
import re

import pytest

from function_app import app

FUNCTIONS = {f.get_function_name(): f for f in app.get_functions()}


def _trigger(name: str) -> dict:
    return json.loads(FUNCTIONS[name].get_function_json())["bindings"][0]


def http_operations() -> set[tuple[str, str]]:
    """Every (path, method) the app's HTTP functions answer, the path as an OpenAPI document
    writes it (``/messages/{message_id}``); an optional last segment (``{name?}``) gives the
    route with and without it."""
    operations = set()
    for name in FUNCTIONS:
        trigger = _trigger(name)
        if trigger["type"] != "httpTrigger":
            continue
        route = "/" + trigger["route"]
        forms = {route}
        if "?}" in route:
            forms = {re.sub(r"/\{\w+\?\}$", "", route), route.replace("?}", "}")}
        operations |= {(form, method) for form in forms for method in trigger["methods"]}
    return operations


def test_the_functions_are_indexed_with_host_valid_names() -> None:
    assert set(FUNCTIONS) == {
        "enqueue_blob",
        "poll_status",
        "http_status",
        "health",
        "resubmit",
        "release",
        "counts",
        "audit",
        "console",
        "openapi",
        "export_jobs",
        "retention",
    }
    for name in FUNCTIONS:
        assert re.fullmatch(r"[a-z][a-z0-9_\-]{0,127}", name, re.IGNORECASE)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_python_parameters_match_binding_names(name: str) -> None:
    # The worker refuses a function whose parameters differ from its bindings; get_functions()
    # does not check it, so this test does.
    function = FUNCTIONS[name]
    bindings = {b.name for b in function.get_bindings() if b.name != "$return"}
    parameters = set(inspect.signature(function.get_user_function()).parameters) - {"context"}
    assert parameters == bindings
    for binding in bindings:
        assert re.fullmatch(r"(?!.*__)[A-Za-z_][A-Za-z0-9_]{0,127}", binding)


def test_blob_trigger_uses_event_grid_and_the_integration_storage_connection() -> None:
    trigger = _trigger("enqueue_blob")
    assert trigger["type"] == "blobTrigger"
    assert trigger["source"] == "EventGrid"
    assert trigger["connection"] == "IntegrationStorage"
    assert trigger["path"] == "%INBOUND_CONTAINER%/{name}"


def test_blob_trigger_parameter_is_the_sdk_blob_client_type() -> None:
    from azurefunctions.extensions.bindings.blob import BlobClient

    function = FUNCTIONS["enqueue_blob"].get_user_function()
    annotation = inspect.signature(function).parameters["client"].annotation
    assert annotation in (BlobClient, "blob.BlobClient")


@pytest.mark.parametrize(
    ("name", "setting"),
    [
        ("poll_status", "POLL_SCHEDULE"),
        ("export_jobs", "EXPORT_SCHEDULE"),
        ("retention", "RETENTION_SCHEDULE"),
    ],
)
def test_timer_reads_its_schedule_from_the_setting_and_does_not_run_on_startup(
    name: str, setting: str
) -> None:
    trigger = _trigger(name)
    assert trigger["type"] == "timerTrigger"
    assert trigger["schedule"] == f"%{setting}%"
    assert trigger["runOnStartup"] is False


@pytest.mark.parametrize(
    ("name", "route", "method"),
    [
        ("http_status", "messages/{message_id?}", "GET"),
        ("health", "health", "GET"),
        ("resubmit", "messages/{message_id}/resubmit", "POST"),
        ("counts", "counts", "GET"),
        ("console", "console", "GET"),
        ("openapi", "openapi.json", "GET"),
    ],
)
def test_http_routes_need_a_function_key(name: str, route: str, method: str) -> None:
    trigger = _trigger(name)
    assert trigger["type"] == "httpTrigger"
    assert trigger["route"] == route
    assert trigger["authLevel"] == "FUNCTION"
    assert trigger["methods"] == [method]
