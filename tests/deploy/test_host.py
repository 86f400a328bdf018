"""host.json choices, checked against the app's settings and routes, and .funcignore."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from types import ModuleType

from shared.config import parse_duration
from tests.deploy.bicep import BicepFile, top_level_keys

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = json.loads((REPO_ROOT / "host.json").read_text(encoding="utf-8"))


def _template_setting(name: str) -> str:
    function = BicepFile(REPO_ROOT / "infra" / "app" / "function.bicep")
    return top_level_keys(function.variable("integrationSettings")[1:-1])[name].strip("'")


def _clock(text: str) -> float:
    hours, minutes, seconds = (int(part) for part in text.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def test_host_version_and_extension_bundle() -> None:
    assert HOST["version"] == "2.0"
    assert HOST["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }


def test_function_timeout_outlasts_a_poller_tick() -> None:
    # A tick stops starting work after POLL_TICK_BUDGET; calls already started may still
    # take up to D365_HTTP_TIMEOUT (the read timeout) before the tick returns.
    budget = parse_duration(_template_setting("POLL_TICK_BUDGET")).total_seconds()
    read_timeout = parse_duration(_template_setting("D365_HTTP_TIMEOUT")).total_seconds()
    assert HOST["functionTimeout"] == "00:10:00"
    assert _clock(HOST["functionTimeout"]) > budget + read_timeout


def test_blob_trigger_concurrency_and_poison_threshold() -> None:
    blobs = HOST["extensions"]["blobs"]
    assert blobs == {"maxDegreeOfParallelism": 4, "poisonBlobThreshold": 5}


def test_routes_live_under_api() -> None:
    # The pipeline's smoke test and the docs call https://<host>/api/health.
    assert HOST["extensions"]["http"]["routePrefix"] == "api"


def test_logging_quiets_the_sdk_http_categories() -> None:
    levels = HOST["logging"]["logLevel"]
    assert levels["default"] == "Information"
    for category in ("Azure.Core", "Azure.Storage.Blobs", "Azure.Storage.Queues"):
        assert levels[category] == "Warning"


def test_no_application_insights_sdk_settings_under_opentelemetry() -> None:
    # logging.applicationInsights (samplingSettings...) configures the host's Application
    # Insights SDK, which telemetryMode OpenTelemetry replaces: such settings would do nothing.
    assert HOST["telemetryMode"] == "OpenTelemetry"
    assert "applicationInsights" not in HOST["logging"]


def test_funcignore_leaves_out_everything_the_package_leaves_out(script: ModuleType) -> None:
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    shipped = {*script.APP_FILES, *script.APP_PACKAGES}
    for pattern in patterns:
        assert not any(fnmatch.fnmatch(name, pattern) for name in shipped), pattern
    not_shipped = sorted(entry.name for entry in REPO_ROOT.iterdir() if entry.name not in shipped)
    published = [
        name
        for name in not_shipped
        if not any(fnmatch.fnmatch(name, pattern) for pattern in patterns)
    ]
    assert published == [], "add these to .funcignore (func publish would ship them)"
