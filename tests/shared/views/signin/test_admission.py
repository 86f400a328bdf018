"""Admitting one request: the mode, the platform's word, the principal, the route's role."""

from __future__ import annotations

import pytest

from devtools.local_host import IDENTITIES, principal_headers
from shared.tracking import Actor, ActorKind
from shared.views.signin import ROUTES, Role, admit

IDENTITY = {identity.key: identity for identity in IDENTITIES}
ENTRA = {"HTTP_AUTH": "entra", "WEBSITE_AUTH_ENABLED": "True"}
READER = principal_headers(IDENTITY["riya"])
OPERATOR = principal_headers(IDENTITY["omar"])


@pytest.mark.parametrize("mode", [{}, {"HTTP_AUTH": "key"}, {"HTTP_AUTH": " KEY "}])
def test_key_mode_never_reads_the_principal_headers(mode: dict[str, str]) -> None:
    forged = {"X-MS-CLIENT-PRINCIPAL": "garbage", "X-MS-CLIENT-PRINCIPAL-IDP": "evil"}

    admission = admit("resubmit", forged, mode)

    assert admission.refusal is None
    assert admission.actor == Actor.function_key()
    assert admission.roles == set(Role)


def test_an_invalid_mode_is_a_503_on_every_route_naming_the_setting() -> None:
    for function in ROUTES:
        admission = admit(function, OPERATOR, {"HTTP_AUTH": "aad"})
        assert admission.refusal is not None
        assert admission.refusal.status == 503
        assert "HTTP_AUTH: 'aad' is not an HTTP_AUTH mode" in admission.refusal.body["error"]


@pytest.mark.parametrize("platform", [None, "False", "", "1"])
def test_entra_mode_without_the_platforms_word_is_a_503_even_for_an_operator(
    platform: str | None,
) -> None:
    environ = {"HTTP_AUTH": "entra"} | ({"WEBSITE_AUTH_ENABLED": platform} if platform else {})

    admission = admit("health", OPERATOR, environ)

    assert admission.refusal is not None
    assert admission.refusal.status == 503
    assert admission.refusal.body["healthy"] is False
    assert (
        "WEBSITE_AUTH_ENABLED is not True" in admission.refusal.body["checks"]["http_auth"]["error"]
    )


def test_entra_mode_admits_an_operator_with_who_they_are() -> None:
    admission = admit("resubmit", OPERATOR, {**ENTRA, "WEBSITE_AUTH_ENABLED": "true"})

    assert admission.refusal is None
    assert admission.actor is not None
    assert (admission.actor.kind, admission.actor.name) == (ActorKind.USER, "Omar Operator")
    assert admission.actor.object_id == IDENTITY["omar"].object_id


def test_an_operator_may_do_what_a_reader_may() -> None:
    assert admit("counts", OPERATOR, ENTRA).refusal is None


def test_a_reader_may_read_but_not_resubmit_and_is_told_which_role_to_ask_for() -> None:
    assert admit("http_status", READER, ENTRA).refusal is None

    refusal = admit("resubmit", READER, ENTRA).refusal

    assert refusal is not None
    assert refusal.status == 403
    assert refusal.body["required_role"] == "Integration.Operator"
    assert refusal.body["error"].startswith(
        "Riya Reader (user) may not resubmit a file: that needs the app role Integration.Operator"
    )


def test_a_reader_may_not_release_a_line_and_is_told_which_role_to_ask_for() -> None:
    refusal = admit("release", READER, ENTRA).refusal

    assert refusal is not None
    assert refusal.status == 403
    assert refusal.body["required_role"] == "Integration.Operator"
    assert refusal.body["error"].startswith(
        "Riya Reader (user) may not release an ordered line: that needs the app role "
        "Integration.Operator"
    )


def test_nobody_signed_in_is_a_401_and_a_malformed_principal_too() -> None:
    nobody = admit("counts", {}, ENTRA).refusal
    malformed = admit("counts", {"X-MS-CLIENT-PRINCIPAL": "%%%"}, ENTRA).refusal

    assert nobody is not None and nobody.status == 401
    assert nobody.body["error"].startswith("sign in first: nobody is signed in")
    assert malformed is not None and malformed.status == 401
    assert "X-MS-CLIENT-PRINCIPAL is not base64-encoded JSON" in malformed.body["error"]


def test_the_console_page_loads_for_anyone_it_holds_no_data() -> None:
    admission = admit("console", {}, ENTRA)

    assert admission.refusal is None
    assert admission.actor is None


def test_a_route_missing_from_the_table_is_an_error_naming_it() -> None:
    with pytest.raises(LookupError, match=r"'purge' has no entry in shared\.views\.signin"):
        admit("purge", OPERATOR, ENTRA)


@pytest.mark.parametrize(
    ("browser", "source"),
    [
        ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site cross-site"),
        ({"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site same-site"),  # another port or subdomain
        (
            {"Origin": "https://evil.example", "Host": "func.azurewebsites.net"},
            "Origin https://evil.example",
        ),
        # Found by test_principal_hostile.py: urlsplit raised ValueError on it, a 500.
        ({"Origin": "http://[::1", "Host": "func.azurewebsites.net"}, "Origin http://[::1"),
    ],
)
def test_a_write_a_page_of_another_site_sends_is_refused(
    browser: dict[str, str], source: str
) -> None:
    """A form another site posts carries the platform's session cookie with it."""
    for function in ("resubmit", "release"):
        refusal = admit(function, {**OPERATOR, **browser}, ENTRA).refusal

        assert refusal is not None and refusal.status == 403
        assert refusal.body["error"] == (
            f"refused to {ROUTES[function].action} for a page of another site ({source}): only "
            "the console's own page, or a program, may; open the console and do it there"
        )


@pytest.mark.parametrize(
    "browser",
    [
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://func.azurewebsites.net"},
        {"Origin": "https://func.azurewebsites.net", "Host": "func.azurewebsites.net"},
        {
            "Origin": "https://contoso-d365.example",
            "X-Forwarded-Host": "contoso-d365.example",
            "Host": "func.azurewebsites.net",
        },
        {},  # a program: no Origin, no Sec-Fetch-Site
    ],
)
def test_a_write_from_this_site_or_a_program_is_admitted(browser: dict[str, str]) -> None:
    assert admit("resubmit", {**OPERATOR, **browser}, ENTRA).refusal is None
    assert admit("release", {**OPERATOR, **browser}, ENTRA).refusal is None


def test_a_read_from_another_site_is_not_refused_for_that() -> None:
    # Reads change nothing, and the browser keeps their answer from the other site's page.
    assert admit("counts", {**READER, "Sec-Fetch-Site": "cross-site"}, ENTRA).refusal is None
