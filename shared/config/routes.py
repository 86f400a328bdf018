"""Routes: which recurring data job a blob in the inbound container goes to.

A route is one entry of the ``D365_ROUTES`` app setting (a JSON list)::

    {"name": "customers", "prefix": "customers/{company}/",
     "activity_id": "6d31e09f-0249-459f-94f0-aad9c2c47b64", "entity": "CustomersV3"}

Keys:

``name``         required; unique (case-insensitive), 1-64 letters, digits, ``-`` or ``_``.
``prefix``       required; the blob path inside the inbound container, relative, ending in
                 ``/``, without ``..`` or empty segments. It may hold one ``{company}``
                 segment (a whole segment): that segment of the blob path is the legal
                 entity sent as ``company``. Prefixes match case-sensitively, as blob names do.
``activity_id``  required; the recurring data job's ID (Data management > Manage scheduled
                 data jobs). Braces and upper case are accepted; kept lower case, bare.
``entity``       the data entity name as the job's data project shows it, sent as
                 ``entity``. Omitted: the route feeds a *data package* job, which takes only
                 ``.zip`` packages and no ``entity`` parameter.
``company``      a fixed legal entity (1-4 letters or digits); not together with ``{company}``.
                 Neither: F&O uses the job's company (the job needs "Use company from
                 message" for ``company`` to count).
``max_bytes``    largest file sent, in bytes (an integer, or a text such as ``"20MiB"``), at
                 most 1 GiB; default: the ``MAX_FILE_BYTES`` setting (enqueue routes), the
                 package path's own limit (package routes, ``on_too_large`` files: see
                 :data:`shared.flows.package.PACKAGE_MAX_BYTES`).
``extensions``   allowed file suffixes, e.g. ``[".xml"]``, compared case-insensitively;
                 omitted: any (data package routes, and package routes without
                 ``template``: ``[".zip"]``, the only files they take).
``enabled``      ``false`` parks the route: its files are rejected, not sent. Default true.
``api``          ``"enqueue"`` (default): the recurring data job of ``activity_id``;
                 ``"package"``: the DMF package API into the data project
                 ``definition_group`` (no ``activity_id``): GetAzureWriteUrl, a PUT of the
                 package, ImportFromPackage with ``legalEntityId`` the route's company.
``definition_group`` the data project's name (Data management > the project); required with
                 ``"api": "package"`` or ``on_too_large``.
``overwrite``    ImportFromPackage's ``overwrite`` (false for composite entities); default true.
``execute``      ImportFromPackage's ``execute`` (run staging to target); default true.
``template``     ``"<container>/<path>.zip"``: a package holding ``Manifest.xml`` and
                 ``PackageHeader.xml``; a file that is not a ``.zip`` is wrapped into a copy
                 of it, under the name the manifest's ``InputFilePath`` gives. Without it a
                 package route takes only ``.zip`` packages.
``on_too_large`` ``"package"`` on an enqueue route: a file over ``max_bytes``, or one F&O
                 refused with 413, is imported through the package API (``definition_group``,
                 and ``template`` unless the route feeds ``.zip`` packages).

:class:`ImportRoutes` resolves a blob path to a :class:`RouteMatch` by the longest matching
prefix (a literal segment beats ``{company}``) or raises :class:`RoutingError` with a
:class:`RejectReason`. A bad route raises :class:`RouteConfigError` listing every problem;
two routes that would both claim the same paths with equal specificity are such a problem.

Blob names are accepted up to :data:`MAX_BLOB_NAME_CHARS` characters and
:data:`MAX_BLOB_NAME_SEGMENTS` segments, so that the archive's name for the file,
``<state>/<name>`` with ``.<12 hex>`` before the extension on a repeat, stays within Azure's
limits (1,024 characters, 254 segments).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from shared.config.parsers import (
    EXAMPLE_GUID,
    InvalidValueError,
    parse_byte_size,
    parse_guid,
    shown,
)
from shared.errors import AppError

__all__ = [
    "API_ENQUEUE",
    "API_PACKAGE",
    "COMPANY_PLACEHOLDER",
    "MAX_BLOB_NAME_CHARS",
    "MAX_BLOB_NAME_SEGMENTS",
    "ImportRoute",
    "ImportRoutes",
    "RejectReason",
    "RouteConfigError",
    "RouteMatch",
    "RoutingError",
]

COMPANY_PLACEHOLDER = "{company}"
ROUTES_SETTING = "D365_ROUTES"
MAX_FILE_NAME_CHARS = 255
PACKAGE_EXTENSIONS = (".zip",)
API_ENQUEUE = "enqueue"
API_PACKAGE = "package"
# Azure container names: 3-63 lower-case letters, digits and single hyphens.
_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
# Azure's limits for a blob name, and what the archive adds to one:
# "<state>/" (the longest terminal state is PostProcessingFailed) and, when that name was
# archived before, ".<12 hex>" of the record id before the extension.
_AZURE_BLOB_NAME_CHARS = 1024
_AZURE_BLOB_NAME_SEGMENTS = 254
_ARCHIVE_STATE_FOLDER = "PostProcessingFailed/"
_ARCHIVE_REPEAT_SUFFIX_CHARS = len(".") + 12
MAX_BLOB_NAME_CHARS = (
    _AZURE_BLOB_NAME_CHARS - len(_ARCHIVE_STATE_FOLDER) - _ARCHIVE_REPEAT_SUFFIX_CHARS
)
"""The longest blob name accepted (990), counted in UTF-16 code units, the stricter reading of
Azure's "characters": its archive name then fits Azure's 1,024."""
MAX_BLOB_NAME_SEGMENTS = _AZURE_BLOB_NAME_SEGMENTS - 1
"""The most path segments a blob name may have (253): the archive adds the state folder."""
# Deeper JSON than a route list needs is refused before parsing (it could exhaust the stack).
_MAX_ROUTES_DEPTH = 10
_MAX_JSON_INT_DIGITS = 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# F&O legal entity ids (DataAreaId) are at most 4 characters; RIS flags longer ones.
_COMPANY = re.compile(r"^[A-Za-z0-9]{1,4}$")
_EXTENSION = re.compile(r"^\.[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
# C0 and C1 control characters, which Azure does not allow in blob names (0x00-0x1F, \u0081).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class RejectReason(enum.StrEnum):
    """Why a blob is never sent to F&O; stored on its tracking row and blob metadata."""

    NO_ROUTE = "NoRoute"
    BAD_NAME = "BadName"
    BAD_COMPANY = "BadCompany"
    EXTENSION_NOT_ALLOWED = "ExtensionNotAllowed"
    ROUTE_DISABLED = "RouteDisabled"
    EMPTY_FILE = "EmptyFile"
    TOO_LARGE = "TooLarge"
    NAME_TOO_LONG = "NameTooLong"
    SUPERSEDED = "Superseded"
    """The blob was overwritten before it was sent; the new version is tracked on its own."""
    DELETED = "Deleted"
    """The blob was deleted before it was sent."""


class RouteConfigError(AppError, ValueError):
    """One or more routes are invalid; ``problems`` lists each, naming route and key."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class RoutingError(AppError, ValueError):
    """A blob cannot be sent: ``reason`` says why, the text names the path and the fix."""

    def __init__(self, reason: RejectReason, blob_path: str, message: str) -> None:
        self.reason = reason
        self.blob_path = blob_path
        super().__init__(message)


