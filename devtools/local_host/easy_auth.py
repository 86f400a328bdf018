"""A stand-in for App Service authentication in front of the local host (devtools only).

What Azure's authentication layer does for ``HTTP_AUTH=entra`` with the Bicep's
``authsettingsV2`` (``requireAuthentication``, ``Return401``, the console page and the blob
webhook excluded), played locally so tests and ``make run`` take the same path:

- every ``X-MS-CLIENT-PRINCIPAL*`` and ``X-MS-TOKEN-*`` header a caller sends is removed;
- ``/.auth/login/aad`` signs in one of a few test identities (a page to pick one, or
  ``?user=<key>``) with a session cookie, then redirects to ``post_login_redirect_uri`` (a
  path of this host only); ``/.auth/me`` answers who is signed in (401 when nobody is);
  ``/.auth/logout`` ends the session;
- a request with a session, or with ``Authorization: Bearer`` and a token :meth:`EasyAuth.token`
  minted, gets the principal headers (``X-MS-CLIENT-PRINCIPAL``: base64 JSON with ``auth_typ``,
  ``claims``, ``name_typ``, ``role_typ``, shaped as Entra's); one without gets 401, except on an
  excluded path;
- the host sets ``WEBSITE_AUTH_ENABLED=True``, as the platform does.

Tokens are opaque strings, not JWTs: Azure validates Entra's tokens before the app sees a
request, so the app never reads one either way.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, quote, urlsplit

from devtools.local_host.http_reply import HttpReply, json_reply

__all__ = ["IDENTITIES", "EasyAuth", "LocalIdentity", "principal_headers"]

SESSION_COOKIE = "AppServiceAuthSession"
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "3f1c0de2-6a58-4d0a-9a53-0c8c5d1f2b7e"
_NAME_TYP = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
_ROLE_TYP = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
_OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
_TID = "http://schemas.microsoft.com/identity/claims/tenantid"
_STRIPPED = ("x-ms-client-principal", "x-ms-token-")
EXCLUDED_PATHS = ("/api/console", "/runtime/webhooks/blobs")
"""As the Bicep's ``globalValidation.excludedPaths``."""


@dataclass(frozen=True)
class LocalIdentity:
    """A person or a program the stand-in signs in, with its app roles."""

    key: str
    name: str
    object_id: str
    roles: tuple[str, ...] = ()
    application: bool = False

    @property
    def username(self) -> str:
        """What ``X-MS-CLIENT-PRINCIPAL-NAME`` carries: the UPN, or a program's client id."""
        return self.object_id if self.application else f"{self.key}@contoso.example"

    def claims(self) -> list[dict[str, str]]:
        """The claims App Service puts in the principal for this identity's token."""
        claims = [
            {"typ": "aud", "val": f"api://{CLIENT_ID}"},
            {"typ": "iss", "val": f"https://login.microsoftonline.com/{TENANT_ID}/v2.0"},
            {"typ": _OID, "val": self.object_id},
            {"typ": _TID, "val": TENANT_ID},
            {"typ": "ver", "val": "2.0"},
        ]
        if self.application:
            claims += [{"typ": "azp", "val": self.name}, {"typ": "idtyp", "val": "app"}]
        else:
            claims += [
                {"typ": "name", "val": self.name},
                {"typ": "preferred_username", "val": self.username},
            ]
        return claims + [{"typ": "roles", "val": role} for role in self.roles]


IDENTITIES = (
    LocalIdentity(
        "riya", "Riya Reader", "0d6a1c0e-5f4b-4c3e-9e2a-1b7f3c5d8a01", ("Integration.Reader",)
    ),
    LocalIdentity(
        "omar", "Omar Operator", "5e2b7d4a-3c1f-4a8e-b6d9-2f0c8e1a7b02", ("Integration.Operator",)
    ),
    LocalIdentity("nina", "Nina No-role", "9a4c2e6f-1b3d-4f5a-8c7e-3d1b9f2a6c03"),
    LocalIdentity(
        "logic-app",
        "c7e1f3a5-2b4d-4c6e-9f8a-1d3b5c7e9a04",
        "b3d5f7a9-4c6e-4a8b-9d1f-5e7a9c1b3d05",
        ("Integration.Operator",),
        application=True,
    ),
)
"""A reader, an operator, a person with no role, and a Logic App's managed identity."""


def principal_headers(identity: LocalIdentity) -> dict[str, str]:
    """The ``X-MS-CLIENT-PRINCIPAL*`` headers App Service sends for ``identity``."""
    document = {
        "auth_typ": "aad",
        "claims": identity.claims(),
        "name_typ": _NAME_TYP,
        "role_typ": _ROLE_TYP,
    }
    encoded = base64.b64encode(json.dumps(document).encode()).decode()
    return {
        "X-MS-CLIENT-PRINCIPAL": encoded,
        "X-MS-CLIENT-PRINCIPAL-ID": identity.object_id,
        "X-MS-CLIENT-PRINCIPAL-NAME": identity.username,
        "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
    }


