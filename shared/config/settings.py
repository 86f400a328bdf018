"""``Settings``: every app setting of the function app, read once, validated as a whole."""

from __future__ import annotations

import difflib
import enum
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from shared import zips
from shared.config.budget import (
    BUDGET_SETTING,
    CONCURRENCY_SETTING,
    REQUESTS_SETTING,
    BudgetSettings,
    read_budget,
)
from shared.config.containers import (
    check_export_targets,
    check_import_containers,
    check_package_export_targets,
    check_route_prefixes,
)
from shared.config.d365 import D365Settings, read_d365
from shared.config.exports import EXPORT_ROUTES_SETTING, ExportRoutes
from shared.config.host_json import APP_ROOT, function_timeout
from shared.config.http_auth import HTTP_AUTH_SETTING, HttpAuthMode, read_http_auth
from shared.config.ncrontab import parse_ncrontab
from shared.config.package_exports import PACKAGE_EXPORT_ROUTES_SETTING, PackageExportRoutes
from shared.config.parsers import (
    MAX_BYTE_SIZE,
    container_name_form,
    format_duration,
    parse_choice,
    parse_container_name,
    parse_table_name,
)
from shared.config.reader import SettingsReader
from shared.config.retention import RetentionSettings, read_retention
from shared.config.route_fields import RouteConfigError
from shared.config.routes import ROUTES_EXAMPLE, ImportRoutes
from shared.config.storage import StorageSettings, read_storage
from shared.config.zip_limits import read_zip_limits

__all__ = ["SETTING_NAMES", "ArchiveMode", "Settings"]

SETTING_NAMES = (
    "D365_BASE_URL",
    "D365_AUTHORITY_HOST",
    "D365_TENANT_ID",
    "D365_CLIENT_ID",
    "D365_CLIENT_SECRET",
    "D365_CLIENT_CERTIFICATE_PATH",
    "D365_CLIENT_CERTIFICATE_PASSWORD",
    "D365_MANAGED_IDENTITY_CLIENT_ID",
    "D365_HTTP_TIMEOUT",
    "D365_WRITE_TIMEOUT",
    "D365_SAS_HOSTS",
    "D365_ROUTES",
    BUDGET_SETTING,
    CONCURRENCY_SETTING,
    REQUESTS_SETTING,
    "MAX_FILE_BYTES",
    "INBOUND_CONTAINER",
    "ARCHIVE_CONTAINER",
    "ERRORS_CONTAINER",
    "ARCHIVE_MODE",
    "STATUS_TABLE",
    "POLL_SCHEDULE",
    "POLL_CONCURRENCY",
    "POLL_TICK_BUDGET",
    "POLL_INTERVAL_MIN",
    "POLL_INTERVAL_MAX",
    "MAX_PENDING_AGE",
    "CLAIM_LEASE",
    "ORDER_SETTLE",
    "EXPORT_ROUTES",
    "EXPORT_SCHEDULE",
    "EXPORT_MAX_ATTEMPTS",
    "PACKAGE_EXPORT_ROUTES",
    HTTP_AUTH_SETTING,
    "RETENTION_RECORDS_DAYS",
    "RETENTION_EXPORTS_DAYS",
    "RETENTION_AUDIT_DAYS",
    "RETENTION_SCHEDULE",
    "RETENTION_BUDGET",
    zips.MEMBERS_SETTING,
    zips.MEMBER_BYTES_SETTING,
    zips.TOTAL_BYTES_SETTING,
    zips.RATIO_SETTING,
    zips.MANIFEST_BYTES_SETTING,
)
"""The app's own settings (the storage connection aside), as the README lists them."""

_SECOND = timedelta(seconds=1)
_MAX_EXPORT_ATTEMPTS = 1000
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
# RetryPolicy().total_timeout of the F&O client: how long one call may keep retrying.
_UPLOAD_WINDOW = timedelta(seconds=30)
# A name this close to one of SETTING_NAMES, but not it, is taken for a misspelling.
_MISSPELLING_CUTOFF = 0.85
_OUR_PREFIXES = tuple(sorted({name.split("_", 1)[0] + "_" for name in SETTING_NAMES}))


class ArchiveMode(enum.StrEnum):
    """What happens to a file once F&O has finished with it."""

    MOVE = "move"
    METADATA = "metadata"


