"""PACKAGE_EXPORT_ROUTES: parsed, normalised, every problem listed at once, naming the key."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.config import RouteConfigError, Settings, SettingsError
from shared.config.package_exports import PackageExportRoutes
from tests.shared.config.test_settings import _env

GOOD = {
    "name": "customers-daily",
    "definition_group": "CustomersExport",
    "legal_entity": "usmf",
    "schedule": "0 0 2 * * *",
    "container": "d365-exports",
    "prefix": "customers/{company}/{date}/",
}


def _problems(routes: object) -> list[str]:
    with pytest.raises(RouteConfigError) as caught:
        PackageExportRoutes.from_json(json.dumps(routes))
    return list(caught.value.problems)


def test_a_route_is_normalised_with_its_defaults() -> None:
    (route,) = PackageExportRoutes.from_json(json.dumps([GOOD]))
    assert (route.legal_entity, route.schedule.expression) == ("USMF", "0 0 2 * * *")
    assert (route.unzip, route.re_execute, route.enabled) == (False, False, True)
    slot = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
    assert route.target(slot=slot, execution_id="x-1") == "customers/USMF/2026-03-04/x-1.zip"
    assert route.as_dict()["schedule"] == "0 0 2 * * *"


def test_absent_or_empty_is_no_package_exports() -> None:
    assert len(PackageExportRoutes.from_json(None)) == 0
    assert len(PackageExportRoutes.from_json(" [] ")) == 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"schedule": "0 0 2 * *  * *"},
            "PACKAGE_EXPORT_ROUTES[0].schedule: '0 0 2 * *  * *' has 7 fields; expected 6",
        ),
        (
            {"schedule": "0 0 25 * * *"},
            "PACKAGE_EXPORT_ROUTES[0].schedule: '0 0 25 * * *': hour field '25' is out of range",
        ),
        (
            {"legal_entity": "CONTOSO"},
            "PACKAGE_EXPORT_ROUTES[0].legal_entity: 'CONTOSO' is not a legal entity id",
        ),
        (
            {"definition_group": " "},
            "PACKAGE_EXPORT_ROUTES[0].definition_group: ' ' is not a data project name",
        ),
        (
            {"unzip": True},
            "PACKAGE_EXPORT_ROUTES[0].prefix: 'customers/{company}/{date}/' has no {message_id} "
            "while unzip is true",
        ),
        (
            {"prefix": "customers/{execution}/"},
            "PACKAGE_EXPORT_ROUTES[0].prefix: 'customers/{execution}/' uses the unknown "
            "placeholder(s) {execution}",
        ),
        ({"re_execute": "yes"}, "PACKAGE_EXPORT_ROUTES[0].re_execute: 'yes' is not true or false"),
        ({"activity_id": "x"}, "PACKAGE_EXPORT_ROUTES[0]: unknown key 'activity_id'"),
    ],
)
def test_each_problem_names_its_key_and_the_fix(change: dict[str, object], expected: str) -> None:
    problems = _problems([{**GOOD, **change}])
    assert any(p.startswith(expected) for p in problems), problems


def test_missing_keys_and_duplicate_names_are_listed_together() -> None:
    problems = _problems([{"name": "a"}, GOOD, {**GOOD, "name": "CUSTOMERS-daily"}])
    assert any("PACKAGE_EXPORT_ROUTES[0]" in p and "definition_group" in p for p in problems)
    assert any("used by two package export routes" in p for p in problems)


def test_a_name_an_export_route_has_and_an_import_container_are_refused() -> None:
    export = {
        "name": "customers-daily",
        "activity_id": "00000000-0000-0000-0000-00000000a004",
        "container": "d365-exports",
        "prefix": "out/",
    }
    env = _env(
        EXPORT_ROUTES=json.dumps([export]),
        PACKAGE_EXPORT_ROUTES=json.dumps([{**GOOD, "container": "d365-inbound"}]),
    )
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    text = str(caught.value)
    assert "the name is an export route's in EXPORT_ROUTES too" in text
    assert "container 'd365-inbound' is one of the app's import containers" in text