class EasyAuth:
    """The local stand-in for App Service authentication (see the module's text).

    :param identities: who may sign in, by key.
    :keyword require_authentication: False lets requests without a session through, with no
        principal (``unauthenticatedClientAction: AllowAnonymous``), so the app's own refusal
        shows.
    """

    def __init__(
        self,
        identities: Sequence[LocalIdentity] = IDENTITIES,
        *,
        require_authentication: bool = True,
        excluded_paths: Sequence[str] = EXCLUDED_PATHS,
    ) -> None:
        self.identities = {identity.key: identity for identity in identities}
        self._require = require_authentication
        self._excluded = tuple(path.lower() for path in excluded_paths)
        self._lock = threading.Lock()
        self._sessions: dict[str, LocalIdentity] = {}
        self._tokens: dict[str, LocalIdentity] = {}

    def session(self, key: str) -> str:
        """A session cookie value for ``key`` (as if they had signed in)."""
        value = secrets.token_urlsafe(24)
        with self._lock:
            self._sessions[value] = self.identities[key]
        return value

    def token(self, key: str) -> str:
        """A bearer token for ``key``, as a program gets from Entra for this app."""
        value = "local-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[value] = self.identities[key]
        return value

    def own(self, method: str, target: str, headers: Mapping[str, str]) -> HttpReply | None:
        """The reply of the platform's own ``/.auth/...`` routes; None for any other path."""
        parts = urlsplit(target)
        path = parts.path.lower().rstrip("/")
        if not path.startswith("/.auth"):
            return None
        params = dict(parse_qsl(parts.query))
        if path == "/.auth/me":
            identity = self._caller(headers)
            if identity is None:
                return json_reply(401, {"error": "not signed in"})
            body = json.dumps([_me(identity)]).encode()
            return HttpReply(200, (("Content-Type", "application/json; charset=utf-8"),), body)
        if path == "/.auth/login/aad":
            return self._login(params)
        if path == "/.auth/logout":
            cookie = _cookie(headers)
            with self._lock:
                self._sessions.pop(cookie or "", None)
            expired = f"{SESSION_COOKIE}=; Path=/; Max-Age=0"
            return _redirect(_local(params.get("post_logout_redirect_uri")), expired)
        return json_reply(404, {"error": f"{method} {parts.path}: not a route of the stand-in"})

    def authenticate(
        self, path: str, headers: Mapping[str, str]
    ) -> tuple[dict[str, str], HttpReply | None]:
        """The headers the app gets (callers' principal headers removed, the signed-in
        caller's added), or the 401 App Service answers instead."""
        kept = {k: v for k, v in headers.items() if not k.lower().startswith(_STRIPPED)}
        identity = self._caller(headers)
        if identity is not None:
            return kept | principal_headers(identity), None
        if self._require and not self._excluded_path(path):
            return kept, json_reply(
                401, {"error": "App Service authentication (local stand-in): not signed in"}
            )
        return kept, None

    def _excluded_path(self, path: str) -> bool:
        lowered = path.lower().rstrip("/")
        return any(lowered == p or lowered.startswith(p + "/") for p in self._excluded)

    def _caller(self, headers: Mapping[str, str]) -> LocalIdentity | None:
        lowered = {k.lower(): v for k, v in headers.items()}
        scheme, _, token = lowered.get("authorization", "").partition(" ")
        with self._lock:
            if scheme.lower() == "bearer":
                return self._tokens.get(token.strip())
            return self._sessions.get(_cookie(headers) or "")

    def _login(self, params: Mapping[str, str]) -> HttpReply:
        back = _local(params.get("post_login_redirect_uri"))
        key = params.get("user")
        people = [i for i in self.identities.values() if not i.application]
        if key is None:
            return _chooser(people, back)
        if key not in {person.key for person in people}:
            # A program signs in with a token (EasyAuth.token), never in a browser.
            return json_reply(400, {"error": f"no person among the test identities is {key!r}"})
        cookie = f"{SESSION_COOKIE}={self.session(key)}; Path=/; HttpOnly; SameSite=Lax"
        return _redirect(back, cookie)


def _me(identity: LocalIdentity) -> dict[str, object]:
    return {
        "provider_name": "aad",
        "user_id": identity.username,
        "user_claims": identity.claims(),
    }


def _cookie(headers: Mapping[str, str]) -> str | None:
    raw = next((v for k, v in headers.items() if k.lower() == "cookie"), "")
    morsel = SimpleCookie(raw).get(SESSION_COOKIE)
    return morsel.value if morsel else None


def _local(uri: str | None) -> str:
    # As the platform: redirects stay on this site (allowedExternalRedirectUrls is empty).
    # A browser reads a backslash as a slash ("/\\host" is "//host"), and a control
    # character would end the Location header: neither is a path of this site.
    text = uri or "/"
    parts = urlsplit(text)
    if (
        parts.scheme
        or parts.netloc
        or not parts.path.startswith("/")
        or "\\" in text
        or any(ord(char) < 0x20 or ord(char) == 0x7F for char in text)
    ):
        return "/"
    return text


def _redirect(location: str, cookie: str) -> HttpReply:
    return HttpReply(302, (("Location", location), ("Set-Cookie", cookie)), b"")


def _chooser(identities: Iterable[LocalIdentity], back: str) -> HttpReply:
    rows = "".join(
        f'<li><a id="signin-{html.escape(i.key)}" href="/.auth/login/aad?user='
        f'{quote(i.key)}&amp;post_login_redirect_uri={quote(back)}">'
        f"{html.escape(i.name)}</a> {html.escape(', '.join(i.roles) or 'no role')}</li>"
        for i in identities
    )
    page = (
        "<!doctype html><title>Sign in (local stand-in)</title>"
        "<h1>Sign in: local stand-in for Entra ID</h1>"
        f"<p>Pick a test identity.</p><ul id='identities'>{rows}</ul>"
    )
    return HttpReply(200, (("Content-Type", "text/html; charset=utf-8"),), page.encode())
