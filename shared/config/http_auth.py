"""The ``HTTP_AUTH`` setting: how callers of the HTTP routes prove who they are."""

from __future__ import annotations

import enum
from collections.abc import Mapping

from shared.config.parsers import parse_choice
from shared.config.reader import SettingsReader

__all__ = [
    "HTTP_AUTH_SETTING",
    "PLATFORM_AUTH_SETTING",
    "HttpAuthMode",
    "http_auth_mode",
    "parse_http_auth",
    "platform_auth_enabled",
    "read_http_auth",
]

HTTP_AUTH_SETTING = "HTTP_AUTH"
PLATFORM_AUTH_SETTING = "WEBSITE_AUTH_ENABLED"
"""Read-only: App Service injects it, ``True`` while its built-in authentication is on
(Microsoft Learn, "Environment variables and app settings in Azure App Service")."""

EXPECTED = "expected key (a function key guards every route) or entra (Entra ID sign-in)"


class HttpAuthMode(enum.StrEnum):
    """Who the HTTP routes let in."""

    KEY = "key"
    """Whoever holds a function key; the platform's principal headers are ignored."""
    ENTRA = "entra"
    """People and programs signed in with Entra ID, by App Service authentication, with an
    app role of this app."""


def parse_http_auth(raw: str) -> HttpAuthMode:
    """``key`` or ``entra`` (any case).

    :raises InvalidValueError: anything else.
    """
    return parse_choice(raw, HttpAuthMode, "an HTTP_AUTH mode")


def read_http_auth(reader: SettingsReader) -> HttpAuthMode:
    """Read ``HTTP_AUTH`` (default ``key``); a problem is noted on ``reader``."""
    return reader.parsed(HTTP_AUTH_SETTING, HttpAuthMode.KEY, parse_http_auth, EXPECTED)


def http_auth_mode(environ: Mapping[str, str]) -> HttpAuthMode:
    """The mode ``environ`` sets, read alone (before, and whatever, the other settings).

    :raises SettingsError: ``HTTP_AUTH`` is set to something else than a mode.
    """
    reader = SettingsReader(environ)
    mode = read_http_auth(reader)
    reader.raise_problems()
    return mode


def platform_auth_enabled(environ: Mapping[str, str]) -> bool:
    """Whether the platform says its built-in authentication is on (``WEBSITE_AUTH_ENABLED``
    is ``true``, any case): only then does it strip ``X-MS-CLIENT-PRINCIPAL*`` headers that
    callers send."""
    return (environ.get(PLATFORM_AUTH_SETTING) or "").strip().lower() == "true"
