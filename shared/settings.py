"""Every app setting of the function app, read once and validated as a whole.

:meth:`Settings.from_env` reads the environment (app settings in Azure, ``Values`` of
``local.settings.json`` locally), does no I/O, and raises one :class:`SettingsError` that lists
every problem, each naming the setting, what is wrong and the expected form. Secret values
(client secret, certificate password, storage connection string) never appear in a ``repr``
or an error.

F&O connection and identity:

``D365_BASE_URL``                   required; the environment root, e.g.
                                    ``https://contoso.operations.dynamics.com``; https (http only
                                    for loopback hosts, e.g. the local emulator); kept lower case
                                    without trailing slash.
``D365_AUTHORITY_HOST``             default ``https://login.microsoftonline.com``; the Entra
                                    host of a sovereign cloud, or the emulator.
``D365_TENANT_ID``                  tenant GUID or domain; required with a secret or certificate.
``D365_CLIENT_ID``                  the Entra app registered in F&O (System administration >
                                    Setup > Microsoft Entra applications); required with a secret
                                    or certificate.
``D365_CLIENT_SECRET``              the app's secret (in Azure: a Key Vault reference), or
``D365_CLIENT_CERTIFICATE_PATH``    a PEM or PFX certificate file, with optional
                                    ``D365_CLIENT_CERTIFICATE_PASSWORD``. Both set is an error.
                                    Neither: the app's managed identity, a user-assigned one when
``D365_MANAGED_IDENTITY_CLIENT_ID`` names its client id.
``D365_HTTP_TIMEOUT``               read timeout of one F&O call, default ``300s``.

Routing and storage:

``D365_ROUTES``                     required; JSON list of routes (see :mod:`shared.routing`).
``MAX_FILE_BYTES``                  limit for routes without ``max_bytes``, default ``48MiB``:
                                    F&O answered 413 to a 50 MB file (RIS issue #135), so the
                                    default stays below that.
``IntegrationStorage``              the storage connection shared with the blob trigger: a
                                    connection string, or identity-based
                                    ``IntegrationStorage__serviceUri`` (blob only) /
                                    ``__blobServiceUri`` (+ ``__queueServiceUri``, which the
                                    trigger needs) and ``__tableServiceUri``, with
                                    ``__credential`` = ``managedidentity`` and ``__clientId`` for
                                    a user-assigned identity. The connection string wins, then
                                    ``__serviceUri``, then ``__blobServiceUri``, as the trigger
                                    resolves them.
``INBOUND_CONTAINER``               default ``d365-inbound`` (must equal the trigger's path).
``ARCHIVE_CONTAINER``               default ``d365-archive``: finished files are moved here.
``ERRORS_CONTAINER``                default ``d365-execution-errors``: execution errors too large
                                    for a table row.
``ARCHIVE_MODE``                    ``move`` (default: copy to the archive, then delete) or
                                    ``metadata`` (leave the file, stamp its outcome in metadata).
``STATUS_TABLE``                    default ``d365messages``.

Polling:

``POLL_SCHEDULE``                   NCRONTAB, 6 fields (5 accepted), default ``0 */1 * * * *``.
``POLL_CONCURRENCY``                F&O calls in flight per tick, default 16, 1..64.
``POLL_TICK_BUDGET``                a tick starts no new work after this, default ``4m``.
``POLL_INTERVAL_MIN`` / ``_MAX``    back-off between polls of one message, ``30s`` / ``10m``.
``MAX_PENDING_AGE``                 a message not terminal after this is ``TimedOut``, ``24h``.
``CLAIM_LEASE``                     a claimed file not enqueued after this is recovered, ``10m``.

Durations accept ``90s``, ``30m``, ``24h``, ``1d``, ISO 8601 ``PT24H``, ``hh:mm:ss`` (also
``d.hh:mm:ss``) or plain seconds.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from shared.routing import RouteConfigError, RouteTable, normalise_guid, parse_byte_size

__all__ = [
    "DEFAULT_AUTHORITY_HOST",
    "ArchiveMode",
    "AuthMode",
    "D365Settings",
    "Settings",
    "SettingsError",
    "StorageSettings",
    "parse_duration",
]

_T = TypeVar("_T")

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
STORAGE_CONNECTION = "IntegrationStorage"
MANAGED_IDENTITY = "managedidentity"
_EXAMPLE_GUID = "6d31e09f-0249-459f-94f0-aad9c2c47b64"
_KEY_VAULT_REFERENCE = "@microsoft.keyvault("
_NOT_TENANTS = ("common", "organizations", "consumers")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$")
_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_TABLE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SIMPLE_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])?$", re.IGNORECASE)
_ISO_DURATION = re.compile(
    # Lookaheads refuse the empty forms "P", "PT" and "P1DT".
    r"^P(?=\d|T\d)(?:(?P<d>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_CLOCK_DURATION = re.compile(
    r"^(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>[0-5]\d):(?P<s>[0-5]\d(?:\.\d+)?)$"
)
# RetryPolicy().total_timeout of the F&O client: how long one call may keep retrying.
_ENQUEUE_RETRY_BUDGET = timedelta(seconds=120)


def _shown_duration(value: timedelta) -> str:
    return f"{int(value.total_seconds())}s"


_DURATION_FORMS = "expected e.g. 90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"


class AuthMode(enum.StrEnum):
    """How the app gets its F&O token."""

    CLIENT_SECRET = "client_secret"  # noqa: S105 - a mode name, not a secret
    CLIENT_CERTIFICATE = "client_certificate"
    MANAGED_IDENTITY = "managed_identity"


class ArchiveMode(enum.StrEnum):
    """What happens to a file once F&O has finished with it."""

    MOVE = "move"
    METADATA = "metadata"


class SettingsError(ValueError):
    """The app settings are invalid; ``problems`` lists every problem, one per entry."""

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(f"- {p}" for p in self.problems)
        super().__init__(f"{count} invalid app setting{'s' if count != 1 else ''}:\n{lines}")


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``30m``, ``24h``, ``1d``, ``PT24H``, ``[d.]hh:mm:ss`` or plain seconds.

    :raises ValueError: not one of these forms, or not positive.
    """
    value = text.strip()
    seconds: float | None = None
    if match := _SIMPLE_DURATION.match(value):
        seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
    elif match := _ISO_DURATION.match(value) or _CLOCK_DURATION.match(value):
        seconds = _seconds_of(match)
    if seconds is None:
        raise ValueError(f"{text!r} is not a duration")
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return timedelta(seconds=seconds)


