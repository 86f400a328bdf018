"""One import route: its keys parsed, normalised and checked side by side."""

from __future__ import annotations

import pytest

from shared.config import ImportRoute, RouteConfigError
from tests.shared.config.route_samples import CUSTOMERS_ID
from tests.shared.config.route_samples import route_dict as _route


def test_good_route_is_normalised() -> None:
    route = ImportRoute.from_dict(
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
    route = ImportRoute.from_dict(_route(entity=None, prefix="packages/", company="USMF"))
    assert route.is_package
    assert route.extensions == (".zip",)
    assert route.as_dict()["extensions"] == [".zip"]


def test_route_constructed_directly_is_validated_too() -> None:
    with pytest.raises(RouteConfigError) as caught:
        ImportRoute(name="x", prefix="x", activity_id="nope")
    assert caught.value.problems == (
        "route 'x'.prefix: 'x' does not end with '/'; expected a relative folder path ending "
        "in '/', e.g. customers/{company}/",
        "route 'x'.activity_id: 'nope' is not a GUID; expected the recurring data job's "
        "activity ID from Data management > Manage scheduled data jobs, e.g. "
        "6d31e09f-0249-459f-94f0-aad9c2c47b64",
    )


def test_route_constructed_directly_defaults_to_any_extension() -> None:
    route = ImportRoute(name="x", prefix="x/", activity_id=CUSTOMERS_ID, entity="X")
    assert route.extensions == ()


def test_an_ordered_route_is_normalised_and_stops_on_failure_by_default() -> None:
    route = ImportRoute.from_dict(_route(order=" Final "))
    go_on = ImportRoute.from_dict(_route(order="upload", on_failure="CONTINUE"))
    parallel = ImportRoute.from_dict(_route())

    assert (route.order, route.on_failure) == ("final", "stop")
    assert (go_on.order, go_on.on_failure) == ("upload", "continue")
    assert parallel.order is None
    assert route.as_dict()["order"] == "final"
    assert go_on.as_dict()["on_failure"] == "continue"
