"""Who may call the HTTP API, through the local host: ``HTTP_AUTH=key`` ignores the principal
headers, ``entra`` takes them from App Service authentication only (the local stand-in of
``devtools.local_host.easy_auth``), and each route needs its role.

Forged headers are sent in both modes: a caller's own ``X-MS-CLIENT-PRINCIPAL`` never counts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
import requests

from devtools.local_host import IDENTITIES, EasyAuth, principal_headers
from shared.views.signin import ROUTES, Role
from tests.e2e.conftest import App, enqueue_requests
from tests.e2e.test_enqueue import VALID
from tests.test_function_app import FUNCTIONS

pytestmark = pytest.mark.timeout(120)
KEY = "signin-test-key"
IDENTITY = {identity.key: identity for identity in IDENTITIES}
OPERATOR_FORGED = principal_headers(IDENTITY["omar"])


def _http_functions() -> dict[str, tuple[str, str]]:
    """Every HTTP function of the app: its route (parameters filled in) and first method."""
    found = {}
    for function in FUNCTIONS.values():  # get_functions() may run once per app object
        trigger = json.loads(function.get_function_json())["bindings"][0]
        if trigger["type"] == "httpTrigger":
            route = re.sub(
                r"\{(\w+)\??\}", "00000000-0000-0000-0000-000000000001", trigger["route"]
            )
            found[function.get_function_name()] = (route, trigger["methods"][0])
    return found


HTTP_FUNCTIONS = _http_functions()


def test_every_http_route_of_the_app_has_its_entry_in_the_role_table() -> None:
    assert set(HTTP_FUNCTIONS) == set(ROUTES)
    # A route that takes anything but GET changes something: it refuses other sites' pages.
    assert {name: method != "GET" for name, (_, method) in HTTP_FUNCTIONS.items()} == {
        name: access.writes for name, access in ROUTES.items()
    }


def _call(app: App, function: str, headers: dict[str, str]) -> requests.Response:
    route, method = HTTP_FUNCTIONS[function]
    return requests.request(
        method, f"{app.host.http_url}/api/{route}", headers=headers, timeout=30, json={}
    )


def _refused_file(app: App) -> tuple[str, dict]:
    """A file F&O refused, then the cause fixed: ready to be resubmitted."""
    app.d365.knobs.max_enqueue_bytes = 16
    blob = app.upload("customers/USMF/refused.xml", VALID)
    record = app.run_until_terminal([blob])[blob]
    assert record["state"] == "EnqueueFailed"
    app.d365.knobs.max_enqueue_bytes = None
    return blob, record


def _resubmit(app: App, record: dict, headers: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{app.host.http_url}/api/messages/{record['record_key']}/resubmit",
        headers={**headers, "Idempotency-Key": "signin-1"},
        json={},
        timeout=30,
    )


# -- key mode --------------------------------------------------------------------------------


def test_key_mode_ignores_forged_principal_headers_entirely(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory(function_key=KEY)
    _, record = _refused_file(app)
    reader = principal_headers(IDENTITY["riya"])

    # A reader's principal (or garbage) changes nothing: the key is what counts.
    garbage = {"X-MS-CLIENT-PRINCIPAL": "not base64 at all", "X-MS-CLIENT-PRINCIPAL-IDP": "x"}
    assert _call(app, "counts", {**garbage, "x-functions-key": KEY}).status_code == 200
    assert _call(app, "counts", reader).status_code == 401  # no key: the host refuses
    response = _resubmit(app, record, {**reader, "x-functions-key": KEY})

    assert response.status_code == 200, response.text
    assert response.json()["resubmitted_as"]


# -- entra mode ------------------------------------------------------------------------------


def test_entra_mode_without_platform_authentication_answers_503_on_every_route(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory(HTTP_AUTH="entra")  # no stand-in: WEBSITE_AUTH_ENABLED is not set

    for function in HTTP_FUNCTIONS:
        response = _call(app, function, OPERATOR_FORGED)
        assert response.status_code == 503, (function, response.text)
        assert "App Service authentication is not on" in response.json()["error"]
    health = _call(app, "health", OPERATOR_FORGED).json()
    assert health["healthy"] is False
    assert health["checks"] == {"http_auth": {"ok": False, "error": health["error"]}}


def test_entra_mode_strips_forged_headers_and_answers_401_to_nobody(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory(HTTP_AUTH="entra", easy_auth=EasyAuth())

    response = _call(app, "counts", OPERATOR_FORGED)
    assert response.status_code == 401
    assert "not signed in" in response.json()["error"]
    # The console page holds no data: it loads without a session, so its script can sign in.
    page = _call(app, "console", OPERATOR_FORGED)
    assert page.status_code == 200
    assert b'"mode":"entra"' in page.content


@pytest.mark.parametrize("function", sorted(HTTP_FUNCTIONS))
def test_each_route_needs_its_role_from_the_app_itself(
    app_factory: Callable[..., App], function: str
) -> None:
    """With the platform letting anonymous requests through, the app's own check shows: no
    principal is a 401, a principal without the route's role a 403 naming it."""
    auth = EasyAuth(require_authentication=False)
    app = app_factory(HTTP_AUTH="entra", easy_auth=auth)
    nobody = _call(app, function, OPERATOR_FORGED)  # stripped: nobody is signed in
    no_role = _call(app, function, {"Authorization": f"Bearer {auth.token('nina')}"})

    role = ROUTES[function].role
    if role is None:
        assert (nobody.status_code, no_role.status_code) == (200, 200)
        return
    assert nobody.status_code == 401
    assert nobody.json()["error"].startswith("sign in first")
    assert no_role.status_code == 403
    assert no_role.json()["required_role"] == role.value
    assert f"Nina No-role (user) may not {ROUTES[function].action}" in no_role.json()["error"]


