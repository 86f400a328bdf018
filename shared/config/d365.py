"""The ``D365_*`` settings: where F&O is, how the app gets its token, its timeouts.

The values of identity settings (tenant, client ids, secret, certificate) are never repeated
in a problem: a secret pasted into the wrong setting must not reach a log or a response.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import timedelta

from shared.clients.d365 import normalize_sas_host
from shared.config.parsers import EXAMPLE_GUID, InvalidValueError, parse_guid, parse_url
from shared.config.reader import SettingsReader

__all__ = ["DEFAULT_AUTHORITY_HOST", "AuthMode", "D365Settings", "read_d365"]

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
_NOT_TENANTS = ("common", "organizations", "consumers")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,253}\Z", re.ASCII)
_DEFAULT_TIMEOUT = timedelta(seconds=300)
# A call or a send bounded below a second is a typo; beyond an hour the host stops it anyway.
_SHORTEST_TIMEOUT = timedelta(seconds=1)
_LONGEST_TIMEOUT = timedelta(hours=1)
_CLIENT_ID_FORM = f"expected the application (client) ID GUID, e.g. {EXAMPLE_GUID}"


class AuthMode(enum.StrEnum):
    """How the app gets its F&O token."""

    CLIENT_SECRET = "client_secret"  # noqa: S105 - a mode name, not a secret
    CLIENT_CERTIFICATE = "client_certificate"
    MANAGED_IDENTITY = "managed_identity"


@dataclass(frozen=True)
class D365Settings:
    """Where F&O is and how to get a token for it."""

    base_url: str
    authority_host: str = DEFAULT_AUTHORITY_HOST
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    client_certificate_path: str | None = None
    client_certificate_password: str | None = field(default=None, repr=False)
    managed_identity_client_id: str | None = None
    http_timeout: timedelta = _DEFAULT_TIMEOUT
    write_timeout: timedelta = _DEFAULT_TIMEOUT
    sas_hosts: tuple[str, ...] = ()
    """Hosts SAS URLs from F&O may point at besides its cloud's blob endpoints."""

    @property
    def auth_mode(self) -> AuthMode:
        """Secret, certificate or managed identity, from which settings are present."""
        if self.client_secret:
            return AuthMode.CLIENT_SECRET
        if self.client_certificate_path:
            return AuthMode.CLIENT_CERTIFICATE
        return AuthMode.MANAGED_IDENTITY

    @property
    def scope(self) -> str:
        """The token scope: the base URL, lower case, no trailing slash, plus ``/.default``."""
        return f"{self.base_url.lower().rstrip('/')}/.default"


def read_d365(reader: SettingsReader) -> D365Settings:
    """Read the ``D365_*`` settings; problems are noted on ``reader``."""
    if reader.get("D365_BASE_URL") is None:
        reader.problem(
            "D365_BASE_URL", "missing; expected e.g. https://contoso.operations.dynamics.com"
        )
    settings = D365Settings(
        base_url=reader.parsed(
            "D365_BASE_URL",
            "",
            parse_url,
            "expected the environment root, e.g. https://contoso.operations.dynamics.com",
        ),
        authority_host=reader.parsed(
            "D365_AUTHORITY_HOST",
            DEFAULT_AUTHORITY_HOST,
            lambda raw: parse_url(raw, default_scheme="https"),
            f"expected the Entra host, e.g. {DEFAULT_AUTHORITY_HOST}",
        ),
        tenant_id=reader.parsed(
            "D365_TENANT_ID",
            None,
            _parse_tenant,
            "expected the tenant GUID or a domain such as contoso.onmicrosoft.com",
            confidential=True,
        ),
        client_id=reader.parsed(
            "D365_CLIENT_ID", None, parse_guid, _CLIENT_ID_FORM, confidential=True
        ),
        client_secret=reader.get("D365_CLIENT_SECRET"),
        client_certificate_path=reader.get("D365_CLIENT_CERTIFICATE_PATH"),
        client_certificate_password=reader.get("D365_CLIENT_CERTIFICATE_PASSWORD"),
        managed_identity_client_id=reader.parsed(
            "D365_MANAGED_IDENTITY_CLIENT_ID",
            None,
            parse_guid,
            "expected the user-assigned identity's client ID GUID, e.g. " + EXAMPLE_GUID,
            confidential=True,
        ),
        http_timeout=_timeout(reader, "D365_HTTP_TIMEOUT"),
        write_timeout=_timeout(reader, "D365_WRITE_TIMEOUT"),
        sas_hosts=reader.parsed(
            "D365_SAS_HOSTS",
            (),
            _parse_hosts,
            "expected host names or IP addresses separated by commas, e.g. 127.0.0.1 for the "
            "local emulator",
        ),
    )
    _check_identity(reader, settings)
    return settings


