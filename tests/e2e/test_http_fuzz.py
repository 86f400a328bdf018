"""Schemathesis against the local host: every route of our own ``/api/openapi.json``, with the
function key, answers without a server error, with a status code its document declares and a
body that conforms to the document.

Bounded and deterministic, so CI gives the same verdict every run: a fixed number of examples
per route, derandomized, no example database. Runs in ``make test``; alone with ``-m fuzz``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st

from devtools.azurite import Azurite
from devtools.d365_emulator import Emulator
from shared.views import openapi
from tests import fakes
from tests.e2e.conftest import start_app
from tests.e2e.test_enqueue import VALID
from tests.e2e.test_export import export_route

KEY = "fuzz-function-key"
EXAMPLES = 100
"""Fuzzed examples per route; the coverage phase adds its own edge cases to these."""
CHECKS = ("not_a_server_error", "status_code_conformance", "response_schema_conformance")
EDGE_TIMES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:30:00+01:00",
    "1601-01-01T00:00:00Z",
    "9999-12-31T23:00:00-05:00",
    "9999-12-31T23:59:59.999999Z",
]

schema = schemathesis.openapi.from_dict(
    # The document the host serves (the fixture checks it is this one). Loaded at import: the
    # lazy loader, schemathesis.pytest.from_fixture, fails on pytest 9 ('_nodeid').
    openapi.document(),
    config=schemathesis.Config.from_dict(
        {
            "headers": {"x-functions-key": KEY},
            # Times at the ends of the calendar, where an offset or a period overflows: the
            # date-time generator alone never reaches them.
            "dictionaries": {"edge-times": {"values": EDGE_TIMES}},
            "parameters": {
                f"query.{name}": {"dictionary": "edge-times", "probability": 0.25}
                for name in ("since", "until")
            },
            "checks": {"enabled": False} | {name: {"enabled": True} for name in CHECKS},
            "generation": {
                "max-examples": EXAMPLES,
                "deterministic": True,
                "database": "none",
                "with-security-parameters": False,
            },
        }
    ),
)
known_ids: list[str] = []
"""Ids that address records of the running host (set by the fixture)."""


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """Some examples address a record that exists, so its reads and resubmit run in full."""
    if not (path_parameters and known_ids):
        return st.just(path_parameters)
    known = st.sampled_from(known_ids).map(lambda key: {**path_parameters, "message_id": key})
    return st.one_of(st.just(path_parameters), known)


@pytest.fixture(scope="module")
def api_url(d365_emulator: Emulator, azurite: Azurite) -> Iterator[str]:
    """The ``/api`` URL of one host for every route, serving this document; a final tracked
    file and an acknowledged export are there to be found."""
    d365_emulator.reset()
    name = "fuzz" + uuid.uuid4().hex[:16]
    routes = json.dumps([export_route(name)])
    with pytest.MonkeyPatch.context() as patch:
        app = start_app(d365_emulator, azurite, name, patch, function_key=KEY, EXPORT_ROUTES=routes)
        try:
            served = app.get("openapi.json").json()
            assert served == openapi.served(f"{app.host.http_url}/api/openapi.json")
            blob = app.upload("customers/USMF/fuzz.xml", VALID)
            record = app.run_until_terminal([blob])[blob]
            export_id = app.d365.add_customers_export(fakes.EXPORT_ACTIVITY_ID, rows=2)
            app.host.run_timer_once()
            known_ids[:] = [record["record_key"], record["message_id"], export_id]
            yield f"{app.host.http_url}/api"
        finally:
            app.stop()


@pytest.mark.fuzz
@schema.parametrize()
def test_no_route_answers_a_server_error_or_outside_its_document(
    case: schemathesis.Case, api_url: str
) -> None:
    case.call_and_validate(base_url=api_url, timeout=30)
