"""The storage service clients (blob, table), each with bounded timeouts, retries, pool size.

Each takes a connection string (Azurite locally), or a service endpoint with an Entra
credential: the managed identity (a user-assigned one by its client id) or
``DefaultAzureCredential`` (e.g. a developer's Azure CLI login). ``shared.context`` maps the
``IntegrationStorage`` settings to these values.

Every client gets explicit connect/read timeouts and a bounded retry count: the SDK
defaults are 10 retries, too many for a timer tick with a time budget.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import requests
from azure.core.credentials import TokenCredential
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableServiceClient
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.blob import BlobServiceClient

from ..sessions import PinnedSession

__all__ = [
    "CONNECTION_TIMEOUT",
    "POOL_SIZE",
    "READ_TIMEOUT",
    "RETRY_TOTAL",
    "STREAM_CHUNK",
    "blob_service_client",
    "storage_credential",
    "table_service_client",
]

_LOGGER = logging.getLogger(__name__)

CONNECTION_TIMEOUT = 10.0
"""Seconds to establish a connection to storage."""
READ_TIMEOUT = 60.0
"""Seconds to wait for each read from storage (per socket read, not per transfer)."""
RETRY_TOTAL = 3
"""Retries after the first attempt of one storage call."""
BLOB_RETRY_BACKOFF = {"initial_backoff": 1, "increment_base": 2}
"""The blob SDK waits 15 s, then 18 s, 24 s... by default: too long inside a timer tick or a
trigger whose caller waits; the table SDK's default (0.8 s doubling) is kept."""
STREAM_CHUNK = 4 * 1024 * 1024
"""Bytes per GET when a blob is downloaded: the SDK's first GET would otherwise hold up to
32 MiB in memory, so files go to F&O as a stream with a few MiB in memory whatever their size."""


def storage_credential(*, managed_identity: bool, client_id: str | None) -> TokenCredential:
    """The Entra credential for a service endpoint: the managed identity (``client_id`` for a
    user-assigned one), else ``DefaultAzureCredential`` preferring that managed identity."""
    if managed_identity:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential(managed_identity_client_id=client_id)


POOL_SIZE = 16
"""Connections kept per service client: one per call in flight (a poll tick runs
``POLL_CONCURRENCY`` at once); a smaller pool discards connections and opens new ones."""


def _transport(pool_maxsize: int, **timeouts: float) -> RequestsTransport:
    # The environment's proxies and CA bundle, read once (requests reads them per request).
    session = PinnedSession()
    adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=pool_maxsize)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # The timeouts belong to the transport: a client given one does not pass its own on.
    # So does the read size of a streamed download: azure-core's default is 4 KiB (the
    # storage SDK sets 4 MiB only on a transport it builds itself), which costs a Python
    # call per 4 KiB of every file streamed to F&O.
    transport = RequestsTransport(
        session=session,
        session_owner=True,
        connection_data_block_size=STREAM_CHUNK,
        **timeouts,
    )
    # azure-core passes its own `verify` with every request, which overrides the session's.
    transport.connection_config.verify = session.verify
    return transport


def _options(
    connection_timeout: float,
    read_timeout: float,
    retry_total: int,
    pool_maxsize: int,
    extra: dict[str, Any],
) -> dict[str, Any]:
    return {
        "connection_timeout": connection_timeout,
        "read_timeout": read_timeout,
        "retry_total": retry_total,
        "transport": _transport(
            pool_maxsize, connection_timeout=connection_timeout, read_timeout=read_timeout
        ),
        **extra,
    }


_ServiceClient = TypeVar("_ServiceClient", BlobServiceClient, TableServiceClient)


def _service_client(
    kind: type[_ServiceClient],
    *,
    connection_string: str | None,
    endpoint: str | None,
    credential: TokenCredential | None,
    options: dict[str, Any],
) -> _ServiceClient:
    if connection_string is not None:
        client = kind.from_connection_string(connection_string, **options)
    elif not endpoint or credential is None:
        raise ValueError(
            f"{kind.__name__} needs a connection string, or an endpoint and a credential"
        )
    else:
        _LOGGER.debug("%s: endpoint=%s", kind.__name__, endpoint)
        client = kind(endpoint, credential=credential, **options)
    return client


def blob_service_client(
    *,
    connection_string: str | None = None,
    endpoint: str | None = None,
    credential: TokenCredential | None = None,
    connection_timeout: float = CONNECTION_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
    retry_total: int = RETRY_TOTAL,
    pool_maxsize: int = POOL_SIZE,
    **client_options: Any,
) -> BlobServiceClient:
    """A blob service client with bounded timeouts and retries.

    :keyword connection_string: the account's connection string; else `endpoint` with
        `credential` (see :func:`storage_credential`).
    :keyword pool_maxsize: connections kept open (calls in flight at once).
    :keyword client_options: further azure-core client options (``raw_request_hook``,
        ``raw_response_hook``, ``transport``...).
    :raises ValueError: neither a connection string nor an endpoint with a credential.
    """
    return _service_client(
        BlobServiceClient,
        connection_string=connection_string,
        endpoint=endpoint,
        credential=credential,
        options=_options(
            connection_timeout,
            read_timeout,
            retry_total,
            pool_maxsize,
            {"max_single_get_size": STREAM_CHUNK, "max_chunk_get_size": STREAM_CHUNK}
            | BLOB_RETRY_BACKOFF
            | client_options,
        ),
    )


def table_service_client(
    *,
    connection_string: str | None = None,
    endpoint: str | None = None,
    credential: TokenCredential | None = None,
    connection_timeout: float = CONNECTION_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
    retry_total: int = RETRY_TOTAL,
    pool_maxsize: int = POOL_SIZE,
    **client_options: Any,
) -> TableServiceClient:
    """A table service client with bounded timeouts and retries.

    :keyword connection_string: the account's connection string; else `endpoint` with
        `credential` (see :func:`storage_credential`).
    :keyword pool_maxsize: connections kept open (calls in flight at once).
    :keyword client_options: further azure-core client options (``raw_request_hook``,
        ``raw_response_hook``, ``transport``...).
    :raises ValueError: neither a connection string nor an endpoint with a credential.
    """
    return _service_client(
        TableServiceClient,
        connection_string=connection_string,
        endpoint=endpoint,
        credential=credential,
        options=_options(
            connection_timeout, read_timeout, retry_total, pool_maxsize, client_options
        ),
    )