def _seconds_of(match: re.Match[str]) -> float:
    parts = match.groupdict(default="0")
    return (
        int(parts["d"]) * 86400 + int(parts["h"]) * 3600 + int(parts["m"]) * 60 + float(parts["s"])
    )


class _Reader:
    """Reads settings from one environment and collects every problem found."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def get(self, name: str) -> str | None:
        """The setting's value, stripped; None when absent or blank."""
        value = (self.environ.get(name) or "").strip()
        return value or None

    def problem(self, name: str, text: str) -> None:
        self.problems.append(f"{name}: {text}")

    def parsed(self, name: str, default: _T, parse: Callable[[str], _T], expected: str) -> _T:
        """The setting parsed by ``parse``, ``default`` when unset or invalid (noted)."""
        raw = self.get(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            self.problem(name, f"{exc}; {expected}")
            return default

    def raise_problems(self) -> None:
        if self.problems:
            raise SettingsError(self.problems)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_url(raw: str, *, allow_path: bool = False, default_scheme: str | None = None) -> str:
    """Validate an endpoint URL; return it with lower-case scheme and host, no trailing slash.

    A URL with a user name, password or query string may carry a secret: its value is not
    repeated in the error.
    """
    text = raw if "://" in raw or default_scheme is None else f"{default_scheme}://{raw}"
    parts = urlsplit(text)
    if parts.username or parts.password or parts.query:
        raise ValueError("holds a user name, password or query string (value not shown)")
    shown = repr(raw)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"{shown} is not an http(s) URL")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ValueError(f"{shown} uses http; https is required (http only for loopback hosts)")
    if parts.fragment or (parts.path.strip("/") and not allow_path):
        raise ValueError(f"{shown} has a path or fragment")
    netloc = parts.netloc.lower()
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/') if allow_path else ''}"


