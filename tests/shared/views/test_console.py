"""The console page's state vocabulary is the status model's, not a list of its own."""

from __future__ import annotations

import json
import re

from shared.config import HttpAuthMode
from shared.tracking import TrackingState
from shared.views import console
from shared.views.counts import FAILED_STATES
from shared.views.signin import ROUTES, Role

_BLOCK = re.compile(rb'<script type="application/json" id="vocabulary">(.*?)</script>', re.S)


def _vocabulary() -> dict[str, list[str]]:
    found = _BLOCK.search(console.page().body)
    assert found, "the page has no vocabulary data block"
    return json.loads(found.group(1))


def test_the_console_s_states_are_the_tracking_states() -> None:
    vocabulary = _vocabulary()
    assert vocabulary["states"] == [state.value for state in TrackingState]
    assert set(vocabulary["failed"]) == {state.value for state in FAILED_STATES}
    assert set(vocabulary["pending"]) == {s.value for s in TrackingState if not s.is_terminal}
    assert {"ImportFailed", "ImportCanceled"} <= set(vocabulary["failed"])
    assert "Importing" in vocabulary["pending"]


def test_the_script_names_no_state_of_its_own() -> None:
    script = (console.ASSETS / "console.js").read_text(encoding="utf-8")
    script = re.sub(r'fact\("[^"]*"', "fact(", script)  # labels of the detail ("Received")
    named = [state.value for state in TrackingState if f'"{state.value}"' in script]
    assert named == []


def test_the_data_block_is_not_allowed_as_a_script_and_cannot_close_its_element() -> None:
    page = console.page()
    policy = dict(page.headers)["Content-Security-Policy"]
    assert len(re.findall(r"'sha256-", policy)) == 2  # the script and the style, no more
    assert "<" not in console.data_block({"x": "</script><b>"})


def test_the_page_tells_its_script_the_mode_and_each_routes_role_from_the_route_table() -> None:
    block = re.compile(rb'<script type="application/json" id="signin">(.*?)</script>', re.S)
    keyed = json.loads(block.search(console.page(HttpAuthMode.KEY).body).group(1))
    entra = json.loads(block.search(console.page(HttpAuthMode.ENTRA).body).group(1))

    assert (keyed["mode"], entra["mode"]) == ("key", "entra")
    assert entra["routes"] == {
        name: access.role.value if access.role else None for name, access in ROUTES.items()
    }
    assert entra["routes"]["resubmit"] == "Integration.Operator"
    assert entra["role_claims"][0] == "roles"
    assert (entra["me"], entra["login"]) == ("/.auth/me", "/.auth/login/aad")


def test_the_script_names_no_role_of_its_own() -> None:
    script = (console.ASSETS / "console.js").read_text(encoding="utf-8")
    assert [role.value for role in Role if role.value in script] == []