class _FieldError(ValueError):
    """One field's problem, before it is labelled with its route and key."""


class _JsonLimitError(ValueError):
    """D365_ROUTES holds JSON this module refuses to read (text says why)."""


def key_problems(
    raw: object, label: str, known: Iterable[str], required: Iterable[str]
) -> list[str]:
    """Unknown and missing keys of one JSON object of a route list (``label`` names it).

    :raises RouteConfigError: ``raw`` is not an object at all.
    """
    if not isinstance(raw, Mapping):
        raise RouteConfigError(
            [f'{label}: {shown(raw)} is not an object; expected {{"name": ..., ...}}']
        )
    keys = list(known)
    problems = [
        f"{label}: unknown key {key!r}; expected one of {', '.join(keys)}"
        for key in raw
        if key not in keys
    ]
    return problems + [f"{label}.{key}: missing" for key in required if key not in raw]


def _company_problem(company: str) -> str | None:
    if _COMPANY.match(company):
        return None
    return (
        f"{shown(company)} is not a legal entity id; expected 1-4 letters or digits "
        "(the company's DataAreaId, e.g. USMF)"
    )


def _parse_name(value: object) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise _FieldError(
            f"{shown(value)} is not a simple name; expected 1-64 letters, digits, '-' or '_', "
            "e.g. customers"
        )
    return value


