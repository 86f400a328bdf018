"""Package export routes: which data projects are exported on a schedule, to which folder.

A package export route is one entry of the ``PACKAGE_EXPORT_ROUTES`` app setting (a JSON
list), beside ``EXPORT_ROUTES`` rather than in it: an export route follows a recurring
export job F&O runs on its own schedule (keyed by its ``activity_id``, dequeued and acked),
while a package export route is run by this app on a schedule of its own through the DMF
package API (``ExportToPackage``). They share no key but the target's (``container``,
``prefix``, ``unzip``), so one list would make half of each entry conditional on a kind::

    {"name": "customers-daily", "definition_group": "CustomersExport",
     "legal_entity": "USMF", "schedule": "0 0 2 * * *",
     "container": "d365-exports", "prefix": "customers/{company}/{date}/"}

Keys:

``name``              required; unique (case-insensitive, across both settings), 1-64
                      letters, digits, ``-`` or ``_``.
``definition_group``  required; the export data project's name (Data management > Export).
``legal_entity``      required; the company exported from (1-4 letters or digits).
``schedule``          required; NCRONTAB, six fields (UTC), read as the timer trigger reads
                      it. A slot runs at the first export tick (``EXPORT_SCHEDULE``) at or
                      after it; slots missed while the app was down run once, not once each.
``container``         required; the target blob container (created when missing).
``prefix``            required; the folder the package lands in, as for export routes:
                      ``{date}`` (the slot's UTC date), ``{message_id}`` (the execution id)
                      and ``{company}`` (``legal_entity``).
``unzip``             ``true`` writes each file of the package as its own blob
                      (``<prefix><path in the package>``); the prefix must then hold
                      ``{message_id}``. Default false: one blob ``<prefix><execution id>.zip``.
``re_execute``        F&O's ``reExecute``. Default false.
``enabled``           ``false`` runs nothing for the route. Default true.

:meth:`PackageExportRoutes.from_json` raises :class:`RouteConfigError` listing every problem,
each naming ``PACKAGE_EXPORT_ROUTES[index].key`` and the fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.config.exports import fill_prefix, parse_company, parse_container, parse_prefix
from shared.config.ncrontab import NCRONTAB_FORM, NcrontabSchedule, parse_ncrontab
from shared.config.parsers import shown
from shared.config.route_fields import (
    RouteConfigError,
    RouteFieldError,
    has_control_character,
    parse_bool,
    parse_name,
    read_fields,
)
from shared.config.route_json import build_each, load_route_json

__all__ = ["PACKAGE_EXPORT_ROUTES_SETTING", "PackageExportRoute", "PackageExportRoutes"]

PACKAGE_EXPORT_ROUTES_SETTING = "PACKAGE_EXPORT_ROUTES"
_MAX_PROJECT = 60
_EXAMPLE = (
    '[{"name": "customers-daily", "definition_group": "CustomersExport", '
    '"legal_entity": "USMF", "schedule": "0 0 2 * * *", "container": "d365-exports", '
    '"prefix": "customers/{date}/"}]'
)


def _parse_project(value: object) -> str:
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > _MAX_PROJECT
        or has_control_character(value)
    ):
        raise RouteFieldError(
            f"{shown(value)} is not a data project name; expected the name of an export data "
            f"project, 1-{_MAX_PROJECT} characters, e.g. CustomersExport"
        )
    return value.strip()


def _parse_schedule(value: object) -> NcrontabSchedule:
    if not isinstance(value, str):
        raise RouteFieldError(f"{shown(value)} is not text; expected NCRONTAB {NCRONTAB_FORM}")
    try:
        return parse_ncrontab(value)
    except ValueError as exc:
        raise RouteFieldError(f"{exc}; e.g. '0 0 2 * * *' runs at 02:00 UTC") from None


_FIELD_PARSERS = {
    "name": parse_name,
    "definition_group": _parse_project,
    "legal_entity": parse_company,
    "schedule": _parse_schedule,
    "container": parse_container,
    "prefix": parse_prefix,
    "unzip": parse_bool,
    "re_execute": parse_bool,
    "enabled": parse_bool,
}
_REQUIRED = ("name", "definition_group", "legal_entity", "schedule", "container", "prefix")


@dataclass(frozen=True)
class PackageExportRoute:
    """One export data project, the schedule it runs on, and the blob folder it lands in."""

    name: str
    definition_group: str
    legal_entity: str
    schedule: NcrontabSchedule
    container: str
    prefix: str
    unzip: bool = False
    re_execute: bool = False
    enabled: bool = True

    @classmethod
    def from_dict(cls, raw: object, *, label: str = "package export") -> PackageExportRoute:
        """Build a route from one parsed JSON object; ``label`` prefixes each problem.

        :raises RouteConfigError: every problem of this route.
        """
        values, problems = read_fields(raw, label, _FIELD_PARSERS, _REQUIRED)
        assert isinstance(raw, Mapping)  # read_fields raised otherwise
        prefix = str(raw.get("prefix") or "")
        if values.get("unzip") and "{message_id}" not in prefix:
            problems.append(
                f"{label}.prefix: {shown(prefix)} has no {{message_id}} while unzip is true; "
                "the files of two runs would overwrite each other: add a {message_id}/ folder"
            )
        if problems:
            raise RouteConfigError(problems)
        return cls(**values)

    def folder(self, *, slot: datetime, execution_id: str) -> str:
        """The prefix with its placeholders filled in for one run."""
        return fill_prefix(self.prefix, company=self.legal_entity, at=slot, message_id=execution_id)

    def target(self, *, slot: datetime, execution_id: str) -> str:
        """The blob of one run's package, or the folder of its files when unzipping."""
        folder = self.folder(slot=slot, execution_id=execution_id)
        return folder if self.unzip else f"{folder}{execution_id}.zip"

    def as_dict(self) -> dict[str, Any]:
        """The route as JSON-ready values (nothing secret in a route)."""
        return {
            "name": self.name,
            "definition_group": self.definition_group,
            "legal_entity": self.legal_entity,
            "schedule": self.schedule.expression,
            "container": self.container,
            "prefix": self.prefix,
            "unzip": self.unzip,
            "re_execute": self.re_execute,
            "enabled": self.enabled,
        }


@dataclass(frozen=True)
class PackageExportRoutes:
    """The configured package export routes, validated as a whole (unique names)."""

    routes: tuple[PackageExportRoute, ...] = ()

    @classmethod
    def from_json(cls, text: str | None) -> PackageExportRoutes:
        """Parse ``PACKAGE_EXPORT_ROUTES``; None, blank or ``[]`` is no package exports.

        :raises RouteConfigError: every problem found, each naming
            ``PACKAGE_EXPORT_ROUTES[i].key``.
        """
        if text is None or not text.strip():
            return cls()
        setting = PACKAGE_EXPORT_ROUTES_SETTING
        raw = load_route_json(text, setting)
        if not isinstance(raw, list):
            raise RouteConfigError([f"{setting}: {shown(raw)} is not a JSON list; e.g. {_EXAMPLE}"])
        routes, problems = build_each(raw, setting, PackageExportRoute.from_dict)
        seen: set[str] = set()
        for route in routes:
            if route.name.lower() in seen:
                problems.append(
                    f"{setting}: name {route.name!r} is used by two package export routes; "
                    "give each its own"
                )
            seen.add(route.name.lower())
        if problems:
            raise RouteConfigError(problems)
        return cls(tuple(routes))

    def __iter__(self) -> Iterator[PackageExportRoute]:
        return iter(self.routes)

    def __len__(self) -> int:
        return len(self.routes)
