"""Every app setting of the function app, read once, validated as a whole.

:meth:`Settings.from_env` reads the environment (app settings in Azure, ``Values`` of
``local.settings.json`` locally) and raises one :class:`SettingsError` that lists every
problem, each naming the setting, what is wrong and the expected form. Secret values (client
secret, certificate password, storage connection string) never appear in a ``repr`` or an
error, nor do the values of the identity settings (tenant, client ids, certificate path).

Modules: :mod:`~shared.config.parsers` (durations, URLs, GUIDs, byte sizes, names),
:mod:`~shared.config.ncrontab` (the schedule grammar and its evaluator),
:mod:`~shared.config.d365` and :mod:`~shared.config.storage` (the connection settings),
:mod:`~shared.config.settings` (:class:`Settings`), :mod:`~shared.config.zip_limits` (the
``ZIP_*`` settings), :mod:`~shared.config.host_json` (the host's ``functionTimeout``) and
:mod:`~shared.config.reader` (reading the environment, and :class:`SettingsError`).
Import routes: :mod:`~shared.config.routes` (:class:`ImportRoutes`, the ``D365_ROUTES``
keys), :mod:`~shared.config.import_route` (:class:`ImportRoute`),
:mod:`~shared.config.import_fields` (its keys' validators), :mod:`~shared.config.blob_names`
(the blob names accepted) and :mod:`~shared.config.rejections` (:class:`RejectReason`).
Export routes: :mod:`~shared.config.exports`. Both kinds share
:mod:`~shared.config.route_fields` (field validators, :class:`RouteConfigError`) and
:mod:`~shared.config.route_json` (reading the JSON list). What the health endpoint shows
is the HTTP view's (:func:`shared.views.health.health_summary`).

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
``D365_HTTP_TIMEOUT``               read timeout of one F&O call, default ``300s``, 1s to 1h.
``D365_WRITE_TIMEOUT``              time allowed for each socket send while a file is uploaded
                                    to F&O, default ``300s``, 1s to 1h.
``D365_SAS_HOSTS``                  hosts that SAS URLs handed out by F&O (package upload, error
                                    files) may point at besides the blob endpoints of F&O's
                                    cloud, comma-separated; default none. The local emulator
                                    needs ``127.0.0.1``.

One F&O budget for all instances (:mod:`shared.config.budget`, kept by
:class:`shared.tracking.SharedBudget`):

``D365_BUDGET``                     ``shared`` (default: one budget in the status table) or
                                    ``off`` (every call goes at once).
``D365_MAX_CONCURRENCY``            F&O calls in flight at once for the whole app, default 32,
                                    1 to 1000 (F&O's user-based limit: 52).
``D365_MAX_REQUESTS_PER_5MIN``      F&O calls per 5 minutes for the whole app, default 4800, 1
                                    to 1000000 (F&O's user-based limit: 6000).

Routing and storage:

``D365_ROUTES``                     required; JSON list of routes (see :mod:`shared.config.routes`).
``MAX_FILE_BYTES``                  limit for routes without ``max_bytes``, default ``48MiB``, at
                                    most ``1GiB``: F&O answered 413 to a 50 MB file (RIS issue
                                    #135), so the default stays below that.
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

``POLL_SCHEDULE``                   NCRONTAB, 6 fields (5 accepted), default ``0 */1 * * * *``;
                                    the grammar is :mod:`shared.config.ncrontab`'s.
``POLL_CONCURRENCY``                F&O calls in flight per tick, default 16, 1..64.
``POLL_TICK_BUDGET``                a tick starts no new work after this, default ``4m``, 1s to
                                    1h; with ``D365_HTTP_TIMEOUT`` shorter than ``host.json``'s
                                    ``functionTimeout``.
``POLL_INTERVAL_MIN``               back-off between polls of one message: from ``30s``
``POLL_INTERVAL_MAX``               up to ``10m``; each 1s to 1d.
``MAX_PENDING_AGE``                 a message not terminal after this is ``TimedOut``, ``24h``,
                                    1s to 30d.
``CLAIM_LEASE``                     a claimed file not enqueued after this is recovered, ``10m``,
                                    1s to 1d, and longer than one enqueue may take.
``ORDER_SETTLE``                    a file of an ordered route (``"order"``) is sent no sooner
                                    than this after its blob was created, so an older file
                                    Event Grid delivers late still goes first; ``60s``, 1s to 1h.

Exports (recurring export jobs to blob storage, :mod:`shared.flows.export`):

``EXPORT_ROUTES``                   JSON list of export routes (see :mod:`shared.config.exports`);
                                    absent or ``[]``: no exports.
``EXPORT_SCHEDULE``                 NCRONTAB of the export timer, default ``0 */5 * * * *``;
                                    the host binds it, so it must exist even without exports.
``EXPORT_MAX_ATTEMPTS``             tries of one exported message (one per time F&O offers it,
                                    every 30 minutes) before it is given up: recorded
                                    ``ExportFailed`` for good, alerted and acknowledged; default
                                    10, 1 to 1000.
``PACKAGE_EXPORT_ROUTES``           JSON list of package export routes: data projects exported
                                    on a schedule through the DMF package API (see
                                    :mod:`shared.config.package_exports`), run by the export
                                    timer; absent or ``[]``: none.

Retention (the daily ``retention`` timer, :mod:`shared.flows.retention`;
:mod:`shared.config.retention`):

``RETENTION_RECORDS_DAYS``          days a final file record is kept after its last change,
                                    with its index rows and overflow blobs; default 90, 1 to
                                    36500, or ``never``.
``RETENTION_EXPORTS_DAYS``          days an acknowledged export record is kept; default 90.
``RETENTION_AUDIT_DAYS``            days an audit row is kept; default 365.
``RETENTION_SCHEDULE``              NCRONTAB of the retention timer, default ``0 30 2 * * *``.
``RETENTION_BUDGET``                a run starts no new batch after this, default ``5m``, 1s to
                                    1h; plus 30s shorter than ``host.json``'s ``functionTimeout``.

Zips (templates, uploaded packages and unzipped exports, read by :mod:`shared.zips`;
a zip over a limit is refused naming it):

``ZIP_MAX_MEMBERS``                 entries in one zip's directory, default 10000, 1 to 100000.
``ZIP_MAX_MEMBER_BYTES``            bytes one member inflates to, default ``4GiB``, at most
                                    ``1TiB``, and at most ``ZIP_MAX_TOTAL_BYTES``.
``ZIP_MAX_TOTAL_BYTES``             bytes inflated from one zip in all, default ``8GiB``, at most
                                    ``1TiB``.
``ZIP_MAX_RATIO``                   inflated bytes per compressed byte of a member past its
                                    first MiB, default 200, 2 to 100000.
``ZIP_MAX_MANIFEST_BYTES``          a package's ``Manifest.xml`` or ``PackageHeader.xml``, read
                                    whole into memory, default ``4MiB``, at most ``256MiB``.

HTTP access (:mod:`shared.config.http_auth`):

``HTTP_AUTH``                       ``key`` (default: a function key guards every route) or
                                    ``entra`` (App Service authentication signs callers in with
                                    Entra ID; app roles decide what each may do).

Durations accept ``90s``, ``30m``, ``24h``, ``1d``, ISO 8601 ``PT24H``, ``hh:mm:ss`` (also
``d.hh:mm:ss``) or plain seconds. A setting whose name is a near miss of one of these (say
POLL_SHEDULE) is an error, not silently ignored.
"""

