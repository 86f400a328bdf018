"""Routes: parsing D365_ROUTES, every configuration error, and blob path resolution."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.routing import (
    RejectReason,
    Route,
    RouteConfigError,
    RouteTable,
    RoutingError,
    normalise_guid,
    parse_byte_size,
)

CUSTOMERS_ID = "aaaaaaaa-0000-4000-8000-000000000001"
JOURNAL_ID = "aaaaaaaa-0000-4000-8000-000000000002"
PACKAGE_ID = "aaaaaaaa-0000-4000-8000-000000000003"


def _route(**overrides: Any) -> dict[str, Any]:
    route = {
        "name": "customers",
        "prefix": "customers/{company}/",
        "activity_id": CUSTOMERS_ID,
        "entity": "CustomersV3",
    }
    route.update(overrides)
    return route


def _table(*routes: dict[str, Any]) -> RouteTable:
    return RouteTable.from_json(json.dumps(list(routes)))


@pytest.fixture
def table() -> RouteTable:
    return _table(
        _route(extensions=[".xml", ".CSV"]),
        _route(
            name="customers-usmf-special",
            prefix="customers/USMF/special/",
            activity_id=JOURNAL_ID,
            company="USMF",
        ),
        _route(name="journal", prefix="general-journal/{company}/", entity="General journal"),
        _route(
            name="packages",
            prefix="packages/USMF/",
            activity_id=PACKAGE_ID,
            entity=None,
            company="USMF",
        ),
        _route(name="parked", prefix="parked/", company="DEMF", enabled=False),
        _route(name="deep", prefix="deep/{company}/in/", max_bytes="2MiB"),
    )


# -- resolution ----------------------------------------------------------------------------


def test_company_comes_from_the_company_folder(table: RouteTable) -> None:
    match = table.resolve("customers/USMF/customers-2024.xml")
    assert match.route.name == "customers"
    assert match.route.activity_id == CUSTOMERS_ID
    assert match.company == "USMF"
    assert match.file_name == "customers-2024.xml"
    assert match.blob_path == "customers/USMF/customers-2024.xml"


def test_longest_prefix_wins(table: RouteTable) -> None:
    match = table.resolve("customers/USMF/special/file.xml")
    assert match.route.name == "customers-usmf-special"
    assert match.company == "USMF"


def test_literal_segment_beats_company_placeholder_of_equal_length() -> None:
    table = _table(
        _route(name="any", prefix="x/{company}/"),
        _route(name="fixed", prefix="x/USMF/", activity_id=JOURNAL_ID),
    )
    assert table.resolve("x/USMF/a.csv").route.name == "fixed"
    assert table.resolve("x/DEMF/a.csv").route.name == "any"


def test_sub_folders_below_the_prefix_belong_to_the_route(table: RouteTable) -> None:
    match = table.resolve("general-journal/DEMF/2024/05/journal.csv")
    assert (match.route.name, match.company, match.file_name) == ("journal", "DEMF", "journal.csv")


def test_company_placeholder_in_the_middle_of_a_prefix(table: RouteTable) -> None:
    match = table.resolve("deep/GBSI/in/f.xml")
    assert (match.route.name, match.company, match.route.max_bytes) == ("deep", "GBSI", 2 << 20)


def test_fixed_company_and_package_route(table: RouteTable) -> None:
    match = table.resolve("packages/USMF/Customers package.ZIP")
    assert match.route.is_package
    assert match.route.entity is None
    assert match.company == "USMF"


def test_route_without_any_company_resolves_to_none() -> None:
    table = _table(_route(prefix="customers/"))
    assert table.resolve("customers/a.xml").company is None


def test_extension_filter_is_case_insensitive(table: RouteTable) -> None:
    assert table.resolve("customers/USMF/a.XML").route.name == "customers"
    assert table.resolve("customers/USMF/a.csv").route.name == "customers"


def _rejected(table: RouteTable, path: str) -> RoutingError:
    with pytest.raises(RoutingError) as caught:
        table.resolve(path)
    assert caught.value.blob_path == path
    return caught.value


def test_no_route_names_the_path_the_routes_and_the_fix(table: RouteTable) -> None:
    error = _rejected(table, "vendors/x.csv")
    assert error.reason is RejectReason.NO_ROUTE
    assert str(error).startswith("no route matches 'vendors/x.csv'; routes: customers/{company}/, ")
    assert "add a route to D365_ROUTES or upload under one of these prefixes" in str(error)


@pytest.mark.parametrize(
    "path",
    [
        "customers/USMF.xml",  # the {company} folder is missing
        "Customers/USMF/a.xml",  # prefixes match case-sensitively, as blob names do
        "packages/USMF",
        "packages",
    ],
)
def test_paths_outside_every_prefix_have_no_route(table: RouteTable, path: str) -> None:
    assert _rejected(table, path).reason is RejectReason.NO_ROUTE


def test_folder_without_file_name_is_a_bad_name(table: RouteTable) -> None:
    error = _rejected(table, "customers/USMF/")
    assert error.reason is RejectReason.BAD_NAME
    assert "has an empty folder or file name segment" in str(error)


def test_disabled_route_rejects_with_the_fix(table: RouteTable) -> None:
    error = _rejected(table, "parked/a.xml")
    assert error.reason is RejectReason.ROUTE_DISABLED
    assert str(error) == (
        "route 'parked' for 'parked/a.xml' is disabled; set \"enabled\": true on it in "
        "D365_ROUTES and upload the file again"
    )


def test_extension_not_allowed(table: RouteTable) -> None:
    error = _rejected(table, "customers/USMF/a.json")
    assert error.reason is RejectReason.EXTENSION_NOT_ALLOWED
    assert str(error) == (
        "'customers/USMF/a.json' does not end with .xml or .csv, which route 'customers' "
        "requires; upload a file of that type or change the route's extensions in D365_ROUTES"
    )


def test_package_route_takes_only_zip(table: RouteTable) -> None:
    error = _rejected(table, "packages/USMF/customers.xml")
    assert error.reason is RejectReason.EXTENSION_NOT_ALLOWED
    assert "does not end with .zip, which data package route 'packages' requires" in str(error)


@pytest.mark.parametrize(
    ("company", "why"),
    [
        ("USMF1", "'USMF1' is not a legal entity id; expected 1-4 letters or digits"),
        ("US-1", "'US-1' is not a legal entity id"),
        ("ü", "'ü' is not a legal entity id"),
        ("U S", "'U S' is not a legal entity id"),
    ],
)
def test_bad_company_folder(table: RouteTable, company: str, why: str) -> None:
    error = _rejected(table, f"customers/{company}/a.xml")
    assert error.reason is RejectReason.BAD_COMPANY
    assert why in str(error)
    assert "route 'customers', prefix 'customers/{company}/'" in str(error)
    assert str(error).endswith("upload under the legal entity's folder")


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "is empty"),
        ("customers/USMF/a\x00.xml", "holds a control character"),
        ("customers/USMF/a\n.xml", "holds a control character"),
        ("customers/USMF/a\x7f.xml", "holds a control character"),
        ("customers//USMF/a.xml", "has an empty folder or file name segment"),
        ("customers/USMF/ ", "has an empty folder or file name segment"),
        ("customers/USMF/../a.xml", "holds a '.' or '..' segment"),
        ("customers/USMF/" + "a" * 252 + ".xml", "has a file name longer than 255 characters"),
        ("customers/USMF/" + "d/" * 510 + "a.xml", "is longer than 1024 characters"),
    ],
)
def test_bad_names(table: RouteTable, path: str, why: str) -> None:
    error = _rejected(table, path)
    assert error.reason is RejectReason.BAD_NAME
    assert why in str(error)
    assert "rename the file" in str(error)


def test_file_name_of_255_characters_is_fine(table: RouteTable) -> None:
    name = "a" * 251 + ".xml"
    assert table.resolve(f"customers/USMF/{name}").file_name == name


def test_reject_reasons_cover_the_enqueuer_too() -> None:
    assert {r.name for r in RejectReason} == {
        "NO_ROUTE",
        "BAD_NAME",
        "BAD_COMPANY",
        "EXTENSION_NOT_ALLOWED",
        "ROUTE_DISABLED",
        "EMPTY_FILE",
        "TOO_LARGE",
    }
    assert RejectReason("NoRoute") is RejectReason.NO_ROUTE
    assert isinstance(RejectReason.TOO_LARGE, str)


# -- parsing -------------------------------------------------------------------------------


def test_good_route_is_normalised() -> None:
    route = Route.from_dict(
        _route(
            activity_id="{AAAAAAAA-0000-4000-8000-00000000000A}",
            extensions=[".XML", ".xml", ".Csv"],
            entity="  Customers V3 ",
            max_bytes=1024,
        )
    )
    assert route.activity_id == "aaaaaaaa-0000-4000-8000-00000000000a"
    assert route.extensions == (".xml", ".csv")
    assert route.entity == "Customers V3"
    assert route.max_bytes == 1024
    assert route.enabled
    assert route.takes_company_from_path
    assert not route.is_package


def test_package_route_defaults_to_zip() -> None:
    route = Route.from_dict(_route(entity=None, prefix="packages/", company="USMF"))
    assert route.is_package
    assert route.extensions == (".zip",)
    assert route.as_dict()["extensions"] == [".zip"]


def test_route_constructed_directly_is_validated_too() -> None:
    with pytest.raises(RouteConfigError) as caught:
        Route(name="x", prefix="x", activity_id="nope")
    assert caught.value.problems == (
        "route 'x'.prefix: 'x' does not end with '/'; expected a relative folder path ending "
        "in '/', e.g. customers/{company}/",
        "route 'x'.activity_id: 'nope' is not a GUID; expected the recurring data job's "
        "activity ID from Data management > Manage scheduled data jobs, e.g. "
        "6d31e09f-0249-459f-94f0-aad9c2c47b64",
    )


GUID_HINT = (
    "expected the recurring data job's activity ID from Data management > Manage scheduled "
    "data jobs, e.g. 6d31e09f-0249-459f-94f0-aad9c2c47b64"
)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"activity_id": "abc"}, f"D365_ROUTES[1].activity_id: 'abc' is not a GUID; {GUID_HINT}"),
        ({"activity_id": 12}, "D365_ROUTES[1].activity_id: 12 is not a GUID"),
        ({"name": "a b"}, "D365_ROUTES[1].name: 'a b' is not a simple name; expected 1-64"),
        ({"name": "x" * 65}, "is not a simple name"),
        ({"prefix": ""}, "D365_ROUTES[1].prefix: '' is empty; expected a folder path"),
        ({"prefix": "/abs/"}, "D365_ROUTES[1].prefix: '/abs/' starts with '/'"),
        ({"prefix": "no-slash"}, "'no-slash' does not end with '/'"),
        ({"prefix": "a//b/"}, "'a//b/' has an empty segment ('//')"),
        ({"prefix": "a/../b/"}, "'a/../b/' holds '.' or '..'"),
        ({"prefix": "{company}/x/{company}/"}, "holds {company} more than once"),
        ({"prefix": "cust-{company}/"}, "uses braces other than a whole {company} segment"),
        ({"prefix": "{tenant}/"}, "uses braces other than a whole {company} segment"),
        ({"prefix": "a\tb/"}, "holds a control character"),
        ({"entity": ""}, "D365_ROUTES[1].entity: '' is not an entity name; expected the data"),
        ({"entity": 5}, "D365_ROUTES[1].entity: 5 is not an entity name"),
        ({"company": "USMF"}, "D365_ROUTES[1].company: is set while the prefix holds {company}"),
        ({"prefix": "x/", "company": "TOOLONG"}, "'TOOLONG' is not a legal entity id"),
        ({"prefix": "x/", "company": "U$"}, "'U$' is not a legal entity id"),
        ({"max_bytes": 0}, "D365_ROUTES[1].max_bytes: 0 is not a positive size; expected"),
        ({"max_bytes": -1}, "-1 is not a positive size"),
        ({"max_bytes": "lots"}, "D365_ROUTES[1].max_bytes: 'lots' is not a size"),
        ({"max_bytes": True}, "True is not a size"),
        ({"extensions": ".xml"}, "D365_ROUTES[1].extensions: '.xml' is not a list"),
        ({"extensions": ["xml"]}, "D365_ROUTES[1].extensions: ['xml'] are not file suffixes"),
        ({"enabled": "yes"}, "D365_ROUTES[1].enabled: 'yes' is not true or false"),
        (
            {"entity": None, "extensions": [".xml"]},
            "D365_ROUTES[1].extensions: ['.xml'] on a data package route (no entity); a data "
            'package job takes only .zip packages: use [".zip"], or set entity for a file job',
        ),
        ({"activityId": CUSTOMERS_ID}, "D365_ROUTES[1]: unknown key 'activityId'; expected one of"),
        ({"prefix": None}, "D365_ROUTES[1].prefix: None is empty"),
    ],
)
def test_each_bad_route_field_is_named(overrides: dict[str, Any], problem: str) -> None:
    good = _route(name="first", prefix="first/")
    with pytest.raises(RouteConfigError) as caught:
        _table(good, _route(**overrides))
    assert any(problem in p for p in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("missing", ["name", "prefix", "activity_id"])
def test_missing_required_key(missing: str) -> None:
    route = _route()
    del route[missing]
    with pytest.raises(RouteConfigError) as caught:
        _table(route)
    assert caught.value.problems == (f"D365_ROUTES[0].{missing}: missing",)


def test_every_problem_of_every_route_is_listed() -> None:
    with pytest.raises(RouteConfigError) as caught:
        _table(_route(name="a b", activity_id="x"), _route(prefix="/p"), "not an object")  # type: ignore[arg-type]
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "D365_ROUTES[0].name",
        "D365_ROUTES[0].activity_id",
        "D365_ROUTES[1].prefix",
        "D365_ROUTES[2]",
    ]
    assert str(caught.value) == "; ".join(problems)


def test_duplicate_names_and_prefixes() -> None:
    with pytest.raises(RouteConfigError) as caught:
        _table(_route(), _route(name="Customers", prefix="other/"), _route(name="again"))
    assert caught.value.problems == (
        "D365_ROUTES: route name 'Customers' is used twice",
        "D365_ROUTES: routes 'customers' and 'again' have the same prefix "
        "'customers/{company}/'; each folder feeds one job",
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[", "D365_ROUTES: not valid JSON (Expecting value: line 1 column 2 (char 1))"),
        ("[]", "D365_ROUTES: expected a non-empty JSON list of routes, e.g. [{"),
        ('{"name": "x"}', "D365_ROUTES: expected a non-empty JSON list of routes"),
    ],
)
def test_routes_setting_must_be_a_json_list(text: str, problem: str) -> None:
    with pytest.raises(RouteConfigError) as caught:
        RouteTable.from_json(text)
    assert caught.value.problems[0].startswith(problem)


def test_table_lookup_and_equality() -> None:
    table = _table(_route())
    assert table.get("CUSTOMERS") is table.routes[0]
    assert table.get("vendors") is None
    assert len(table) == 1
    assert list(table) == list(table.routes)
    assert repr(table) == "RouteTable(['customers'])"


# -- helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{6D31E09F-0249-459F-94F0-AAD9C2C47B64}", "6d31e09f-0249-459f-94f0-aad9c2c47b64"),
        (" 6d31e09f-0249-459f-94f0-aad9c2c47b64 ", "6d31e09f-0249-459f-94f0-aad9c2c47b64"),
    ],
)
def test_normalise_guid(text: str, expected: str) -> None:
    assert normalise_guid(text) == expected


@pytest.mark.parametrize("text", ["", "6d31e09f02494 59f94f0aad9c2c47b64", "{6d31e09f-0249}"])
def test_normalise_guid_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a GUID"):
        normalise_guid(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (123, 123),
        ("123", 123),
        ("48MiB", 48 * 1024 * 1024),
        ("50 MB", 50_000_000),
        ("512kib", 512 * 1024),
        ("1GiB", 1 << 30),
        ("10B", 10),
    ],
)
def test_parse_byte_size(text: str | int, expected: int) -> None:
    assert parse_byte_size(text) == expected


@pytest.mark.parametrize("text", ["", "MiB", "1.5MiB", "-3", "0", "12 parsecs"])
def test_parse_byte_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_byte_size(text)
