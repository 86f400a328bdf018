"""The azure-identity credential that gets the app its F&O token, from the D365_* settings.

One code path for the three identities F&O accepts for a recurring job's Entra app:
a client secret, a client certificate, or the function app's managed identity. The token
scope is :attr:`shared.config.D365Settings.scope` (``<base url>/.default``).
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

from shared.clients.d365 import DEFAULT_CONNECT_TIMEOUT, RetryPolicy
from shared.config import AuthMode, D365Settings, Settings

__all__ = ["build_credential", "is_microsoft_authority"]

_LOGGER = logging.getLogger(__name__)

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


def build_credential(settings: Settings | D365Settings) -> TokenCredential:
    """Build the credential for F&O: secret, certificate or managed identity.

    For an authority host that is not a Microsoft cloud's, instance discovery is turned off:
    otherwise MSAL first asks the public cloud about that host and fails offline.

    The token requests get the F&O client's bounds: connect ``DEFAULT_CONNECT_TIMEOUT``, read
    ``D365_HTTP_TIMEOUT`` (azure-core's transport options ``connection_timeout`` and
    ``read_timeout``, 300 s each by default) and no retry after the client's retry budget
    (``RetryPolicy().total_timeout``; azure-core's ``timeout``, 7 days by default), so a hung
    Entra cannot hold a poll tick or an upload for long.

    :param settings: the app settings, or just their ``d365`` part.
    :raises ValueError: a secret or certificate without tenant or client id.
    :raises OSError: the certificate file cannot be read (azure-identity reads it here).
    """
    d365 = settings.d365 if isinstance(settings, Settings) else settings
    mode = d365.auth_mode
    _LOGGER.info(
        "D365 credential: mode=%s client_id=%s tenant=%s authority=%s",
        mode.value,
        d365.managed_identity_client_id if mode is AuthMode.MANAGED_IDENTITY else d365.client_id,
        d365.tenant_id,
        d365.authority_host,
    )
    timeouts = {
        "connection_timeout": DEFAULT_CONNECT_TIMEOUT,
        "read_timeout": d365.http_timeout.total_seconds(),
        # azure-core's RetryPolicy: no retry starts after this many seconds (default 7 days).
        "timeout": RetryPolicy().total_timeout,
    }
    if mode is AuthMode.MANAGED_IDENTITY:
        return ManagedIdentityCredential(client_id=d365.managed_identity_client_id, **timeouts)
    if not d365.tenant_id or not d365.client_id:
        raise ValueError(
            f"D365_TENANT_ID and D365_CLIENT_ID are required with {mode.value}; "
            "set both (see Settings.from_env)"
        )
    options = {
        "authority": d365.authority_host,
        "disable_instance_discovery": not is_microsoft_authority(d365.authority_host),
        **timeouts,
    }
    if mode is AuthMode.CLIENT_SECRET:
        return ClientSecretCredential(
            d365.tenant_id, d365.client_id, d365.client_secret or "", **options
        )
    return CertificateCredential(
        d365.tenant_id,
        d365.client_id,
        d365.client_certificate_path,
        password=d365.client_certificate_password,
        **options,
    )