def _parse_tenant(raw: str) -> str:
    if raw.lower() in _NOT_TENANTS:
        raise ValueError(
            f"{raw!r} is a multi-tenant endpoint; F&O needs a token from the tenant itself"
        )
    if not _TENANT.match(raw):
        raise ValueError(f"{raw!r} is not a tenant id")
    return raw


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
    http_timeout: timedelta = timedelta(seconds=300)

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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> D365Settings:
        """Read and validate the ``D365_*`` connection and identity settings.

        :raises SettingsError: every problem found.
        """
        reader = _Reader(environ)
        settings = _read_d365(reader)
        reader.raise_problems()
        return settings

    def health_summary(self) -> dict[str, Any]:
        """Safe description: no secret, only whether one is configured."""
        return {
            "base_url": self.base_url,
            "authority_host": self.authority_host,
            "auth_mode": self.auth_mode.value,
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "managed_identity_client_id": self.managed_identity_client_id,
            "http_timeout_seconds": self.http_timeout.total_seconds(),
        }


def _read_d365(reader: _Reader) -> D365Settings:
    base_url = reader.parsed(
        "D365_BASE_URL",
        "",
        _parse_url,
        "expected the environment root, e.g. https://contoso.operations.dynamics.com",
    )
    if reader.get("D365_BASE_URL") is None:
        reader.problem(
            "D365_BASE_URL", "missing; expected e.g. https://contoso.operations.dynamics.com"
        )
    authority = reader.parsed(
        "D365_AUTHORITY_HOST",
        DEFAULT_AUTHORITY_HOST,
        lambda raw: _parse_url(raw, default_scheme="https"),
        f"expected the Entra host, e.g. {DEFAULT_AUTHORITY_HOST}",
    )
    guid_hint = f"expected the application (client) ID GUID, e.g. {_EXAMPLE_GUID}"
    settings = D365Settings(
        base_url=base_url,
        authority_host=authority,
        tenant_id=reader.parsed(
            "D365_TENANT_ID", None, _parse_tenant, "expected the tenant GUID or a domain"
        ),
        client_id=reader.parsed("D365_CLIENT_ID", None, normalise_guid, guid_hint),
        client_secret=reader.get("D365_CLIENT_SECRET"),
        client_certificate_path=reader.get("D365_CLIENT_CERTIFICATE_PATH"),
        client_certificate_password=reader.get("D365_CLIENT_CERTIFICATE_PASSWORD"),
        managed_identity_client_id=reader.parsed(
            "D365_MANAGED_IDENTITY_CLIENT_ID", None, normalise_guid, guid_hint
        ),
        http_timeout=reader.parsed(
            "D365_HTTP_TIMEOUT", timedelta(seconds=300), parse_duration, _DURATION_FORMS
        ),
    )
    _check_identity(reader, settings)
    return settings


def _check_identity(reader: _Reader, settings: D365Settings) -> None:
    """Problems of the identity settings taken together (which ones go with which)."""
    secret, cert = settings.client_secret, settings.client_certificate_path
    if secret and secret.lower().startswith(_KEY_VAULT_REFERENCE):
        reader.problem(
            "D365_CLIENT_SECRET",
            "holds a Key Vault reference the platform did not resolve (value not shown); "
            "give the app's identity the 'Key Vault Secrets User' role on the vault and check "
            "the reference's status in the portal",
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


def _check_app_identity(reader: _Reader, settings: D365Settings) -> None:
    kind = "a client secret" if settings.client_secret else "a client certificate"
    for name in ("D365_TENANT_ID", "D365_CLIENT_ID"):
        if reader.get(name) is None:
            reader.problem(name, f"missing; required with {kind}")
    if reader.get("D365_MANAGED_IDENTITY_CLIENT_ID") is not None:
        reader.problem(
            "D365_MANAGED_IDENTITY_CLIENT_ID",
            f"set together with {kind}; it applies only without a secret or certificate: "
            "remove it, or remove the secret/certificate to use the managed identity",
        )


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

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, *, connection: str = STORAGE_CONNECTION
    ) -> StorageSettings:
        """Read the ``connection`` setting and its ``__`` forms, in the trigger's precedence.

        :raises SettingsError: every problem found (connection strings are never repeated).
        """
        reader = _Reader(environ)
        settings = _read_storage(reader, connection)
        reader.raise_problems()
        return settings

    def health_summary(self) -> dict[str, Any]:
        """Safe description: the account or endpoints, never a key or SAS."""
        if self.connection_string is not None:
            return {"form": "connection_string", "account": _account_of(self.connection_string)}
        return {
            "form": "identity",
            "blob_service_uri": self.blob_service_uri,
            "table_service_uri": self.table_service_uri,
            "credential": self.credential or "DefaultAzureCredential",
            "client_id": self.client_id,
        }