from __future__ import annotations

from shared.config.blob_names import MAX_BLOB_NAME_CHARS, MAX_BLOB_NAME_SEGMENTS
from shared.config.d365 import DEFAULT_AUTHORITY_HOST, AuthMode, D365Settings
from shared.config.exports import ExportRoute, ExportRoutes
from shared.config.http_auth import HttpAuthMode, http_auth_mode, platform_auth_enabled
from shared.config.import_fields import (
    API_PACKAGE,
    ON_FAILURE_CONTINUE,
    ON_FAILURE_STOP,
    ORDER_FINAL,
    ORDER_UPLOAD,
)
from shared.config.import_route import ImportRoute
from shared.config.ncrontab import NcrontabSchedule, parse_ncrontab
from shared.config.parsers import (
    InvalidValueError,
    format_duration,
    parse_byte_size,
    parse_duration,
    parse_guid,
)
from shared.config.reader import SettingsError
from shared.config.rejections import RejectReason, RoutingError
from shared.config.route_fields import RouteConfigError
from shared.config.routes import ImportRoutes, RouteMatch
from shared.config.settings import SETTING_NAMES, ArchiveMode, Settings
from shared.config.storage import STORAGE_CONNECTION, StorageSettings

__all__ = [
    "API_PACKAGE",
    "DEFAULT_AUTHORITY_HOST",
    "MAX_BLOB_NAME_CHARS",
    "MAX_BLOB_NAME_SEGMENTS",
    "ON_FAILURE_CONTINUE",
    "ON_FAILURE_STOP",
    "ORDER_FINAL",
    "ORDER_UPLOAD",
    "SETTING_NAMES",
    "STORAGE_CONNECTION",
    "ArchiveMode",
    "AuthMode",
    "D365Settings",
    "ExportRoute",
    "ExportRoutes",
    "HttpAuthMode",
    "ImportRoute",
    "ImportRoutes",
    "InvalidValueError",
    "NcrontabSchedule",
    "RejectReason",
    "RouteConfigError",
    "RouteMatch",
    "RoutingError",
    "Settings",
    "SettingsError",
    "StorageSettings",
    "format_duration",
    "http_auth_mode",
    "parse_byte_size",
    "parse_duration",
    "parse_guid",
    "parse_ncrontab",
    "platform_auth_enabled",
]