@dataclass(frozen=True)
class Settings:
    """All app settings, validated. Build with :meth:`from_env`."""

    d365: D365Settings
    storage: StorageSettings
    routes: ImportRoutes
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
    order_settle: timedelta = timedelta(seconds=60)
    max_file_bytes: int = 48 * 1024 * 1024
    exports: ExportRoutes = field(default_factory=ExportRoutes)
    export_schedule: str = "0 */5 * * * *"
    export_max_attempts: int = 10
    package_exports: PackageExportRoutes = field(default_factory=PackageExportRoutes)
    zip_limits: zips.ZipLimits = field(default_factory=zips.ZipLimits)
    http_auth: HttpAuthMode = HttpAuthMode.KEY
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, *, app_root: Path = APP_ROOT
    ) -> Settings:
        """Read and validate every app setting; call it per invocation (``host.json`` is read
        once per process, the rest is no I/O).

        :param environ: the app settings.
        :keyword app_root: where ``host.json`` is; its ``functionTimeout`` bounds the poller's
            tick (an absent file sets no bound).
        :raises SettingsError: every problem found, each naming its setting.
        """
        reader = SettingsReader(environ)
        d365 = read_d365(reader)
        storage = read_storage(reader)
        routes = _read_routes(reader)
        defaults = cls.__dataclass_fields__
        function_limit = function_timeout(app_root)
        settings = cls(
            d365=d365,
            storage=storage,
            routes=routes,
            exports=_read_exports(reader),
            package_exports=_read_package_exports(reader),
            zip_limits=read_zip_limits(reader),
            budget=read_budget(reader),
            retention=read_retention(reader, function_limit),
            **{name: read(reader, defaults[name].default) for name, read in _SCALARS.items()},
            # After the scalars: its problem is listed where it was when it was one of them.
            http_auth=read_http_auth(reader),
        )
        _check_together(reader, settings, function_limit)
        _check_misspellings(reader)
        reader.raise_problems()
        return settings


_Read = Callable[[SettingsReader, Any], Any]


def _parsed(setting: str, parse: Callable[[str], Any], expected: str) -> _Read:
    return lambda reader, default: reader.parsed(setting, default, parse, expected)


def _duration(setting: str, *, minimum: timedelta, maximum: timedelta) -> _Read:
    return lambda reader, default: reader.duration(
        setting, default, minimum=minimum, maximum=maximum
    )


def _byte_size(setting: str, example: str) -> _Read:
    return lambda reader, default: reader.byte_size(
        setting, default, maximum=MAX_BYTE_SIZE, example=example
    )


def _whole_number(setting: str, maximum: int, expected: str) -> _Read:
    return lambda reader, default: reader.whole_number(
        setting, default, minimum=1, maximum=maximum, expected=expected
    )


def _parse_schedule(raw: str) -> str:
    return parse_ncrontab(raw).expression


_CONTAINER_FORM = container_name_form("d365-archive")

# Settings field -> how it is read (its default is the field's).
_SCALARS: dict[str, _Read] = {
    "inbound_container": _parsed("INBOUND_CONTAINER", parse_container_name, _CONTAINER_FORM),
    "archive_container": _parsed("ARCHIVE_CONTAINER", parse_container_name, _CONTAINER_FORM),
    "errors_container": _parsed("ERRORS_CONTAINER", parse_container_name, _CONTAINER_FORM),
    "archive_mode": _parsed(
        "ARCHIVE_MODE",
        lambda raw: parse_choice(raw, ArchiveMode, "an archive mode"),
        "expected move or metadata",
    ),
    "status_table": _parsed(
        "STATUS_TABLE",
        parse_table_name,
        "expected 3-63 letters or digits starting with a letter, e.g. d365messages",
    ),
    "poll_schedule": _parsed(
        "POLL_SCHEDULE",
        _parse_schedule,
        "e.g. '0 */5 * * * *' runs every five minutes",
    ),
    "poll_concurrency": _whole_number("POLL_CONCURRENCY", 64, "expected e.g. 16"),
    # A tick must end well inside functionTimeout (checked against host.json below).
    "poll_tick_budget": _duration("POLL_TICK_BUDGET", minimum=_SECOND, maximum=_HOUR),
    "poll_interval_min": _duration("POLL_INTERVAL_MIN", minimum=_SECOND, maximum=_DAY),
    "poll_interval_max": _duration("POLL_INTERVAL_MAX", minimum=_SECOND, maximum=_DAY),
    # F&O's own message history is cleaned up after weeks; longer would poll a gone message.
    "max_pending_age": _duration("MAX_PENDING_AGE", minimum=_SECOND, maximum=30 * _DAY),
    "claim_lease": _duration("CLAIM_LEASE", minimum=_SECOND, maximum=_DAY),
    # Event Grid retries a failed delivery after 10 s, 30 s, then 1 min: 60 s covers two.
    "order_settle": _duration("ORDER_SETTLE", minimum=_SECOND, maximum=_HOUR),
    "max_file_bytes": _byte_size("MAX_FILE_BYTES", "50331648 or 48MiB"),
    "export_schedule": _parsed(
        "EXPORT_SCHEDULE",
        _parse_schedule,
        "e.g. '0 */5 * * * *' runs every five minutes",
    ),
    # F&O offers an unacknowledged message again every 30 minutes: 10 tries span 4.5 hours.
    "export_max_attempts": _whole_number(
        "EXPORT_MAX_ATTEMPTS",
        _MAX_EXPORT_ATTEMPTS,
        f"expected the tries of one export before it is given up, 1 to {_MAX_EXPORT_ATTEMPTS}, "
        "e.g. 10",
    ),
}