def _parse_prefix(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _FieldError(f"{shown(value)} is empty; expected a folder path like customers/")
    expected = "expected a relative folder path ending in '/', e.g. customers/{company}/"
    segments = value.split("/")
    problem = None
    if _CONTROL.search(value):
        problem = "holds a control character"
    elif value.startswith("/"):
        problem = "starts with '/'"
    elif not value.endswith("/"):
        problem = "does not end with '/'"
    elif any(not s for s in segments[:-1]):
        problem = "has an empty segment ('//')"
    elif any(s in (".", "..") for s in segments):
        problem = "holds '.' or '..'"
    elif segments.count(COMPANY_PLACEHOLDER) > 1:
        problem = "holds {company} more than once"
    elif any(s.lower() == COMPANY_PLACEHOLDER != s for s in segments):
        problem = "writes the {company} placeholder with capitals; write it in lower case"
    elif any("{" in s or "}" in s for s in segments if s != COMPANY_PLACEHOLDER):
        problem = "uses braces other than a whole {company} segment"
    elif _utf16_length(value) >= MAX_BLOB_NAME_CHARS or len(segments) > MAX_BLOB_NAME_SEGMENTS:
        problem = (
            f"leaves no room for a file name (blob names are accepted up to "
            f"{MAX_BLOB_NAME_CHARS} characters and {MAX_BLOB_NAME_SEGMENTS} segments)"
        )
    if problem:
        raise _FieldError(f"{shown(value)} {problem}; {expected}")
    return value


def _parse_activity_id(value: object) -> str | None:
    if value is None:
        return None
    hint = (
        "expected the recurring data job's activity ID from Data management > Manage scheduled "
        f"data jobs, e.g. {EXAMPLE_GUID}"
    )
    try:
        return parse_guid(value)
    except InvalidValueError as exc:
        raise _FieldError(f"{exc}; {hint}") from None


def _parse_entity(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or _CONTROL.search(value):
        raise _FieldError(
            f"{shown(value)} is not an entity name; expected the data entity as the job's "
            "data project shows it, e.g. CustomersV3, or omit it for a data package job"
        )
    return value.strip()


def _parse_company(value: object) -> str | None:
    if value is None:
        return None
    problem = _company_problem(value) if isinstance(value, str) else None
    if not isinstance(value, str) or problem:
        raise _FieldError(problem or f"{shown(value)} is not a legal entity id")
    return value


def _parse_max_bytes(value: object) -> int | None:
    if value is None:
        return None
    hint = 'expected a positive byte count up to 1GiB, e.g. 20971520 or "20MiB"'
    if not isinstance(value, str | int):
        raise _FieldError(f"{shown(value)} is not a size; {hint}")
    try:
        return parse_byte_size(value)
    except InvalidValueError as exc:
        raise _FieldError(f"{exc}; {hint}") from None


_EXTENSIONS_FORM = 'expected a list of suffixes such as [".xml", ".csv"]'


def _parse_extensions(value: object) -> tuple[str, ...]:
    expected = _EXTENSIONS_FORM
    if not isinstance(value, list | tuple):
        raise _FieldError(f"{shown(value)} is not a list; {expected}")
    bad = [item for item in value if not isinstance(item, str) or not _EXTENSION.match(item)]
    if bad:
        raise _FieldError(f"{shown(bad)} are not file suffixes; {expected}")
    return tuple(dict.fromkeys(item.lower() for item in value))


def _parse_enabled(value: object) -> bool:
    if not isinstance(value, bool):
        raise _FieldError(f"{shown(value)} is not true or false")
    return value


def _parse_api(value: object) -> str:
    if not isinstance(value, str) or value.strip().lower() not in (API_ENQUEUE, API_PACKAGE):
        raise _FieldError(f'{shown(value)} is not an API; expected "enqueue" or "package"')
    return value.strip().lower()


def _parse_definition_group(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or _CONTROL.search(value):
        raise _FieldError(
            f"{shown(value)} is not a data project name; expected the project's name as "
            "Data management shows it, e.g. CustomersPackage"
        )
    return value.strip()


def _parse_template(value: object) -> str | None:
    if value is None:
        return None
    container, _, path = value.partition("/") if isinstance(value, str) else ("", "", "")
    if (
        not _CONTAINER.match(container)
        or not path.lower().endswith(".zip")
        or _CONTROL.search(path)
    ):
        raise _FieldError(
            f"{shown(value)} is not a template package; expected <container>/<path>.zip, "
            "e.g. d365-templates/customers.zip"
        )
    return value


def _parse_on_too_large(value: object) -> str | None:
    if value is None:
        return None
    if value != API_PACKAGE:
        raise _FieldError(f'{shown(value)} is not a fallback; expected "package" or omit it')
    return value


_FIELD_PARSERS = {
    "name": _parse_name,
    "prefix": _parse_prefix,
    "activity_id": _parse_activity_id,
    "entity": _parse_entity,
    "company": _parse_company,
    "max_bytes": _parse_max_bytes,
    "extensions": _parse_extensions,
    "enabled": _parse_enabled,
    "api": _parse_api,
    "definition_group": _parse_definition_group,
    "overwrite": _parse_enabled,
    "execute": _parse_enabled,
    "template": _parse_template,
    "on_too_large": _parse_on_too_large,
}
_REQUIRED = ("name", "prefix")


def _parse_fields(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Parse and normalise every key; return the values and (key, problem) pairs."""
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key, value in raw.items():
        try:
            values[key] = _FIELD_PARSERS[key](value)
        except _FieldError as exc:
            problems.append((key, str(exc)))
    problems.extend(_cross_field_problems(values, raw))
    return values, problems


def _cross_field_problems(
    values: Mapping[str, Any], raw: Mapping[str, Any]
) -> list[tuple[str, str]]:
    prefix = values.get("prefix") or ""
    problems = []
    if values.get("company") and COMPANY_PLACEHOLDER in prefix.split("/"):
        problems.append(
            (
                "company",
                "is set while the prefix holds {company}; use one: a fixed company or the "
                "{company} folder",
            )
        )
    problems += _package_problems(values, raw)
    extensions = values.get("extensions") or ()
    if values.get("template") is not None or not set(extensions) - set(PACKAGE_EXTENSIONS):
        return problems
    if values.get("api", API_ENQUEUE) == API_PACKAGE:
        problems.append(
            (
                "extensions",
                f"{shown(list(extensions))} on a package route without template; it takes only "
                '.zip packages: use [".zip"], or set template to wrap other files into a package',
            )
        )
    elif values.get("entity") is None:
        problems.append(
            (
                "extensions",
                f"{shown(list(extensions))} on a data package route (no entity); a data "
                'package job takes only .zip packages: use [".zip"], or set entity for a file job',
            )
        )
    return problems


def _package_problems(values: Mapping[str, Any], raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What the package API options need of each other (every problem at once).

    A missing ``activity_id`` key is reported by `ImportRoute.from_dict` (with the other required
    keys); a None one here (a route constructed directly).
    """
    api = values.get("api", API_ENQUEUE)
    problems = []
    if api == API_PACKAGE:
        if values.get("activity_id") is not None:
            problems.append(
                (
                    "activity_id",
                    'is for "api": "enqueue"; a package route imports into definition_group '
                    "(remove activity_id, or the api key)",
                )
            )
        if values.get("on_too_large") is not None:
            problems.append(("on_too_large", 'is for enqueue routes; this route is "package"'))
    elif "activity_id" in raw and raw["activity_id"] is None:
        problems.append(("activity_id", "missing"))
    uses_package = api == API_PACKAGE or values.get("on_too_large") is not None
    if uses_package and values.get("definition_group") is None:
        problems.append(
            (
                "definition_group",
                "missing; the package API imports into a data project: set its name, "
                "e.g. CustomersPackage",
            )
        )
    if not uses_package:
        for key in ("definition_group", "template"):
            if values.get(key) is not None:
                problems.append(
                    (key, 'is for the package API; set "api": "package" or "on_too_large"')
                )
    wraps_plain_files = values.get("entity") is not None and values.get("on_too_large")
    if wraps_plain_files and values.get("template") is None:
        problems.append(
            (
                "template",
                "missing; on_too_large on a file route wraps the file into a package: set "
                "template to <container>/<path>.zip holding Manifest.xml and PackageHeader.xml",
            )
        )
    return problems


def _takes_only_packages(values: Mapping[str, Any]) -> bool:
    """A data package job (no entity), or the package API with no template to wrap a plain
    file in: only ``.zip`` packages, refused otherwise before anything reaches F&O."""
    if values.get("template") is not None:
        return False
    return values.get("entity") is None or values.get("api", API_ENQUEUE) == API_PACKAGE


@dataclass(frozen=True)
class ImportRoute:
    """One recurring data job fed from a folder of the inbound container.

    Values are validated and normalised on construction.

    :raises RouteConfigError: a value is invalid.
    """

    name: str
    prefix: str
    activity_id: str | None = None
    entity: str | None = None
    company: str | None = None
    max_bytes: int | None = None
    extensions: tuple[str, ...] = ()
    enabled: bool = True
    api: str = API_ENQUEUE
    definition_group: str | None = None
    overwrite: bool = True
    execute: bool = True
    template: str | None = None
    on_too_large: str | None = None
    _segments: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        raw = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        values, problems = _parse_fields(raw)
        if problems:
            raise RouteConfigError([f"route {self.name!r}.{key}: {text}" for key, text in problems])
        if _takes_only_packages(values) and not values["extensions"]:
            values["extensions"] = PACKAGE_EXTENSIONS
        for key, value in values.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_segments", tuple(self.prefix.split("/")[:-1]))

    @classmethod
    def from_dict(cls, raw: object, *, label: str = "route") -> ImportRoute:
        """Build a route from one parsed JSON object; ``label`` prefixes each problem.

        :raises RouteConfigError: every problem of this route, e.g.
            ``D365_ROUTES[1].activity_id: 'abc' is not a GUID; expected ...``.
        """
        package = isinstance(raw, Mapping) and raw.get("api") == API_PACKAGE
        required = _REQUIRED if package else (*_REQUIRED, "activity_id")
        problems = key_problems(raw, label, _FIELD_PARSERS, required)
        assert isinstance(raw, Mapping)  # key_problems raised otherwise
        if raw.get("extensions") == []:
            problems.append(
                f"{label}.extensions: is an empty list, which would allow no file; "
                f"{_EXTENSIONS_FORM}, or omit it to allow any"
            )
        known = {key: value for key, value in raw.items() if key in _FIELD_PARSERS}
        values, field_problems = _parse_fields(known)
        problems += [f"{label}.{key}: {text}" for key, text in field_problems]
        if problems:
            raise RouteConfigError(problems)
        return cls(**values)

    @property
    def is_package(self) -> bool:
        """True for a data package route (no entity): only ``.zip`` files, no ``entity``."""
        return self.entity is None

    @property
    def uses_package_api(self) -> bool:
        """True when files go through the DMF package API (``"api": "package"``)."""
        return self.api == API_PACKAGE

    @property
    def takes_company_from_path(self) -> bool:
        """True when the prefix holds ``{company}``."""
        return COMPANY_PLACEHOLDER in self._segments

    def as_dict(self) -> dict[str, Any]:
        """The route as JSON-ready values (nothing secret in a route)."""
        return {
            "name": self.name,
            "prefix": self.prefix,
            "activity_id": self.activity_id,
            "entity": self.entity,
            "company": self.company,
            "max_bytes": self.max_bytes,
            "extensions": list(self.extensions),
            "enabled": self.enabled,
            "api": self.api,
            "definition_group": self.definition_group,
            "overwrite": self.overwrite,
            "execute": self.execute,
            "template": self.template,
            "on_too_large": self.on_too_large,
        }

    def _matches(self, segments: Sequence[str]) -> bool:
        """True when a path's folders start with this prefix and a file name follows."""
        if len(segments) <= len(self._segments):
            return False
        return all(
            mine in (COMPANY_PLACEHOLDER, theirs)
            for mine, theirs in zip(self._segments, segments, strict=False)
        )

    def _company_for(self, segments: Sequence[str]) -> str | None:
        """The ``{company}`` segment of a matching path, else the fixed company (or None)."""
        if self.takes_company_from_path:
            return segments[self._segments.index(COMPANY_PLACEHOLDER)]
        return self.company

    def _specificity(self) -> tuple[int, int]:
        literal = sum(1 for s in self._segments if s != COMPANY_PLACEHOLDER)
        return len(self._segments), literal


@dataclass(frozen=True)
class RouteMatch:
    """A blob path resolved to its route and the company it is sent for."""

    route: ImportRoute
    company: str | None
    blob_path: str
    file_name: str


class ImportRoutes:
    """The configured routes, validated as a whole; resolves blob paths.

    :param routes: the routes; names and prefixes must be unique, and no two may claim the
        same paths with equal specificity.
    :raises RouteConfigError: duplicate names or prefixes, or ambiguous prefixes.
    """

    def __init__(self, routes: Iterable[ImportRoute]) -> None:
        self._routes = tuple(routes)
        problems = _duplicate_problems(self._routes) + _ambiguity_problems(self._routes)
        if problems:
            raise RouteConfigError(problems)
        # Most specific first, so the first match is the longest prefix.
        self._by_specificity = sorted(self._routes, key=ImportRoute._specificity, reverse=True)

    @classmethod
    def from_json(cls, text: str, *, setting: str = ROUTES_SETTING) -> ImportRoutes:
        """Parse the ``D365_ROUTES`` JSON list.

        :raises RouteConfigError: every problem found, each naming ``setting[index].key``.
        """
        raw = _load_json(text, setting)
        if isinstance(raw, str) and raw.lstrip().startswith("["):
            raise RouteConfigError(
                [
                    f"{setting}: is a JSON string holding the list (encoded twice); store the "
                    "list itself, starting with ["
                ]
            )
        if not isinstance(raw, list) or not raw:
            raise RouteConfigError(
                [
                    f"{setting}: expected a non-empty JSON list of routes, e.g. "
                    f'[{{"name": "customers", "prefix": "customers/{{company}}/", '
                    f'"activity_id": "{EXAMPLE_GUID}", "entity": "CustomersV3"}}]'
                ]
            )
        routes: list[ImportRoute] = []
        problems: list[str] = []
        for index, item in enumerate(raw):
            try:
                routes.append(ImportRoute.from_dict(item, label=f"{setting}[{index}]"))
            except RouteConfigError as exc:
                problems.extend(exc.problems)
        if problems:
            raise RouteConfigError(problems)
        return cls(routes)

    @property
    def routes(self) -> tuple[ImportRoute, ...]:
        """The routes in configuration order."""
        return self._routes

    def __iter__(self) -> Iterator[ImportRoute]:
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def __repr__(self) -> str:
        return f"ImportRoutes({[r.name for r in self._routes]!r})"

    def get(self, name: str) -> ImportRoute | None:
        """The route called ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((r for r in self._routes if r.name.lower() == wanted), None)

    def resolve(self, blob_path: str) -> RouteMatch:
        """Resolve a blob path (inside the inbound container) to its route and company.

        :raises RoutingError: with ``reason`` BAD_NAME, NO_ROUTE, ROUTE_DISABLED,
            BAD_COMPANY or EXTENSION_NOT_ALLOWED, in that order of checking.
        """
        segments = _checked_segments(blob_path)
        route = self._longest_match(blob_path, segments)
        company = route._company_for(segments)
        file_name = segments[-1]
        if not route.enabled:
            raise RoutingError(
                RejectReason.ROUTE_DISABLED,
                blob_path,
                f"route {route.name!r} for {shown(blob_path)} is disabled; set "
                f'"enabled": true on it in {ROUTES_SETTING} and upload the file again',
            )
        if route.takes_company_from_path:
            _check_path_company(route, blob_path, company or "")
        _check_extension(route, blob_path, file_name)
        return RouteMatch(route=route, company=company, blob_path=blob_path, file_name=file_name)

    def _longest_match(self, blob_path: str, segments: Sequence[str]) -> ImportRoute:
        route = next((r for r in self._by_specificity if r._matches(segments)), None)
        if route is None:
            prefixes = ", ".join(r.prefix for r in self._routes)
            raise RoutingError(
                RejectReason.NO_ROUTE,
                blob_path,
                f"no route matches {shown(blob_path)}; routes: {prefixes}; add a route to "
                f"{ROUTES_SETTING} or upload under one of these prefixes",
            )
        return route


def _load_json(text: str, setting: str) -> object:
    """Parse ``text``, refusing what a route list never holds before it can cost much."""
    problem = None
    if _nesting_depth(text) > _MAX_ROUTES_DEPTH:
        problem = f"is nested deeper than {_MAX_ROUTES_DEPTH} levels"
    else:
        try:
            return json.loads(text, object_pairs_hook=_unique_keys, parse_int=_short_int)
        except _JsonLimitError as exc:
            problem = str(exc)
        except json.JSONDecodeError as exc:
            problem = f"is not valid JSON ({exc})"
    raise RouteConfigError([f"{setting}: {problem}; expected a JSON list of route objects"])


def _nesting_depth(text: str) -> int:
    """How deeply JSON arrays and objects nest in ``text`` (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = next((key for key in keys if keys.count(key) > 1), None)
    if repeated is not None:
        raise _JsonLimitError(
            f"an object repeats the key {shown(repeated)}, and only one would count"
        )
    return dict(pairs)


def _short_int(digits: str) -> int:
    if len(digits.lstrip("-")) > _MAX_JSON_INT_DIGITS:
        raise _JsonLimitError(f"holds a number of more than {_MAX_JSON_INT_DIGITS} digits")
    return int(digits)


def _duplicate_problems(routes: Sequence[ImportRoute]) -> list[str]:
    problems = []
    names: dict[str, ImportRoute] = {}
    prefixes: dict[str, ImportRoute] = {}
    for route in routes:
        if route.name.lower() in names:
            problems.append(f"{ROUTES_SETTING}: route name {route.name!r} is used twice")
        names.setdefault(route.name.lower(), route)
        other = prefixes.setdefault(route.prefix, route)
        if other is not route:
            problems.append(
                f"{ROUTES_SETTING}: routes {other.name!r} and {route.name!r} have the same "
                f"prefix {route.prefix!r}; each folder feeds one job"
            )
    return problems


def _ambiguity_problems(routes: Sequence[ImportRoute]) -> list[str]:
    """Pairs of routes that would both claim some path with the same specificity.

    Resolution takes the most specific prefix; between equals the configuration order would
    decide silently, e.g. ``{company}/in/`` and ``USMF/{company}/`` for ``USMF/in/a.xml``.
    """
    peers: dict[tuple[int, int], list[ImportRoute]] = {}
    for route in routes:
        peers.setdefault(route._specificity(), []).append(route)
    return [
        _ambiguity_problem(first, second)
        for group in peers.values()
        for index, first in enumerate(group)
        for second in group[index + 1 :]
        if first.prefix != second.prefix and _overlap(first, second)
    ]


def _overlap(first: ImportRoute, second: ImportRoute) -> bool:
    """True when some path matches both prefixes (of equal length)."""
    return all(
        COMPANY_PLACEHOLDER in (mine, theirs) or mine == theirs
        for mine, theirs in zip(first._segments, second._segments, strict=True)
    )


def _ambiguity_problem(first: ImportRoute, second: ImportRoute) -> str:
    example = "/".join(
        theirs if mine == COMPANY_PLACEHOLDER else mine
        for mine, theirs in zip(first._segments, second._segments, strict=True)
    )
    return (
        f"{ROUTES_SETTING}: routes {first.name!r} ({first.prefix!r}) and "
        f"{second.name!r} ({second.prefix!r}) both match paths such as "
        f"{example + '/<file>'!r} and neither is more specific; make one prefix "
        "longer or more literal"
    )


def _utf16_length(text: str) -> int:
    """Length in UTF-16 code units: characters beyond U+FFFF count twice."""
    return len(text.encode("utf-16-le")) // 2


def _checked_segments(blob_path: str) -> list[str]:
    """Split a blob path, or raise BAD_NAME when F&O or a person could not use the name."""
    segments = blob_path.split("/")
    problem = None
    if not blob_path:
        problem = "is empty"
    elif _CONTROL.search(blob_path):
        problem = "holds a control character"
    elif any(not s.strip() for s in segments):
        problem = "has an empty folder or file name segment"
    elif any(s in (".", "..") for s in segments):
        problem = "holds a '.' or '..' segment"
    elif len(segments[-1]) > MAX_FILE_NAME_CHARS:
        problem = f"has a file name longer than {MAX_FILE_NAME_CHARS} characters"
    if problem:
        raise RoutingError(
            RejectReason.BAD_NAME,
            blob_path,
            f"blob name {shown(blob_path)} {problem}; F&O gets the file name as its external "
            "identifier: rename the file (printable characters, no empty segments) and upload "
            "it again",
        )
    _check_archive_limits(blob_path, segments)
    return segments


def _check_archive_limits(blob_path: str, segments: Sequence[str]) -> None:
    """NAME_TOO_LONG when the archive's name for the blob could exceed Azure's limits."""
    length = _utf16_length(blob_path)
    if length > MAX_BLOB_NAME_CHARS:
        problem = (
            f"is {length} characters long; the archive adds up to "
            f"{_AZURE_BLOB_NAME_CHARS - MAX_BLOB_NAME_CHARS} ('{_ARCHIVE_STATE_FOLDER}' and "
            f"'.<12 hex>' for a repeat) and Azure takes at most {_AZURE_BLOB_NAME_CHARS}, so "
            f"names up to {MAX_BLOB_NAME_CHARS} characters are accepted"
        )
    elif len(segments) > MAX_BLOB_NAME_SEGMENTS:
        problem = (
            f"has {len(segments)} path segments; the archive adds one and Azure takes at most "
            f"{_AZURE_BLOB_NAME_SEGMENTS}, so names of up to {MAX_BLOB_NAME_SEGMENTS} "
            "segments are accepted"
        )
    else:
        return
    raise RoutingError(
        RejectReason.NAME_TOO_LONG,
        blob_path,
        f"blob name {shown(blob_path)} {problem}: use shorter or fewer folder names and "
        "upload it again",
    )


def _check_path_company(route: ImportRoute, blob_path: str, company: str) -> None:
    problem = _company_problem(company)
    if problem:
        raise RoutingError(
            RejectReason.BAD_COMPANY,
            blob_path,
            f"the {{company}} folder of {shown(blob_path)} (route {route.name!r}, prefix "
            f"{route.prefix!r}): {problem}; upload under the legal entity's folder",
        )


def _check_extension(route: ImportRoute, blob_path: str, file_name: str) -> None:
    if not route.extensions or file_name.lower().endswith(route.extensions):
        return
    if route.uses_package_api and route.template is None:
        raise RoutingError(
            RejectReason.EXTENSION_NOT_ALLOWED,
            blob_path,
            f"{shown(blob_path)} does not end with .zip, which package route {route.name!r} "
            "requires: without a template it imports data packages only; upload the data "
            f"package (.zip), or give the route a template in {ROUTES_SETTING} to wrap other "
            "files into one",
        )
    kind = "data package route" if route.is_package else "route"
    raise RoutingError(
        RejectReason.EXTENSION_NOT_ALLOWED,
        blob_path,
        f"{shown(blob_path)} does not end with {' or '.join(route.extensions)}, which "
        f"{kind} {route.name!r} requires; upload a file of that type or change the route's "
        f"extensions in {ROUTES_SETTING}",
    )
