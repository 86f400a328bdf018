"""EXPORT_ROUTES and EXPORT_SCHEDULE: parsed, normalised, every problem listed at once."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.config import RouteConfigError, Settings, SettingsError
from shared.config.exports import ExportRoute, ExportRoutes
from tests import fakes
from tests.shared.config.test_settings import _env

GOOD = {
    "name": "customers-out",
    "activity_id": "{00000000-0000-0000-0000-00000000A004}",
    "container": "d365-exports",
    "prefix": "customers/{company}/{date}/",
    "company": "usmf",
}


def _problems(routes: object) -> list[str]:
    with pytest.raises(RouteConfigError) as caught:
        ExportRoutes.from_json(json.dumps(routes))
    return list(caught.value.problems)


def test_a_route_is_normalised_with_its_defaults() -> None:
    (route,) = ExportRoutes.from_json(json.dumps([GOOD]))
    assert route == ExportRoute(
        name="customers-out",
        activity_id=fakes.EXPORT_ACTIVITY_ID,
        container="d365-exports",
        prefix="customers/{company}/{date}/",
        company="USMF",
    )
    assert (route.unzip, route.extension, route.max_messages, route.enabled) == (
        False,
        ".zip",
        100,
        True,
    )


@pytest.mark.parametrize("text", [None, "", "  ", "[]"])
def test_absent_or_empty_is_no_exports(text: str | None) -> None:
    assert len(ExportRoutes.from_json(text)) == 0


def test_placeholders_are_filled_per_message() -> None:
    route = ExportRoute.from_dict({**GOOD, "prefix": "{company}/{date}/{message_id}/"})
    when = datetime(2026, 12, 1, 23, 59, tzinfo=UTC)
    assert route.folder(dequeued_at=when, message_id="abc") == "USMF/2026-12-01/abc/"


def test_every_problem_of_every_route_is_listed() -> None:
    problems = _problems(
        [
            {"name": "a b", "activity_id": "x", "container": "Bad_", "prefix": "/p", "zzz": 1},
            {**GOOD, "company": None, "unzip": True},
            {"name": "n", "activity_id": GOOD["activity_id"]},
            {**GOOD, "prefix": "c/{when}/", "max_messages": 0, "enabled": "yes"},
            {**GOOD, "extension": "zip"},
            GOOD,
            GOOD,
        ]
    )
    assert problems == [
        "EXPORT_ROUTES[0]: unknown key 'zzz'; expected one of name, activity_id, container, "
        "prefix, company, unzip, extension, max_messages, enabled",
        "EXPORT_ROUTES[0].name: 'a b' is not a simple name; expected 1-64 letters, digits, "
        "'-' or '_', e.g. customers",
        "EXPORT_ROUTES[0].activity_id: 'x' is not a GUID; expected the recurring data job's "
        "activity ID from Data management > Manage scheduled data jobs, e.g. "
        "6d31e09f-0249-459f-94f0-aad9c2c47b64",
        "EXPORT_ROUTES[0].container: 'Bad_' is not a valid container name; expected 3-63 "
        "lower-case letters, digits and single hyphens, e.g. d365-exports",
        "EXPORT_ROUTES[0].prefix: '/p' does not end with '/' or starts with '/'; expected a "
        "folder path ending in '/', e.g. customers/{company}/{date}/ (placeholders: "
        "{company}, {date}, {message_id})",
        "EXPORT_ROUTES[1].company: None is not text",
        "EXPORT_ROUTES[1].company: missing while the prefix holds {company}; the dequeue "
        'answer names no legal entity, so set the company the job exports, e.g. "company": '
        '"USMF"',
        "EXPORT_ROUTES[1].prefix: 'customers/{company}/{date}/' has no {message_id} while "
        "unzip is true; the files of two exports would overwrite each other: add a "
        "{message_id}/ folder",
        "EXPORT_ROUTES[2].container: missing",
        "EXPORT_ROUTES[2].prefix: missing",
        "EXPORT_ROUTES[3].prefix: 'c/{when}/' uses the unknown placeholder(s) {when}; expected "
        "a folder path ending in '/', e.g. customers/{company}/{date}/ (placeholders: "
        "{company}, {date}, {message_id})",
        "EXPORT_ROUTES[3].max_messages: 0 is not a whole number from 1 to 1000",
        "EXPORT_ROUTES[3].enabled: 'yes' is not true or false",
        "EXPORT_ROUTES[4].extension: 'zip' is not a file suffix; expected e.g. .zip or .xml",
        "EXPORT_ROUTES: name 'customers-out' is used by two export routes; each job is "
        "dequeued by one route",
        "EXPORT_ROUTES: activity_id '00000000-0000-0000-0000-00000000a004' is used by two "
        "export routes; each job is dequeued by one route",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[{", "EXPORT_ROUTES: is not valid JSON"),
        ('{"name": "x"}', "EXPORT_ROUTES: {'name': 'x'} is not a JSON list"),
        ("[1]", "EXPORT_ROUTES[0]: 1 is not an object"),
    ],
)
def test_malformed_json_is_named(text: str, problem: str) -> None:
    with pytest.raises(RouteConfigError) as caught:
        ExportRoutes.from_json(text)
    assert caught.value.problems[0].startswith(problem)


def test_settings_read_the_exports_and_their_schedule() -> None:
    settings = Settings.from_env(
        _env(EXPORT_ROUTES=json.dumps([GOOD]), EXPORT_SCHEDULE="0 */10 * * * *")
    )
    assert [route.name for route in settings.exports] == ["customers-out"]
    assert settings.export_schedule == "0 */10 * * * *"
    assert Settings.from_env(_env()).export_schedule == "0 */5 * * * *"
    assert len(Settings.from_env(_env()).exports) == 0


def test_settings_list_export_problems_with_the_others() -> None:
    routes = [{**GOOD, "container": "d365-inbound"}, {**GOOD, "name": "b", "prefix": 3}]
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            _env(EXPORT_ROUTES=json.dumps(routes), EXPORT_SCHEDULE="often", POLL_CONCURRENCY="0")
        )
    problems = caught.value.problems
    assert any(p.startswith("EXPORT_ROUTES[1].prefix: 3 is empty") for p in problems), problems
    assert any(p.startswith("EXPORT_SCHEDULE: 'often'") for p in problems), problems
    assert any(p.startswith("POLL_CONCURRENCY") for p in problems), problems
    routes = [{**GOOD, "container": "d365-inbound"}]
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(_env(EXPORT_ROUTES=json.dumps(routes)))
    assert list(caught.value.problems) == [
        "EXPORT_ROUTES: export route 'customers-out': container 'd365-inbound' is one of the "
        "app's import containers (inbound, archive, errors); exported files there would be "
        "enqueued or archived: use a container of its own, e.g. d365-exports"
    ]


def test_a_misspelled_export_setting_is_named() -> None:
    with pytest.raises(SettingsError, match="did you mean EXPORT_ROUTES"):
        Settings.from_env(_env(EXPORT_ROUTS="[]"))


def test_the_readme_export_route_example_is_valid() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    section = readme.split("An export route (one entry of `EXPORT_ROUTES`):", 1)[1]
    block = section.split("```json\n", 1)[1].split("```", 1)[0]
    (route,) = ExportRoutes.from_json(f"[{block}]")
    assert (route.activity_id, route.company, route.extension) == (
        fakes.EXPORT_ACTIVITY_ID,
        "USMF",
        ".xml",
    )


def test_an_export_route_may_not_take_an_import_routes_job() -> None:
    env = _env()
    import_id = json.loads(env["D365_ROUTES"])[0]["activity_id"]
    routes = [{**GOOD, "activity_id": import_id}]
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**env, "EXPORT_ROUTES": json.dumps(routes)})
    (problem,) = caught.value.problems
    assert problem.startswith("EXPORT_ROUTES: export route 'customers-out': activity_id ")
    assert "a recurring data job either imports or exports" in problem