def test_a_reader_reads_but_may_not_resubmit_and_an_operator_program_may(
    app_factory: Callable[..., App],
) -> None:
    auth = EasyAuth()
    app = app_factory(HTTP_AUTH="entra", easy_auth=auth)
    blob, record = _refused_file(app)
    reader = {"Cookie": f"AppServiceAuthSession={auth.session('riya')}"}

    assert _call(app, "counts", reader).status_code == 200
    refused = _resubmit(app, record, reader)
    assert refused.status_code == 403
    assert refused.json()["required_role"] == Role.OPERATOR.value
    assert "Riya Reader (user) may not resubmit a file" in refused.json()["error"]
    assert app.record(blob)["resubmitted_as"] is None

    done = _resubmit(app, record, app.headers)  # the Logic App's managed identity
    assert done.status_code == 200, done.text
    assert app.run_until_terminal([blob])[blob]["state"] == "Processed"
    assert len(enqueue_requests(app.d365)) == 1


def test_a_resubmit_posted_by_a_page_of_another_site_is_refused_despite_the_session(
    app_factory: Callable[..., App],
) -> None:
    """Cross-site request forgery: another site's form carries the operator's session cookie."""
    auth = EasyAuth()
    app = app_factory(HTTP_AUTH="entra", easy_auth=auth)
    blob, record = _refused_file(app)
    operator = {"Cookie": f"AppServiceAuthSession={auth.session('omar')}"}

    forged = _resubmit(
        app, record, {**operator, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    )
    assert forged.status_code == 403
    assert "for a page of another site (Sec-Fetch-Site cross-site)" in forged.json()["error"]
    assert app.record(blob)["resubmitted_as"] is None
    assert enqueue_requests(app.d365) == []

    own_page = _resubmit(app, record, {**operator, "Sec-Fetch-Site": "same-origin"})
    assert own_page.status_code == 200, own_page.text


def test_an_operators_resubmit_is_in_the_audit_trail_under_their_name(
    app_factory: Callable[..., App],
) -> None:
    auth = EasyAuth()
    app = app_factory(HTTP_AUTH="entra", easy_auth=auth)
    blob, record = _refused_file(app)
    operator = {"Cookie": f"AppServiceAuthSession={auth.session('omar')}"}
    reader = {"Cookie": f"AppServiceAuthSession={auth.session('riya')}"}
    omar = IDENTITY["omar"]

    done = _resubmit(app, record, {**operator, "Sec-Fetch-Site": "same-origin"})
    again = _resubmit(app, record, {**operator, "Sec-Fetch-Site": "same-origin"})

    assert (done.status_code, again.status_code) == (200, 200), done.text
    who = {"kind": "user", "name": "Omar Operator", "object_id": omar.object_id, "provider": "aad"}
    assert done.json()["original"]["resubmitted_by"] == who
    assert app.run_until_terminal([blob])[blob]["resubmit_by"] == who
    # A reader reads the trail; the request sent twice is one row, done, naming the new record.
    trail = requests.get(
        f"{app.host.http_url}/api/audit",
        params={"person": "omar operator"},
        headers=reader,
        timeout=30,
    )
    assert trail.status_code == 200, trail.text
    (entry,) = trail.json()["items"]
    assert (entry["action"], entry["actor"], entry["outcome"]) == ("resubmit", who, "done")
    assert entry["request_id"] == "signin-1"
    assert entry["targets"] == [record["record_key"], done.json()["resubmitted_as"]]
    assert "X-MS-CLIENT-PRINCIPAL" not in trail.text and omar.username not in trail.text
