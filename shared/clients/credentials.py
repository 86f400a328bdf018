"""The azure-identity credential that gets the app its F&O token.

One code path for the three identities F&O accepts for a recurring job's Entra app:
a client secret, a client certificate, or the function app's managed identity. The token
scope is ``<base url lower case>/.default`` (:attr:`shared.clients.d365.D365Client.scope`);
``shared.context`` maps the ``D365_*`` settings to these values.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.identity import (
    AzureAuthorityHosts,
    CertificateCredential,
    ClientSecretCredential,
    ManagedIdentityCredential,
)

from .d365 import DEFAULT_CONNECT_TIMEOUT, RetryPolicy

__all__ = ["TOKEN_READ_TIMEOUT", "build_credential", "is_microsoft_authority"]

_LOGGER = logging.getLogger(__name__)

_CLIENT_SECRET = "client_secret"  # noqa: S105 - a mode name, not a secret
_MANAGED_IDENTITY = "managed_identity"
_MODES = (_CLIENT_SECRET, "client_certificate", _MANAGED_IDENTITY)

# Entra answers a token request in well under a second; D365_HTTP_TIMEOUT is sized for F&O
# reading a large upload, so a token request waits at most this long between bytes.
TOKEN_READ_TIMEOUT = 30.0

# Entra hosts of Microsoft's clouds; any other host (a test emulator, a proxy) is not one.
_MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        AzureAuthorityHosts.AZURE_PUBLIC_CLOUD,
        AzureAuthorityHosts.AZURE_GOVERNMENT,
        AzureAuthorityHosts.AZURE_CHINA,
        "login.microsoft.com",
        "login.partner.microsoftonline.cn",
    }
)


def is_microsoft_authority(authority_host: str) -> bool:
    """True when ``authority_host`` (URL or bare host) is the Entra host of a Microsoft cloud."""
    host = urlsplit(authority_host if "://" in authority_host else f"https://{authority_host}")
    return (host.hostname or "") in _MICROSOFT_AUTHORITY_HOSTS


def build_credential(
    *,
    mode: str,
    tenant_id: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    client_certificate_path: str | None = None,
    client_certificate_password: str | None = None,
    managed_identity_client_id: str | None = None,
    authority_host: str = AzureAuthorityHosts.AZURE_PUBLIC_CLOUD,
    read_timeout: float,
) -> TokenCredential:
    """Build the credential for F&O: secret, certificate or managed identity.

    For an authority host that is not a Microsoft cloud's, instance discovery is turned off:
    otherwise MSAL first asks the public cloud about that host and fails offline.

    The token requests get the F&O client's bounds: connect ``DEFAULT_CONNECT_TIMEOUT``, read
    `read_timeout` (the app's ``D365_HTTP_TIMEOUT``) but at most ``TOKEN_READ_TIMEOUT``, and no
    retry after the client's retry budget (``RetryPolicy().total_timeout``), so a hung Entra
    cannot hold a poll tick or an upload for long. azure-core's defaults would be 300 s to
    connect, 300 s between bytes and retries for 7 days (``connection_timeout``,
    ``read_timeout``, ``timeout``).

    :keyword mode: ``client_secret``, ``client_certificate`` or ``managed_identity``.
    :raises ValueError: a secret or certificate without tenant or client id, or an unknown
        mode.
    :raises OSError: the certificate file cannot be read (azure-identity reads it here).
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    _LOGGER.info(
        "D365 credential: mode=%s client_id=%s tenant=%s authority=%s",
        mode,
        managed_identity_client_id if mode == _MANAGED_IDENTITY else client_id,
        tenant_id,
        authority_host,
    )
    timeouts = {
        "connection_timeout": DEFAULT_CONNECT_TIMEOUT,
        "read_timeout": min(read_timeout, TOKEN_READ_TIMEOUT),
        # azure-core's RetryPolicy: no retry starts after this many seconds (default 7 days).
        "timeout": RetryPolicy().total_timeout,
    }
    if mode == _MANAGED_IDENTITY:
        return ManagedIdentityCredential(client_id=managed_identity_client_id, **timeouts)
    if not tenant_id or not client_id:
        raise ValueError(
            f"D365_TENANT_ID and D365_CLIENT_ID are required with {mode}; "
            "set both (see Settings.from_env)"
        )
    options = {
        "authority": authority_host,
        "disable_instance_discovery": not is_microsoft_authority(authority_host),
        **timeouts,
    }
    if mode == _CLIENT_SECRET:
        return ClientSecretCredential(tenant_id, client_id, client_secret or "", **options)
    return CertificateCredential(
        tenant_id,
        client_id,
        client_certificate_path,
        password=client_certificate_password,
        **options,
    )
