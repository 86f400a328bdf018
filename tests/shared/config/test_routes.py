"""Routes: the route table as a whole, parsing D365_ROUTES, and blob path resolution (also of
hostile names, under Hypothesis).

Every kind of bad route and bad blob name, with its exact answer, is in
tests/shared/config/test_bad_settings.py.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shared.config import (
    MAX_BLOB_NAME_CHARS,
    MAX_BLOB_NAME_SEGMENTS,
    ImportRoutes,
    RejectReason,
    RouteConfigError,
    RoutingError,
)
from shared.config.blob_names import utf16_length
from tests.hostile import HOSTILE, TEXTS, weighted
from tests.shared.config.route_samples import CUSTOMERS_ID, JOURNAL_ID, PACKAGE_ID
from tests.shared.config.route_samples import route_dict as _route
from tests.shared.config.route_samples import table_of as _table


@pytest.fixture
def table() -> ImportRoutes:
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


def test_company_comes_from_the_company_folder(table: ImportRoutes) -> None:
    match = table.resolve("customers/USMF/customers-2024.xml")
    assert match.route.name == "customers"
    assert match.route.activity_id == CUSTOMERS_ID
    assert match.company == "USMF"


def test_longest_prefix_wins(table: ImportRoutes) -> None:
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


def test_sub_folders_below_the_prefix_belong_to_the_route(table: ImportRoutes) -> None:
    match = table.resolve("general-journal/DEMF/2024/05/journal.csv")
    assert (match.route.name, match.company) == ("journal", "DEMF")


def test_company_placeholder_in_the_middle_of_a_prefix(table: ImportRoutes) -> None:
    match = table.resolve("deep/GBSI/in/f.xml")
    assert (match.route.name, match.company, match.route.max_bytes) == ("deep", "GBSI", 2 << 20)


def test_fixed_company_and_package_route(table: ImportRoutes) -> None:
    match = table.resolve("packages/USMF/Customers package.ZIP")
    assert match.route.is_package
    assert match.route.entity is None
    assert match.company == "USMF"


def test_route_without_any_company_resolves_to_none() -> None:
    table = _table(_route(prefix="customers/"))
    assert table.resolve("customers/a.xml").company is None


def test_extension_filter_is_case_insensitive(table: ImportRoutes) -> None:
    assert table.resolve("customers/USMF/a.XML").route.name == "customers"
    assert table.resolve("customers/USMF/a.csv").route.name == "customers"


def _rejected(table: ImportRoutes, path: str) -> RoutingError:
    with pytest.raises(RoutingError) as caught:
        table.resolve(path)
    assert caught.value.blob_path == path
    return caught.value


def test_no_route_names_the_path_the_routes_and_the_fix(table: ImportRoutes) -> None:
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
def test_paths_outside_every_prefix_have_no_route(table: ImportRoutes, path: str) -> None:
    assert _rejected(table, path).reason is RejectReason.NO_ROUTE


def test_folder_without_file_name_is_a_bad_name(table: ImportRoutes) -> None:
    error = _rejected(table, "customers/USMF/")
    assert error.reason is RejectReason.BAD_NAME
    assert "has an empty folder or file name segment" in str(error)


def test_disabled_route_rejects_with_the_fix(table: ImportRoutes) -> None:
    error = _rejected(table, "parked/a.xml")
    assert error.reason is RejectReason.ROUTE_DISABLED
    assert str(error) == (
        "route 'parked' for 'parked/a.xml' is disabled; set \"enabled\": true on it in "
        "D365_ROUTES and upload the file again"
    )


def test_extension_not_allowed(table: ImportRoutes) -> None:
    error = _rejected(table, "customers/USMF/a.json")
    assert error.reason is RejectReason.EXTENSION_NOT_ALLOWED
    assert str(error) == (
        "'customers/USMF/a.json' does not end with .xml or .csv, which route 'customers' "
        "requires; upload a file of that type or change the route's extensions in D365_ROUTES"
    )


def test_package_route_takes_only_zip(table: ImportRoutes) -> None:
    error = _rejected(table, "packages/USMF/customers.xml")
    assert error.reason is RejectReason.EXTENSION_NOT_ALLOWED
    assert "does not end with .zip, which data package route 'packages' requires" in str(error)


def test_file_name_of_255_characters_is_fine(table: ImportRoutes) -> None:
    name = "a" * 251 + ".xml"
    assert table.resolve(f"customers/USMF/{name}").route.name == "customers"


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
        ("[", "D365_ROUTES: is not valid JSON (Expecting value: line 1 column 2 (char 1))"),
        ("[]", "D365_ROUTES: expected a non-empty JSON list of routes, e.g. [{"),
        ('{"name": "x"}', "D365_ROUTES: expected a non-empty JSON list of routes"),
    ],
)
def test_routes_setting_must_be_a_json_list(text: str, problem: str) -> None:
    with pytest.raises(RouteConfigError) as caught:
        ImportRoutes.from_json(text)
    assert caught.value.problems[0].startswith(problem)


def test_table_lookup_and_equality() -> None:
    table = _table(_route())
    assert table.get("CUSTOMERS") is next(iter(table))
    assert table.get("vendors") is None
    assert len(table) == 1
    assert [route.name for route in table] == ["customers"]
    assert repr(table) == "ImportRoutes(['customers'])"


# -- the table as a whole ------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefixes",
    [
        ("customers/{company}/", "customers/USMF/"),  # a literal segment is more specific
        ("customers/", "customers/{company}/"),  # a longer prefix is more specific
        ("{company}/in/", "{company}/out/"),  # never the same path
        ("a/{company}/", "b/{company}/"),
    ],
)
def test_overlapping_prefixes_of_different_specificity_are_fine(prefixes: tuple[str, str]) -> None:
    first, second = prefixes
    table = _table(_route(name="first", prefix=first), _route(name="second", prefix=second))
    assert len(table) == 2


def test_equally_specific_overlapping_prefixes_are_refused() -> None:
    with pytest.raises(RouteConfigError) as caught:
        _table(
            _route(name="by-company", prefix="{company}/in/"),
            _route(name="usmf", prefix="USMF/{company}/"),
        )
    assert caught.value.problems == (
        "D365_ROUTES: routes 'by-company' ('{company}/in/') and 'usmf' ('USMF/{company}/') "
        "both match paths such as 'USMF/in/<file>' and neither is more specific; make one "
        "prefix longer or more literal",
    )


def test_a_package_route_needs_no_activity_id_and_takes_plain_files_with_a_template() -> None:
    table = ImportRoutes.from_json(
        json.dumps(
            [
                {
                    "name": "pkg",
                    "prefix": "pkg/{company}/",
                    "api": "package",
                    "definition_group": "CustomersPackage",
                },
                {
                    "name": "wrap",
                    "prefix": "wrap/",
                    "api": "package",
                    "company": "USMF",
                    "definition_group": "CustomersPackage",
                    "template": "templates/customers.zip",
                    "overwrite": False,
                    "execute": False,
                },
            ]
        )
    )
    zipped = table.resolve("pkg/USMF/a.zip")
    assert zipped.route.uses_package_api and zipped.company == "USMF"
    assert zipped.route.activity_id is None and zipped.route.extensions == (".zip",)
    plain = table.resolve("wrap/customers.xml").route
    assert (plain.extensions, plain.overwrite, plain.execute) == ((), False, False)


def test_a_package_route_with_an_entity_and_no_template_takes_only_zip_packages() -> None:
    """Finding 9: it took any file, which reached F&O before F&O refused it."""
    table = _table(
        _route(
            name="pkg",
            prefix="pkg/{company}/",
            activity_id=None,
            api="package",
            definition_group="CustomersPackage",
        )
    )
    route = next(iter(table))
    assert (route.entity, route.template, route.extensions) == ("CustomersV3", None, (".zip",))
    assert table.resolve("pkg/USMF/a.ZIP").route is route

    error = _rejected(table, "pkg/USMF/customers.xml")

    assert error.reason is RejectReason.EXTENSION_NOT_ALLOWED
    assert str(error) == (
        "'pkg/USMF/customers.xml' does not end with .zip, which package route 'pkg' requires: "
        "without a template it imports data packages only; upload the data package (.zip), or "
        "give the route a template in D365_ROUTES to wrap other files into one"
    )


def test_every_problem_of_a_package_route_is_listed_at_once() -> None:
    with pytest.raises(RouteConfigError) as caught:
        ImportRoutes.from_json(
            json.dumps(
                [
                    {
                        "name": "pkg",
                        "prefix": "pkg/",
                        "api": "package",
                        "template": "x",
                        "on_too_large": "package",
                        "overwrite": "yes",
                    }
                ]
            )
        )
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "D365_ROUTES[0].template",
        "D365_ROUTES[0].overwrite",
        "D365_ROUTES[0].on_too_large",
        "D365_ROUTES[0].definition_group",
    ]


# -- hostile blob names --------------------------------------------------------------------

_SEGMENTS = weighted(
    (2, st.sampled_from(["customers", "USMF", "usmf", "general-journal", "deep", "in", "parked"])),
    (1, st.sampled_from(["packages", "special", "DEMF", "GBSI", "ÄB", "US MF", "USMF1"])),
    (3, TEXTS),
)
_FILE_NAMES = st.builds(
    lambda stem, suffix: stem + suffix,
    TEXTS,
    st.sampled_from([".xml", ".XML", ".csv", ".zip", ".json", "", ".xml\n", ".xml%00"]),
)
BLOB_NAMES = weighted(
    (
        4,
        st.builds(
            lambda folders, name: "/".join([*folders, name]),
            st.lists(_SEGMENTS, max_size=5),
            _FILE_NAMES,
        ),
    ),
    (
        1,
        st.lists(st.sampled_from(["a", "/", ".", "..", "%2e%2e", "%2F"]), max_size=300).map(
            "".join
        ),
    ),
    (1, TEXTS),
)
"""Blob names: folders of the routes and hostile ones, with good and bad file names, paths of
slashes and dots, and anything at all."""
_COMPANY = re.compile(r"[A-Za-z0-9]{1,4}", re.ASCII)


@HOSTILE
@given(blob_path=BLOB_NAMES)
@example(blob_path="customers/USMF/\ud800.xml")
@example(blob_path="customers/\U0001d7d8\U0001d7d9/a.xml")  # mathematical digits: not ASCII
@example(blob_path="customers/USMF/" + "a" * 100_000 + ".xml")
def test_a_hostile_blob_name_resolves_to_a_route_and_company_or_a_routing_error(
    table: ImportRoutes, blob_path: str
) -> None:
    try:
        match = table.resolve(blob_path)
    except RoutingError as exc:
        assert exc.reason in set(RejectReason)
        assert exc.blob_path == blob_path
        assert str(exc).strip() and len(str(exc)) < 1000, exc  # the name is shown cut
        return
    segments = blob_path.split("/")
    assert match.route in list(table) and match.route.enabled
    assert match.route.matches(segments)
    assert match.company is None or _COMPANY.fullmatch(match.company), match
    assert utf16_length(blob_path) <= MAX_BLOB_NAME_CHARS
    assert len(segments) <= MAX_BLOB_NAME_SEGMENTS
    assert all(s.strip() and s not in (".", "..") for s in segments)
    assert blob_path.encode("utf-8")  # a name Azure and F&O can be sent
