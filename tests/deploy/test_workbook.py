"""Structural checks of the Azure Monitor workbook (infra/app/workbook.bicep), read as text like
the other templates (tests/deploy/bicep.py). Its query names are checked against the code in
tests/telemetry/test_alerts.py."""

from __future__ import annotations

import re
from pathlib import Path

from tests.deploy.bicep import BicepFile, Resource

INFRA = Path(__file__).resolve().parents[2] / "infra"
WORKBOOK = BicepFile(INFRA / "app" / "workbook.bicep")
MAIN = BicepFile(INFRA / "main.bicep")
# The panels issue 10 asks for, by item name.
PANELS = {
    "outcomes",
    "slowest-files",
    "row-errors",
    "d365-latency",
    "d365-throttling",
    "d365-calls",
}


def _workbook() -> Resource:
    (resource,) = [r for r in WORKBOOK.resources() if not r.existing]
    return resource


def _panels() -> str:
    return WORKBOOK.variable("panels")


def _queries() -> list[str]:
    return re.findall(r"^\s*query: '''\n(.*?)'''$", _panels(), re.MULTILINE | re.DOTALL)


def test_the_workbook_is_a_shared_workbook_on_application_insights() -> None:
    workbook = _workbook()
    assert (workbook.type, workbook.api_version) == ("Microsoft.Insights/workbooks", "2023-06-01")
    assert "kind: 'shared'" in workbook.body
    assert "category: 'workbook'" in workbook.body
    assert "sourceId: appInsights.id" in workbook.body
    # The portal reads serializedData as a JSON string: built from one Bicep object.
    assert "serializedData: string(workbookContent)" in workbook.body
    assert "version: 'Notebook/1.0'" in workbook.body
    assert "version: 'Notebook/1.0'" in WORKBOOK.variable("workbookContent")
    assert "fallbackResourceIds: [appInsights.id]" in WORKBOOK.variable("workbookContent")


def test_the_name_is_a_guid_stable_across_deployments() -> None:
    name = re.search(r"^\s*name: (.+)$", _workbook().body, re.MULTILINE)
    assert name
    assert name.group(1) == "guid(resourceGroup().id, applicationInsightsName, 'd365ri-workbook')"
    assert not re.search(r"newGuid|utcNow", WORKBOOK.code)


def test_main_deploys_the_workbook_once_on_the_monitoring_output() -> None:
    modules = [m for m in MAIN.modules() if m.path == "app/workbook.bicep"]
    assert len(modules) == 1
    (module,) = modules
    assert module.condition is None
    assert module.params == {
        "namePrefix": "namePrefix",
        "location": "location",
        "tags": "tags",
        "applicationInsightsName": "monitoring.outputs.applicationInsightsName",
    }


def test_every_panel_the_issue_asks_for_is_a_log_query_on_application_insights() -> None:
    keys = re.findall(r"^\s*key: '([\w-]+)'$", _panels(), re.MULTILINE)
    assert sorted(keys) == sorted(PANELS)
    assert len(_queries()) == len(PANELS)
    visualizations = re.findall(r"^\s*visualization: '(\w+)'$", _panels(), re.MULTILINE)
    assert set(visualizations) <= {"timechart", "table"}
    assert len(visualizations) == len(PANELS)
    item = WORKBOOK.variable("workbookContent")
    for line in (
        "version: 'KqlItem/1.0'",
        "queryType: 0",
        "resourceType: 'microsoft.insights/components'",
        "timeContextFromParameter: 'TimeRange'",
        "query: panel.query",
    ):
        assert line in item, line


def test_queries_use_only_the_declared_time_range_parameter() -> None:
    time_range = WORKBOOK.variable("timeRange")
    assert "name: 'TimeRange'" in time_range
    assert "type: 4" in time_range
    references = {ref for query in _queries() for ref in re.findall(r"\{(\w+)(?::\w+)?\}", query)}
    assert references == {"TimeRange"}


def test_queries_are_plain_multi_line_strings() -> None:
    # A Bicep ''' string takes no escapes and no interpolation: a quote or backslash in the
    # KQL would end it or reach Azure as written.
    for query in _queries():
        assert "'" not in query and "\\" not in query, query
        assert query.strip(), "empty query"
