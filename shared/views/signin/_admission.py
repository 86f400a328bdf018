"""Whether one HTTP request may run its route, in the app's ``HTTP_AUTH`` mode.

``key``: the function key guarded the request before the app saw it (the routes' auth level);
the caller is :meth:`Actor.function_key` with every role, and the principal headers are never
read. ``entra``: App Service authentication signed the caller in; unless the platform says its
authentication is on (only then are callers' own ``X-MS-CLIENT-PRINCIPAL*`` headers stripped),
every route answers 503 naming the reason. Then a route needs a principal (401 without one)
holding the route's role (403 naming it); a route that changes something also refuses a
browser's request from another site (403): the platform's session cookie would ride along
with a form another site posts, so the request's own ``Sec-Fetch-Site`` (or, from a browser
too old to send it, ``Origin``) must say it came from this site. Programs send neither.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.config import HttpAuthMode, SettingsError, http_auth_mode, platform_auth_enabled
from shared.tracking import Actor
from shared.views.response import ApiResponse
from shared.views.signin._principal import Principal, PrincipalError, read_principal
from shared.views.signin._roles import Role, RouteAccess, route_access

__all__ = ["LOGIN_PATH", "Admission", "admit"]

_LOGGER = logging.getLogger(__name__)
LOGIN_PATH = "/.auth/login/aad"
_EVERY_ROLE = frozenset(Role)


@dataclass(frozen=True)
class Admission:
    """The outcome for one request: the caller and their roles, or the refusal to answer."""

    actor: Actor | None
    roles: frozenset[Role]
    refusal: ApiResponse | None = None


def _platform_problem(environ: Mapping[str, str]) -> str | None:
    """Why ``entra`` mode cannot serve with these app settings, or None when it can."""
    if platform_auth_enabled(environ):
        return None
    return (
        "HTTP_AUTH is entra but App Service authentication is not on (WEBSITE_AUTH_ENABLED is "
        "not True), so the sign-in headers could be forged: every route answers 503 until "
        "authentication is enabled (infra: the httpAuth parameter; see docs/auth.md), or set "
        "HTTP_AUTH=key"
    )


def admit(function: str, headers: Mapping[str, str], environ: Mapping[str, str]) -> Admission:
    """May this request run HTTP function ``function``? Reads ``HTTP_AUTH`` from ``environ``.

    :raises LookupError: ``function`` is not in the route table.
    """
    access = route_access(function)
    try:
        mode = http_auth_mode(environ)
    except SettingsError as exc:
        return Admission(None, frozenset(), ApiResponse(503, _unavailable(str(exc))))
    if mode is HttpAuthMode.KEY:
        return Admission(Actor.function_key(), _EVERY_ROLE)
    problem = _platform_problem(environ)
    if problem is not None:
        return Admission(None, frozenset(), ApiResponse(503, _unavailable(problem)))
    return _signed_in(function, access, headers)


def _signed_in(function: str, access: RouteAccess, headers: Mapping[str, str]) -> Admission:
    """``entra`` mode with the platform's authentication on: the principal, and its role."""
    try:
        principal = read_principal(headers)
    except PrincipalError as exc:
        _LOGGER.warning("signin refused function=%s status=401 reason=%s", function, exc)
        return _refused(401, f"the sign-in headers were refused: {exc}")
    if access.role is None:
        return Admission(principal.actor if principal else None, _roles(principal))
    if principal is None:
        return _refused(
            401,
            f"sign in first: nobody is signed in. People open the console ({LOGIN_PATH} signs "
            f"them in); programs send an Entra access token for this app holding the app role "
            f"{access.role.value}",
        )
    if access.writes and (source := _other_site(headers)) is not None:
        _LOGGER.warning(
            "signin refused function=%s status=403 cross_site=%s object_id=%s",
            function,
            source,
            principal.actor.object_id,
        )
        return _refused(
            403,
            f"refused to {access.action} for a page of another site ({source}): only the "
            "console's own page, or a program, may; open the console and do it there",
        )
    if not any(role.grants(access.role) for role in principal.roles):
        actor = principal.actor
        _LOGGER.warning(
            "signin refused function=%s status=403 kind=%s object_id=%s",
            function,
            actor.kind.value,
            actor.object_id,
        )
        return _refused(
            403,
            f"{actor.name} ({actor.kind.value}) may not {access.action}: that needs the app role "
            f"{access.role.value}; ask an administrator of the app registration to assign it "
            "(docs/auth.md)",
            required_role=access.role.value,
        )
    return Admission(principal.actor, principal.roles)


def _other_site(headers: Mapping[str, str]) -> str | None:
    """What shows a browser sent the request from a page of another site, or None."""
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    fetch_site = lowered.get("sec-fetch-site", "").lower()
    if fetch_site:
        # "none": typed or bookmarked by the person; "same-origin": the console's own page.
        return None if fetch_site in ("same-origin", "none") else f"Sec-Fetch-Site {fetch_site}"
    origin = lowered.get("origin")
    if origin is None:
        return None
    hosts = {lowered.get("host", "").lower(), lowered.get("x-forwarded-host", "").lower()}
    try:
        netloc = urlsplit(origin).netloc.lower()
    except ValueError:  # e.g. "http://[::1": no origin of this site either
        netloc = ""
    return None if netloc in hosts - {""} else f"Origin {origin[:100]}"


def _roles(principal: Principal | None) -> frozenset[Role]:
    return principal.roles if principal is not None else frozenset()


def _refused(status: int, message: str, **extra: str) -> Admission:
    return Admission(None, frozenset(), ApiResponse(status, {"error": message, **extra}))


def _unavailable(reason: str) -> dict[str, object]:
    # Shaped as a failed health check too, so /api/health is red with the reason.
    return {
        "error": reason,
        "healthy": False,
        "checks": {"http_auth": {"ok": False, "error": reason}},
    }