def _connection_string_parts(text: str) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in text.split(";") if part.strip())
    return {key.strip().lower(): value.strip() for key, value in (p for p in pairs if len(p) == 2)}


def _account_of(connection_string: str) -> str:
    parts = _connection_string_parts(connection_string)
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return "development storage"
    return parts.get("accountname") or "unnamed"


def _connection_string_problem(text: str) -> str | None:
    if "://" in text and "=" not in text:
        return (
            "looks like a URL, not a connection string (value not shown); for an "
            f"identity-based connection set {STORAGE_CONNECTION}__blobServiceUri and the other "
            f"{STORAGE_CONNECTION}__* settings instead"
        )
    parts = _connection_string_parts(text)
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return None
    if "accountname" in parts or "blobendpoint" in parts:
        return None
    return (
        "is not a storage connection string (value not shown); expected "
        "'DefaultEndpointsProtocol=https;AccountName=<account>;AccountKey=<key>;"
        "EndpointSuffix=core.windows.net', or 'UseDevelopmentStorage=true' with Azurite"
    )


def _read_storage(reader: _Reader, connection: str) -> StorageSettings:
    conn = reader.get(connection)
    if conn is not None:
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
    return _read_storage_identity(reader, connection)


def _read_storage_identity(reader: _Reader, connection: str) -> StorageSettings:
    def uri(suffix: str) -> str | None:
        return reader.parsed(
            f"{connection}__{suffix}",
            None,
            lambda raw: _parse_url(raw, allow_path=True),
            "expected e.g. https://<account>.blob.core.windows.net",
        )

    service_uri, blob_uri = uri("serviceUri"), uri("blobServiceUri")
    queue_uri, table_uri = uri("queueServiceUri"), uri("tableServiceUri")
    credential = reader.get(f"{connection}__credential")
    if credential is not None and credential.lower() != MANAGED_IDENTITY:
        reader.problem(
            f"{connection}__credential",
            f"{credential!r} is not supported; expected {MANAGED_IDENTITY}, or leave it unset "
            "to use DefaultAzureCredential (e.g. your Azure CLI login locally)",
        )
    settings = StorageSettings(
        blob_service_uri=service_uri or blob_uri,
        queue_service_uri=queue_uri,
        table_service_uri=table_uri,
        credential=credential.lower() if credential else None,
        client_id=reader.parsed(
            f"{connection}__clientId",
            None,
            normalise_guid,
            "expected the user-assigned identity's client ID GUID",
        ),
    )
    _check_storage_uris(reader, connection, settings, uses_service_uri=bool(service_uri))
    return settings


def _check_storage_uris(
    reader: _Reader, connection: str, settings: StorageSettings, *, uses_service_uri: bool
) -> None:
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


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# NCRONTAB fields: name, lowest and highest value, names allowed instead of numbers.
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)
_CRON_PART = re.compile(r"^(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(\d+))?$")


def _cron_value(item: str, low: int, names: tuple[str, ...]) -> int | None:
    if item.upper() in names:
        return names.index(item.upper()) + low
    return int(item) if item.isdigit() else None


