"""Admission of a package route's file (shared/flows/admission.py): the package path's limits
and extensions, judged before anything reaches F&O."""

from __future__ import annotations

import json

import pytest

from shared.config import ImportRoutes
from shared.tracking import TrackingState
from tests import package_files
from tests.e2e.conftest import routes_for
from tests.shared.conftest import Domain
from tests.shared.flows.package.conftest import (
    build_packaged,
    nothing_sent,
    puts,
)


def test_a_package_route_takes_files_over_the_enqueue_limit(domain: Domain) -> None:
    packaged = build_packaged(domain, default_max_bytes=100)
    record = packaged.send("pkg/USMF/customers.zip", package_files.customers_package())
    assert record.state is TrackingState.IMPORTING
    assert packaged.until_final(record).state is TrackingState.PROCESSED


@pytest.mark.parametrize("path", ["pkg/USMF/customers.zip", "big/customers.xml"])
def test_a_file_over_the_package_limit_is_rejected_in_package_terms(
    domain: Domain, path: str
) -> None:
    """A package route's file, or an on_too_large file, over the package path's limit."""
    # Over the big route's 1 MiB enqueue limit too.
    packaged = build_packaged(domain, default_max_bytes=100, package_max_bytes=1_500_000)
    data = package_files.customers_package() + b" " * (2 << 20)

    record = packaged.send(path, data)

    assert (record.state, record.reject_reason) == (TrackingState.REJECTED, "TooLarge")
    assert "1,500,000-byte limit of the data management package API" in (record.last_error or "")
    assert "at most 50,000 blocks of 4 MiB" in (record.last_error or "")
    assert "import it through the data management package API" not in (record.last_error or "")
    assert puts(packaged) == []


def test_a_package_route_over_its_own_max_bytes_is_rejected_naming_it(domain: Domain) -> None:
    raw = [
        {**route, "max_bytes": 1000} if route["name"] == "pkg" else route
        for route in routes_for(domain.folder)
    ]
    packaged = build_packaged(domain, routes=ImportRoutes.from_json(json.dumps(raw)))

    record = packaged.send("pkg/USMF/customers.zip", b"x" * 2000)

    assert (record.state, record.reject_reason) == (TrackingState.REJECTED, "TooLarge")
    assert "1,000-byte limit of the data management package API on route 'pkg'" in (
        record.last_error or ""
    )
    assert "raise max_bytes on the route" in (record.last_error or "")


def test_a_package_route_with_an_entity_and_no_template_refuses_a_plain_file_unsent(
    domain: Domain,
) -> None:
    """Finding 9: an .xml went through GetAzureWriteUrl, the PUT and ImportFromPackage before
    F&O refused it; it is Rejected at admission, like any other extension."""
    raw = [
        *routes_for(domain.folder),
        {
            "name": "pkg-entity",
            "prefix": f"{domain.folder}/pkg-entity/{{company}}/",
            "api": "package",
            "definition_group": "CustomersPackage",
            "entity": "Customers V3",
        },
    ]
    packaged = build_packaged(domain, routes=ImportRoutes.from_json(json.dumps(raw)))
    packaged.domain.d365.knobs.package_run_seconds = 1

    plain = packaged.send(
        "pkg-entity/USMF/customers.xml", package_files.CUSTOMERS_VALID.read_bytes()
    )

    assert (plain.state, plain.reject_reason) == (TrackingState.REJECTED, "ExtensionNotAllowed")
    assert plain.last_error == (
        f"{plain.blob!r} does not end with .zip, which package route 'pkg-entity' requires: "
        "without a template it imports data packages only; upload the data package (.zip), or "
        "give the route a template in D365_ROUTES to wrap other files into one"
    )
    assert nothing_sent(packaged)
    zipped = packaged.send("pkg-entity/USMF/customers.zip", package_files.customers_package())
    assert packaged.until_final(zipped).state is TrackingState.PROCESSED
