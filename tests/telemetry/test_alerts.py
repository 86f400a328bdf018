"""The alert queries read names the code emits: metric names, log and span attributes, events."""

from __future__ import annotations

import re
from pathlib import Path

from shared import telemetry
from shared.tracking import TrackingState
from tests.deploy.bicep import BicepFile, Resource

ROOT = Path(__file__).resolve().parents[2]
ALERTS = BicepFile(ROOT / "infra" / "app" / "alerts.bicep")
ALERTS_TEXT = (ROOT / "infra" / "app" / "alerts.bicep").read_text(encoding="utf-8")
CODE = "\n".join(
    path.read_text(encoding="utf-8")
    for path in [
        ROOT / "shared" / "telemetry.py",
        ROOT / "shared" / "enqueuer.py",
        ROOT / "shared" / "poller.py",
        ROOT / "shared" / "d365" / "_client.py",
    ]
)


def _resource(symbol: str) -> Resource:
    return next(r for r in ALERTS.resources() if r.symbol == symbol)


def _queries() -> list[str]:
    return re.findall(r"^\s*query: '(.*)'$", ALERTS_TEXT, re.MULTILINE)


def test_every_log_alert_has_a_query_a_description_and_the_action_group() -> None:
    queries = _queries()
    assert len(queries) == 4
    assert ALERTS_TEXT.count("description: '") >= 6
    rules = _resource("queryAlerts")
    assert "actionGroups: [actionGroup.id]" in rules.body
    assert "scopes: [appInsights.id]" in rules.body
    assert _resource("poisonQueueAlert").type == "Microsoft.Insights/metricAlerts"
    expiry = _resource("secretExpiry")
    assert "'Microsoft.KeyVault.SecretNearExpiry'" in expiry.body
    assert "endpointType: 'MonitorAlert'" in expiry.body


def test_metric_names_in_the_queries_are_the_codes() -> None:
    emitted = set(re.findall(r'create_\w+\(\s*"(d365ri\.[^"]+)"', CODE))
    used = {name for q in _queries() for name in re.findall(r'name == "([^"]+)"', q)}
    assert used == {"d365ri.pending.oldest_age", "d365ri.poll.tick.duration"}
    assert used <= emitted


def test_dimensions_and_events_in_the_queries_are_the_codes() -> None:
    span_attributes = set(re.findall(r'"(d365\.[a-z_]+)"', CODE))
    used = set()
    for query in _queries():
        used |= set(re.findall(r"customDimensions\.(\w+)", query))
        used |= set(re.findall(r'customDimensions\["([^"]+)"\]', query))
    assert used == {"event", "state", "blob", "route", "message_id", "d365.operation"}
    for name in used:
        assert name in telemetry.LOG_KEYS or name == "event" or name in span_attributes, name
    events = {e for q in _queries() for e in re.findall(r'customDimensions\.event\) == "(\w+)"', q)}
    assert events == {"file_finished"}
    assert 'event="file_finished"' in CODE


def test_the_failure_alert_names_every_failed_final_state() -> None:
    failed = re.search(r"var failedStates = '(.*)'", ALERTS_TEXT)
    assert failed
    states = set(re.findall(r'"(\w+)"', failed.group(1)))
    assert states == {
        TrackingState.PROCESSED_WITH_ERRORS.value,
        TrackingState.PRE_PROCESSING_ERROR.value,
        TrackingState.POST_PROCESSING_FAILED.value,
        TrackingState.ENQUEUE_FAILED.value,
        TrackingState.TIMED_OUT.value,
    }