def _cron_part_ok(part: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    """One comma-separated part: ``*``, ``a``, ``a-b``, each optionally ``/step``."""
    match = _CRON_PART.match(part)
    if not match or (match.group(2) is not None and int(match.group(2)) == 0):
        return False
    if match.group(1) == "*":
        return True
    values = [_cron_value(item, low, names) for item in match.group(1).split("-")]
    return all(value is not None and low <= value <= high for value in values)


def _parse_schedule(raw: str) -> str:
    """Check an NCRONTAB expression's field count and each field's values; normalise spaces."""
    parts = raw.split()
    if len(parts) not in (5, 6):
        raise ValueError(f"{raw!r} has {len(parts)} fields")
    for value, (name, low, high, names) in zip(parts, _CRON_FIELDS[-len(parts) :], strict=True):
        if not all(_cron_part_ok(part, low, high, names) for part in value.split(",")):
            raise ValueError(f"{raw!r}: {name} field {value!r} is invalid (allowed {low}-{high})")
    return " ".join(parts)


def _parse_container(raw: str) -> str:
    if not _CONTAINER.match(raw):
        raise ValueError(f"{raw!r} is not a valid container name")
    return raw


def _parse_table(raw: str) -> str:
    if not _TABLE.match(raw) or raw.lower() == "tables":
        raise ValueError(f"{raw!r} is not a valid table name")
    return raw


def _parse_concurrency(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 64:
        raise ValueError(f"{raw!r} is not a whole number from 1 to 64")
    return int(raw)


def _parse_archive_mode(raw: str) -> ArchiveMode:
    try:
        return ArchiveMode(raw.lower())
    except ValueError:
        raise ValueError(f"{raw!r} is not an archive mode") from None


_CONTAINER_FORM = "expected 3-63 lower-case letters, digits and single hyphens, e.g. d365-archive"


@dataclass(frozen=True)
class Settings:
    """All app settings, validated. Build with :meth:`from_env`."""

    d365: D365Settings
    storage: StorageSettings
    routes: RouteTable
    inbound_container: str = "d365-inbound"
    archive_container: str = "d365-archive"
    errors_container: str = "d365-execution-errors"
    archive_mode: ArchiveMode = ArchiveMode.MOVE
    status_table: str = "d365messages"
    poll_schedule: str = "0 */1 * * * *"
    poll_concurrency: int = 16
    poll_tick_budget: timedelta = timedelta(minutes=4)
    poll_interval_min: timedelta = timedelta(seconds=30)
    poll_interval_max: timedelta = timedelta(minutes=10)
    max_pending_age: timedelta = timedelta(hours=24)
    claim_lease: timedelta = timedelta(minutes=10)
    max_file_bytes: int = 48 * 1024 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Read and validate every app setting; cheap (no I/O), call it per invocation.

        :raises SettingsError: every problem found, each naming its setting.
        """
        reader = _Reader(environ)
        d365 = _read_d365(reader)
        storage = _read_storage(reader, STORAGE_CONNECTION)
        routes = _read_routes(reader)
        defaults = cls.__dataclass_fields__
        settings = cls(
            d365=d365,
            storage=storage,
            routes=routes,
            **{name: _read_scalar(reader, name, defaults[name].default) for name in _SCALARS},
        )
        _check_together(reader, settings)
        reader.raise_problems()
        return settings

    def trigger_container_problem(self, trigger_container: str) -> str | None:
        """The problem when ``INBOUND_CONTAINER`` is not the container the trigger watches.

        The host cannot resolve a setting in a blob trigger's container, so the trigger's is
        fixed in code; archiving and recovery find files through ``INBOUND_CONTAINER``.
        """
        if self.inbound_container == trigger_container:
            return None
        return (
            f"INBOUND_CONTAINER: {self.inbound_container!r} is not the container the blob "
            f"trigger watches ({trigger_container!r}); set INBOUND_CONTAINER="
            f"{trigger_container}, or change the trigger's path in enqueue_blob/__init__.py too"
        )

    def health_summary(self) -> dict[str, Any]:
        """A JSON-ready description for the health endpoint; holds no secret."""
        return {
            "d365": self.d365.health_summary(),
            "storage": self.storage.health_summary(),
            "routes": [route.as_dict() for route in self.routes],
            "inbound_container": self.inbound_container,
            "archive_container": self.archive_container,
            "errors_container": self.errors_container,
            "archive_mode": self.archive_mode.value,
            "status_table": self.status_table,
            "poll_schedule": self.poll_schedule,
            "poll_concurrency": self.poll_concurrency,
            "poll_tick_budget_seconds": self.poll_tick_budget.total_seconds(),
            "poll_interval_min_seconds": self.poll_interval_min.total_seconds(),
            "poll_interval_max_seconds": self.poll_interval_max.total_seconds(),
            "max_pending_age_seconds": self.max_pending_age.total_seconds(),
            "claim_lease_seconds": self.claim_lease.total_seconds(),
            "max_file_bytes": self.max_file_bytes,
        }


# Settings field -> (app setting, parser, expected form).
_SCALARS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "inbound_container": ("INBOUND_CONTAINER", _parse_container, _CONTAINER_FORM),
    "archive_container": ("ARCHIVE_CONTAINER", _parse_container, _CONTAINER_FORM),
    "errors_container": ("ERRORS_CONTAINER", _parse_container, _CONTAINER_FORM),
    "archive_mode": ("ARCHIVE_MODE", _parse_archive_mode, "expected move or metadata"),
    "status_table": (
        "STATUS_TABLE",
        _parse_table,
        "expected 3-63 letters or digits starting with a letter, e.g. d365messages",
    ),
    "poll_schedule": (
        "POLL_SCHEDULE",
        _parse_schedule,
        "expected NCRONTAB '{second} {minute} {hour} {day} {month} {day-of-week}' "
        "(5 fields accepted), e.g. '0 */1 * * * *' for every minute",
    ),
    "poll_concurrency": ("POLL_CONCURRENCY", _parse_concurrency, "expected e.g. 16"),
    "poll_tick_budget": ("POLL_TICK_BUDGET", parse_duration, _DURATION_FORMS),
    "poll_interval_min": ("POLL_INTERVAL_MIN", parse_duration, _DURATION_FORMS),
    "poll_interval_max": ("POLL_INTERVAL_MAX", parse_duration, _DURATION_FORMS),
    "max_pending_age": ("MAX_PENDING_AGE", parse_duration, _DURATION_FORMS),
    "claim_lease": ("CLAIM_LEASE", parse_duration, _DURATION_FORMS),
    "max_file_bytes": (
        "MAX_FILE_BYTES",
        parse_byte_size,
        "expected a positive byte count, e.g. 50331648 or 48MiB",
    ),
}


def _read_scalar(reader: _Reader, field_name: str, default: Any) -> Any:
    setting, parse, expected = _SCALARS[field_name]
    return reader.parsed(setting, default, parse, expected)


def _read_routes(reader: _Reader) -> RouteTable:
    raw = reader.get("D365_ROUTES")
    if raw is None:
        reader.problem(
            "D365_ROUTES",
            "missing; expected a JSON list of routes, e.g. "
            '[{"name": "customers", "prefix": "customers/{company}/", '
            f'"activity_id": "{_EXAMPLE_GUID}", "entity": "CustomersV3"}}]',
        )
        return RouteTable(())
    try:
        return RouteTable.from_json(raw)
    except RouteConfigError as exc:
        reader.problems.extend(exc.problems)
        return RouteTable(())


def _check_together(reader: _Reader, settings: Settings) -> None:
    """Problems that only show when settings are read side by side."""
    containers = {"ERRORS_CONTAINER": settings.errors_container}
    if settings.archive_mode is ArchiveMode.MOVE:
        containers["ARCHIVE_CONTAINER"] = settings.archive_container
    for name, container in containers.items():
        if container == settings.inbound_container:
            reader.problem(
                name,
                f"{container!r} is the inbound container; writing there would enqueue the "
                "files again: use a container of its own",
            )
    longest_send = settings.d365.http_timeout + _ENQUEUE_RETRY_BUDGET + timedelta(minutes=1)
    if settings.claim_lease < longest_send:
        reader.problem(
            "CLAIM_LEASE",
            f"{_shown_duration(settings.claim_lease)} is shorter than one enqueue may take "
            f"(D365_HTTP_TIMEOUT plus the client's {_shown_duration(_ENQUEUE_RETRY_BUDGET)} "
            "retry budget plus a minute); a send still running would be taken for a dead "
            f"one; expected at least {_shown_duration(longest_send)}",
        )
    if settings.poll_interval_min > settings.poll_interval_max:
        reader.problem(
            "POLL_INTERVAL_MIN",
            f"{settings.poll_interval_min} is longer than POLL_INTERVAL_MAX "
            f"({settings.poll_interval_max}); expected MIN <= MAX",
        )
    if settings.max_pending_age <= settings.poll_interval_max:
        reader.problem(
            "MAX_PENDING_AGE",
            f"{settings.max_pending_age} is not longer than POLL_INTERVAL_MAX "
            f"({settings.poll_interval_max}); messages would time out before their next poll",
        )