def _timeout(reader: SettingsReader, name: str) -> timedelta:
    return reader.duration(
        name, _DEFAULT_TIMEOUT, minimum=_SHORTEST_TIMEOUT, maximum=_LONGEST_TIMEOUT
    )


def _parse_hosts(raw: str) -> tuple[str, ...]:
    return tuple(normalize_sas_host(host) for host in re.split(r"[,\s]+", raw) if host)


def _parse_tenant(raw: str) -> str:
    if raw.lower() in _NOT_TENANTS:
        raise InvalidValueError(
            raw,
            "is a multi-tenant endpoint's name; F&O needs a token from the tenant itself",
        )
    if not _TENANT.match(raw):
        raise InvalidValueError(raw, "is not a tenant id")
    return raw


def _check_identity(reader: SettingsReader, settings: D365Settings) -> None:
    """Problems of the identity settings taken together (which ones go with which)."""
    secret, cert = settings.client_secret, settings.client_certificate_path
    for name in ("D365_CLIENT_SECRET", "D365_CLIENT_CERTIFICATE_PASSWORD"):
        reader.unresolved_key_vault_reference(name)
    if secret and _is_guid(secret):
        reader.problem(
            "D365_CLIENT_SECRET",
            "holds a GUID, which is the secret's ID, not the secret (value not shown); copy "
            "the secret's Value from Certificates & secrets (it is shown only when the secret "
            "is created)",
        )
    if secret and cert:
        reader.problem(
            "D365_CLIENT_SECRET",
            "set together with D365_CLIENT_CERTIFICATE_PATH; set only one of them",
        )
    if settings.client_certificate_password and not cert:
        reader.problem(
            "D365_CLIENT_CERTIFICATE_PASSWORD",
            "set without D365_CLIENT_CERTIFICATE_PATH; set the certificate path or remove it",
        )
    if secret or cert:
        _check_app_identity(reader, settings)
    elif reader.get("D365_CLIENT_ID") is not None:
        reader.problem(
            "D365_CLIENT_ID",
            "set without D365_CLIENT_SECRET or D365_CLIENT_CERTIFICATE_PATH; set one of them, or "
            "remove D365_CLIENT_ID to use the managed identity (D365_MANAGED_IDENTITY_CLIENT_ID "
            "for a user-assigned one)",
        )


def _check_app_identity(reader: SettingsReader, settings: D365Settings) -> None:
    kind = "a client secret" if settings.client_secret else "a client certificate"
    for name in ("D365_TENANT_ID", "D365_CLIENT_ID"):
        if reader.get(name) is None:
            reader.problem(name, f"missing; required with {kind}")
    if (
        settings.client_id
        and settings.tenant_id
        and settings.client_id == _guid_or_none(settings.tenant_id)
    ):
        reader.problem(
            "D365_CLIENT_ID",
            "is the same GUID as D365_TENANT_ID (value not shown); copy the Application "
            "(client) ID from the app registration's Overview, not the Directory (tenant) ID",
        )
    if reader.get("D365_MANAGED_IDENTITY_CLIENT_ID") is not None:
        reader.problem(
            "D365_MANAGED_IDENTITY_CLIENT_ID",
            f"set together with {kind}; it applies only without a secret or certificate: "
            "remove it, or remove the secret/certificate to use the managed identity",
        )


def _guid_or_none(text: str) -> str | None:
    try:
        return parse_guid(text)
    except InvalidValueError:
        return None


def _is_guid(text: str) -> bool:
    return _guid_or_none(text) is not None
