"""The alert and workbook queries read names the code emits: metric names, log, span and metric
attributes, events."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from shared import telemetry
from shared.tracking import TrackingState
from shared.views.counts import FAILED_STATES
from tests.deploy.bicep import BicepFile, Resource

ROOT = Path(__file__).resolve().parents[2]
ALERTS = BicepFile(ROOT / "infra" / "app" / "alerts.bicep")
ALERTS_TEXT = (ROOT / "infra" / "app" / "alerts.bicep").read_text(encoding="utf-8")
WORKBOOK = BicepFile(ROOT / "infra" / "app" / "workbook.bicep")
# Every module of the app: an event or metric an alert reads may be emitted from any room.
SOURCES = sorted((ROOT / "shared").rglob("*.py"))
# The modules that record metrics: the app's own, the F&O client's.
METRIC_SOURCES = [
    ROOT / "shared" / "telemetry.py",
    ROOT / "shared" / "clients" / "d365" / "_tracing.py",
]
CODE = "\n".join(path.read_text(encoding="utf-8") for path in SOURCES)


def _resource(symbol: str) -> Resource:
    return next(r for r in ALERTS.resources() if r.symbol == symbol)


def _queries() -> list[str]:
    return re.findall(r"^\s*query: '(.*)'$", ALERTS_TEXT, re.MULTILINE)


def _workbook_queries() -> list[str]:
    panels = WORKBOOK.variable("panels")
    return re.findall(r"^\s*query: '''\n(.*?)'''$", panels, re.MULTILINE | re.DOTALL)


def _table(query: str) -> str:
    """The Application Insights table a query reads (each reads one)."""
    (table,) = set(re.findall(r"\b(traces|dependencies|customMetrics)\b", query))
    return table


def _dimensions(query: str) -> set[str]:
    return set(re.findall(r"customDimensions\.(\w+)", query)) | set(
        re.findall(r'customDimensions\["([^"]+)"\]', query)
    )


def _calls(tree: ast.AST, names: set[str]) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) in names
    ]


def _literal_keys(node: ast.AST) -> set[str]:
    return {
        key.value
        for key in getattr(node, "keys", [])
        if isinstance(key, ast.Constant) and isinstance(key.value, str)
    }


def _log_attributes() -> set[str]:
    """Every attribute a log record gets through ``record_ids`` or ``log_ids``: keyword
    arguments and the keys of a ``**{...}`` literal."""
    found = set(telemetry.LOG_KEYS)
    wrappers = {"record_ids", "log_ids"}
    for path in SOURCES:
        for call in _calls(ast.parse(path.read_text(encoding="utf-8")), wrappers):
            for keyword in call.keywords:
                found |= {keyword.arg} if keyword.arg else _literal_keys(keyword.value)
    return found


def _metric_attributes() -> set[str]:
    """Keys of the attribute dicts the metric sources pass to their instruments (a literal, or
    a name bound to one in the same function)."""
    found: set[str] = set()
    trees = [ast.parse(path.read_text(encoding="utf-8")) for path in METRIC_SOURCES]
    functions = (n for tree in trees for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))
    for function in functions:
        bound = {
            target.id: node.value
            for node in ast.walk(function)
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for call in _calls(function, {"add", "record", "set"}):
            for argument in call.args[1:]:
                value = bound.get(argument.id) if isinstance(argument, ast.Name) else argument
                found |= _literal_keys(value)
    return found


def _emitted(table: str) -> set[str]:
    """The custom dimensions the code puts on rows of ``table``."""
    if table == "traces":
        return _log_attributes() | {"event"}
    if table == "dependencies":
        return set(re.findall(r'"(d365\.[a-z_]+)"', CODE))
    return _metric_attributes()


def test_every_log_alert_has_a_query_a_description_and_the_action_group() -> None:
    queries = _queries()
    assert len(queries) == 5
    assert ALERTS_TEXT.count("description: '") >= 6
    rules = _resource("queryAlerts")
    assert "actionGroups: [actionGroup.id]" in rules.body
    assert "scopes: [appInsights.id]" in rules.body
    assert _resource("poisonQueueAlert").type == "Microsoft.Insights/metricAlerts"
    expiry = _resource("secretExpiry")
    assert "'Microsoft.KeyVault.SecretNearExpiry'" in expiry.body
    assert "endpointType: 'MonitorAlert'" in expiry.body


def _metric_names(queries: list[str]) -> set[str]:
    return {name for q in queries for name in re.findall(r'"(d365ri\.[\w.]+)"', q)}


def test_metric_names_in_the_queries_are_the_codes() -> None:
    emitted = set(re.findall(r'create_\w+\(\s*"(d365ri\.[^"]+)"', CODE))
    used = _metric_names(_queries())
    assert used == {"d365ri.pending.oldest_age", "d365ri.poll.tick.duration"}
    in_workbook = _metric_names(_workbook_queries())
    assert in_workbook == {"d365ri.files", "d365ri.d365.calls", "d365ri.d365.retries"}
    assert used | in_workbook <= emitted


def test_dimensions_and_events_in_the_queries_are_the_codes() -> None:
    used = set().union(*map(_dimensions, _queries()))
    assert used == {
        "event",
        "state",
        "blob",
        "route",
        "message_id",
        "reason",
        "gave_up",
        "cause",
        "d365.operation",
    }
    queries = _queries() + _workbook_queries()
    for query in queries:
        unknown = _dimensions(query) - _emitted(_table(query))
        assert unknown == set(), f"{_table(query)} rows carry no {unknown}: {query}"
    events = {e for q in queries for e in re.findall(r'customDimensions\.event\) == "(\w+)"', q)}
    assert events == {"file_finished", "export_failed"}
    assert 'event="file_finished"' in CODE
    assert 'event="export_failed"' in CODE


def test_the_name_checks_see_what_the_code_emits() -> None:
    # The readers above find the attributes the workbook relies on, so a rename shows there.
    assert {"error_count", "event", *telemetry.LOG_KEYS} <= _emitted("traces")
    assert {"state", "route", "operation", "status_code", "ok", "skipped", "kind"} == _emitted(
        "customMetrics"
    )
    assert {"d365.operation", "d365.attempt"} <= _emitted("dependencies")


def test_the_failure_alert_names_every_failed_final_state() -> None:
    failed = re.search(r"var failedStates = '(.*)'", ALERTS_TEXT)
    assert failed
    states = set(re.findall(r'"(\w+)"', failed.group(1)))
    # Every state the status API counts as failed but Rejected, which this alert leaves out
    # (a file no route takes never reached F&O), so a new failed state cannot be missed here.
    assert states == {state.value for state in FAILED_STATES - {TrackingState.REJECTED}}
