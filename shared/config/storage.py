"""The ``IntegrationStorage`` connection, read in the blob trigger's order of precedence.

A connection string wins, then ``__serviceUri``, then ``__blobServiceUri`` (with
``__queueServiceUri``, which the trigger needs) and ``__tableServiceUri``; ``__credential`` =
``managedidentity`` and ``__clientId`` pick the managed identity. A connection string is
never repeated in a problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared.config.parsers import parse_guid, parse_url
from shared.config.reader import SettingsReader, quotes_problem

__all__ = ["MANAGED_IDENTITY", "STORAGE_CONNECTION", "StorageSettings", "read_storage"]

STORAGE_CONNECTION = "IntegrationStorage"
MANAGED_IDENTITY = "managedidentity"
# <account>.<service>.core.<cloud suffix>: the public and sovereign clouds' endpoints.
_AZURE_ENDPOINT = re.compile(r"^[a-z0-9]+\.(blob|queue|table|file|dfs|web)\.core\.", re.ASCII)
# Which service each URI setting must name.
_SERVICES = {
    "serviceUri": "blob",
    "blobServiceUri": "blob",
    "queueServiceUri": "queue",
    "tableServiceUri": "table",
}


@dataclass(frozen=True)
class StorageSettings:
    """The ``IntegrationStorage`` connection: a connection string or identity-based URIs."""

    connection_string: str | None = field(default=None, repr=False)
    blob_service_uri: str | None = None
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    credential: str | None = None
    client_id: str | None = None

    @property
    def uses_connection_string(self) -> bool:
        """True for the connection-string form."""
        return self.connection_string is not None

    @property
    def uses_managed_identity(self) -> bool:
        """True when ``__credential`` is ``managedidentity`` (else DefaultAzureCredential)."""
        return self.credential == MANAGED_IDENTITY

    @property
    def account(self) -> str | None:
        """The account a connection string names (``development storage`` for Azurite)."""
        if self.connection_string is None:
            return None
        parts = _connection_string_parts(self.connection_string)
        if parts.get("usedevelopmentstorage", "").lower() == "true":
            return "development storage"
        return parts.get("accountname") or "unnamed"


def read_storage(reader: SettingsReader, connection: str = STORAGE_CONNECTION) -> StorageSettings:
    """Read the ``connection`` setting and its ``__`` forms; problems are noted on ``reader``."""
    conn = reader.get(connection)
    if conn is not None:
        if not reader.unresolved_key_vault_reference(connection):
            problem = _connection_string_problem(conn)
            if problem:
                reader.problem(connection, problem)
        return StorageSettings(connection_string=conn)
    if reader.get(f"{connection}__accountName") is not None and not reader.get(
        f"{connection}__blobServiceUri"
    ):
        reader.problem(
            f"{connection}__accountName",
            f"is honoured only for AzureWebJobsStorage; set {connection}__blobServiceUri, "
            "__queueServiceUri and __tableServiceUri instead",
        )
        return StorageSettings()
    return _read_identity(reader, connection)


def _connection_string_parts(text: str) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in text.split(";") if part.strip())
    return {key.strip().lower(): value.strip() for key, value in (p for p in pairs if len(p) == 2)}


def _connection_string_problem(text: str) -> str | None:
    quoted = quotes_problem(text)
    if quoted:
        return quoted
    if "://" in text and "=" not in text:
        return (
            "looks like a URL, not a connection string (value not shown); for an "
            f"identity-based connection set {STORAGE_CONNECTION}__blobServiceUri and the other "
            f"{STORAGE_CONNECTION}__* settings instead"
        )
    parts = _connection_string_parts(text)
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return None
    if "accountname" not in parts and "blobendpoint" not in parts:
        return (
            "is not a storage connection string (value not shown); expected "
            "'DefaultEndpointsProtocol=https;AccountName=<account>;AccountKey=<key>;"
            "EndpointSuffix=core.windows.net', or 'UseDevelopmentStorage=true' with Azurite"
        )
    if not parts.get("accountkey") and not parts.get("sharedaccesssignature"):
        return (
            "has no AccountKey or SharedAccessSignature (value not shown); copy the whole "
            "connection string from the storage account's Access keys, or use the "
            f"identity-based {STORAGE_CONNECTION}__* settings"
        )
    return None


def _read_identity(reader: SettingsReader, connection: str) -> StorageSettings:
    uris = {
        suffix: _service_uri(reader, connection, suffix, service)
        for suffix, service in _SERVICES.items()
    }
    credential = reader.get(f"{connection}__credential")
    if credential is not None and credential.lower() != MANAGED_IDENTITY:
        reader.problem(
            f"{connection}__credential",
            f"{credential!r} is not supported; expected {MANAGED_IDENTITY}, or leave it unset "
            "to use DefaultAzureCredential (e.g. your Azure CLI login locally)",
        )
    settings = StorageSettings(
        blob_service_uri=uris["serviceUri"] or uris["blobServiceUri"],
        queue_service_uri=uris["queueServiceUri"],
        table_service_uri=uris["tableServiceUri"],
        credential=credential.lower() if credential else None,
        client_id=reader.parsed(
            f"{connection}__clientId",
            None,
            parse_guid,
            "expected the user-assigned identity's client ID GUID",
            confidential=True,
        ),
    )
    _check_uris(reader, connection, uses_service_uri=bool(uris["serviceUri"]))
    return settings


def _service_uri(reader: SettingsReader, connection: str, suffix: str, service: str) -> str | None:
    name = f"{connection}__{suffix}"
    uri = reader.parsed(
        name,
        None,
        lambda raw: parse_url(raw, allow_path=True),
        f"expected e.g. https://<account>.{service}.core.windows.net",
    )
    found = _AZURE_ENDPOINT.match(urlsplit(uri).hostname or "") if uri else None
    if found and found.group(1) != service:
        reader.problem(
            name,
            f"{uri!r} is the {found.group(1)} service's endpoint; expected the {service} "
            f"service's, e.g. https://<account>.{service}.core.windows.net",
        )
    return uri


def _check_uris(reader: SettingsReader, connection: str, *, uses_service_uri: bool) -> None:
    names = [f"{connection}__{s}" for s in ("serviceUri", "blobServiceUri", "tableServiceUri")]
    if not any(reader.get(name) for name in [connection, *names]):
        reader.problem(
            connection,
            "missing; expected a connection string ('UseDevelopmentStorage=true' locally) or "
            f"{connection}__blobServiceUri, __queueServiceUri and __tableServiceUri with "
            f"{connection}__credential={MANAGED_IDENTITY}",
        )
        return
    if reader.get(names[0]) is None and reader.get(names[1]) is None:
        reader.problem(names[1], "missing; expected e.g. https://<account>.blob.core.windows.net")
    if reader.get(names[2]) is None:
        reader.problem(
            names[2],
            "missing; the status table needs it, e.g. https://<account>.table.core.windows.net",
        )
    if not uses_service_uri and reader.get(f"{connection}__queueServiceUri") is None:
        reader.problem(
            f"{connection}__queueServiceUri",
            "missing; the blob trigger needs it with __blobServiceUri, e.g. "
            "https://<account>.queue.core.windows.net",
        )