def _read_exports(reader: SettingsReader) -> ExportRoutes:
    try:
        return ExportRoutes.from_json(reader.get(EXPORT_ROUTES_SETTING))
    except RouteConfigError as exc:
        reader.problems.extend(exc.problems)
        return ExportRoutes()


def _read_package_exports(reader: SettingsReader) -> PackageExportRoutes:
    try:
        return PackageExportRoutes.from_json(reader.get(PACKAGE_EXPORT_ROUTES_SETTING))
    except RouteConfigError as exc:
        reader.problems.extend(exc.problems)
        return PackageExportRoutes()


def _read_routes(reader: SettingsReader) -> ImportRoutes:
    raw = reader.get("D365_ROUTES")
    if raw is None:
        reader.problem(
            "D365_ROUTES",
            f"missing; expected a JSON list of routes, e.g. {ROUTES_EXAMPLE}",
        )
        return ImportRoutes(())
    try:
        return ImportRoutes.from_json(raw)
    except RouteConfigError as exc:
        reader.problems.extend(exc.problems)
        return ImportRoutes(())


def _check_together(
    reader: SettingsReader, settings: Settings, function_limit: timedelta | None
) -> None:
    """Problems that only show when settings are read side by side."""
    inbound = settings.inbound_container
    others = {"ERRORS_CONTAINER": settings.errors_container}
    if settings.archive_mode is ArchiveMode.MOVE:
        others["ARCHIVE_CONTAINER"] = settings.archive_container
    check_import_containers(reader, inbound, others)
    check_route_prefixes(reader, inbound, settings.routes)
    ours = {inbound, settings.archive_container, settings.errors_container}
    check_export_targets(reader, ours, settings.routes, settings.exports)
    check_package_export_targets(reader, ours, settings.exports, settings.package_exports)
    _check_durations(reader, settings)
    if function_limit is not None:
        _check_function_timeout(reader, settings, function_limit)


def _check_durations(reader: SettingsReader, settings: Settings) -> None:
    # An upload is cut short D365_HTTP_TIMEOUT before its lease ends (F&O's answer may take
    # that long), so the lease must leave a window to upload in.
    shortest = settings.d365.http_timeout + _UPLOAD_WINDOW
    if settings.claim_lease < shortest:
        reader.problem(
            "CLAIM_LEASE",
            f"{format_duration(settings.claim_lease)} leaves no time to upload: a send must "
            "end D365_HTTP_TIMEOUT before its lease does, so recovery never judges a send "
            f"still running; expected at least {format_duration(shortest)} (D365_HTTP_TIMEOUT "
            f"plus {format_duration(_UPLOAD_WINDOW)})",
        )
    if settings.poll_interval_min > settings.poll_interval_max:
        reader.problem(
            "POLL_INTERVAL_MIN",
            f"{format_duration(settings.poll_interval_min)} is longer than POLL_INTERVAL_MAX "
            f"({format_duration(settings.poll_interval_max)}); expected MIN <= MAX",
        )
    if settings.max_pending_age <= settings.poll_interval_max:
        reader.problem(
            "MAX_PENDING_AGE",
            f"{format_duration(settings.max_pending_age)} is not longer than POLL_INTERVAL_MAX "
            f"({format_duration(settings.poll_interval_max)}); messages would time out before "
            "their next poll",
        )


def _check_function_timeout(reader: SettingsReader, settings: Settings, limit: timedelta) -> None:
    """A tick stops starting work after its budget; a call in flight then runs to its timeout."""
    budget, in_flight = settings.poll_tick_budget, settings.d365.http_timeout
    if budget + in_flight >= limit:
        reader.problem(
            "POLL_TICK_BUDGET",
            f"{format_duration(budget)} plus D365_HTTP_TIMEOUT ({format_duration(in_flight)}) "
            "for a call still in flight is not shorter than functionTimeout in host.json "
            f"({format_duration(limit)}): the host would stop a tick mid-call; lower "
            "POLL_TICK_BUDGET or D365_HTTP_TIMEOUT, or raise functionTimeout",
        )


def _check_misspellings(reader: SettingsReader) -> None:
    """A misspelled setting is otherwise ignored, and its default silently applies."""
    for name in reader.environ:
        if name in SETTING_NAMES or not name.upper().startswith(_OUR_PREFIXES):
            continue
        close = difflib.get_close_matches(
            name.upper(), SETTING_NAMES, n=1, cutoff=_MISSPELLING_CUTOFF
        )
        if close:
            reader.problem(
                name,
                f"is not a setting of this app; did you mean {close[0]}? Rename it (until then "
                f"{close[0]} keeps its own value or default)",
            )
