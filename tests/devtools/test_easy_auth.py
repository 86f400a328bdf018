"""The local stand-in for App Service authentication, on its own: what it answers on
``/.auth/*``, what it lets through to the app, and what it never does (redirect off the site,
let a caller's own principal headers through, render a name as HTML)."""

from __future__ import annotations

import base64
import json

from devtools.local_host import IDENTITIES, EasyAuth, LocalIdentity, principal_headers
from shared.views.signin import Role, read_principal

FORGED = {
    "X-MS-CLIENT-PRINCIPAL": "Zm9yZ2Vk",
    "x-ms-client-principal-id": "x",
    "X-MS-TOKEN-AAD-ID-TOKEN": "t",
}


def test_me_is_401_for_nobody_and_the_claims_for_a_session() -> None:
    auth = EasyAuth()
    cookie = {"Cookie": f"AppServiceAuthSession={auth.session('riya')}"}

    assert auth.own("GET", "/.auth/me", {}).status == 401
    me = auth.own("GET", "/.auth/me", cookie)

    assert me.status == 200
    [entry] = json.loads(me.body)
    assert entry["provider_name"] == "aad"
    assert {"typ": "roles", "val": "Integration.Reader"} in entry["user_claims"]


def test_sign_in_redirects_only_within_the_site() -> None:
    auth = EasyAuth()

    inside = auth.own("GET", "/.auth/login/aad?user=omar&post_login_redirect_uri=/api/console", {})
    outside = auth.own(
        "GET", "/.auth/login/aad?user=omar&post_login_redirect_uri=https://evil.example/x", {}
    )

    assert (inside.status, dict(inside.headers)["Location"]) == (302, "/api/console")
    assert dict(outside.headers)["Location"] == "/"
    # A browser reads "/\\host" as "//host", another site; a CR LF would write a header.
    for sneaky in ("/%5Cevil.example/x", "%2F%2Fevil.example", "/api%0D%0ASet-Cookie:%20x=1"):
        reply = auth.own("GET", f"/.auth/login/aad?user=omar&post_login_redirect_uri={sneaky}", {})
        assert dict(reply.headers)["Location"] == "/", sneaky
        logout = auth.own("GET", f"/.auth/logout?post_logout_redirect_uri={sneaky}", {})
        assert dict(logout.headers)["Location"] == "/", sneaky
    assert dict(inside.headers)["Set-Cookie"].startswith("AppServiceAuthSession=")
    assert "HttpOnly" in dict(inside.headers)["Set-Cookie"]


def test_the_chooser_renders_names_as_text() -> None:
    auth = EasyAuth(
        [
            LocalIdentity(
                "x", "<img src=x onerror=alert(1)>", "0" * 8 + "-0000-0000-0000-" + "0" * 12
            )
        ]
    )

    page = auth.own("GET", "/.auth/login/aad?post_login_redirect_uri=/api/console", {}).body

    assert b"<img" not in page
    assert b"&lt;img src=x onerror=alert(1)&gt;" in page


def test_callers_own_principal_headers_never_reach_the_app() -> None:
    auth = EasyAuth(require_authentication=False)

    anonymous, refusal = auth.authenticate("/api/counts", FORGED)
    signed_in, _ = auth.authenticate(
        "/api/counts", {**FORGED, "Authorization": f"Bearer {auth.token('logic-app')}"}
    )

    assert refusal is None
    assert not [name for name in anonymous if name.lower().startswith("x-ms-")]
    principal = read_principal(signed_in)
    assert principal is not None
    assert principal.roles == {Role.OPERATOR}
    assert signed_in["X-MS-CLIENT-PRINCIPAL"] != FORGED["X-MS-CLIENT-PRINCIPAL"]


def test_nobody_gets_401_except_on_the_excluded_paths() -> None:
    auth = EasyAuth()

    assert auth.authenticate("/api/counts", {})[1].status == 401
    assert auth.authenticate("/api/console", {})[1] is None
    assert auth.authenticate("/runtime/webhooks/blobs", {})[1] is None
    assert auth.authenticate("/api/counts", {"Authorization": "Bearer not-minted"})[1].status == 401


def test_the_principal_is_shaped_as_app_services() -> None:
    headers = principal_headers(IDENTITIES[0])
    document = json.loads(base64.b64decode(headers["X-MS-CLIENT-PRINCIPAL"]))

    assert set(document) == {"auth_typ", "claims", "name_typ", "role_typ"}
    assert all(set(claim) == {"typ", "val"} for claim in document["claims"])
    assert headers["X-MS-CLIENT-PRINCIPAL-IDP"] == "aad"
    assert headers["X-MS-CLIENT-PRINCIPAL-ID"] == IDENTITIES[0].object_id


def test_only_people_sign_in_in_a_browser_programs_use_tokens() -> None:
    auth = EasyAuth()

    chooser = auth.own("GET", "/.auth/login/aad", {}).body
    program = auth.own("GET", "/.auth/login/aad?user=logic-app", {})

    assert b"Riya Reader" in chooser
    assert b"signin-logic-app" not in chooser
    assert program.status == 400
