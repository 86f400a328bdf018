"""Export routes: which recurring export jobs are dequeued, with the folder their files land in.

An export route is one entry of the ``EXPORT_ROUTES`` app setting (a JSON list)::

    {"name": "customers-out", "activity_id": "6d31e09f-0249-459f-94f0-aad9c2c47b64",
     "container": "d365-exports", "prefix": "customers/{company}/{date}/",
     "company": "USMF"}

Keys:

``name``          required; unique (case-insensitive), 1-64 letters, digits, ``-`` or ``_``.
``activity_id``   required; the recurring *export* job's ID (Data management > Manage
                  scheduled data jobs). Kept lower case, bare; unique across routes.
``container``     required; the target blob container (created when missing).
``prefix``        required; the folder of the container the files go to, relative, ending in
                  ``/``. Placeholders: ``{date}`` (the UTC dequeue date, ``yyyy-mm-dd``),
                  ``{message_id}`` (the message's CorrelationId, F&O's id of the message) and
                  ``{company}`` (the route's ``company``: the dequeue answer names no legal
                  entity, spec section 15, so the route says which one its job exports).
``company``       the legal entity written for ``{company}`` (1-4 letters or digits);
                  required when the prefix holds ``{company}``.
``unzip``         ``true`` writes each file inside the exported package as its own blob
                  (``<prefix><path in the package>``); the prefix must then hold
                  ``{message_id}``, or two exports would overwrite each other's files.
                  Default false: one blob ``<prefix><message id><extension>``.
``extension``     suffix of that one blob, default ``.zip`` (F&O's download is the package).
``max_messages``  messages taken per timer tick, 1-1000, default 100.
``enabled``       ``false`` leaves the job's queue alone. Default true.

:meth:`ExportRoutes.from_json` raises :class:`~shared.config.route_fields.RouteConfigError`
listing every problem, each naming ``EXPORT_ROUTES[index].key`` and the fix. An absent or
empty setting means no exports.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from shared.config.parsers import (
    EXAMPLE_GUID,
    InvalidValueError,
    container_name_form,
    parse_container_name,
    shown,
)
from shared.config.route_fields import (
    RouteConfigError,
    RouteFieldError,
    company_problem,
    has_control_character,
    is_file_suffix,
    parse_activity_id,
    parse_bool,
    parse_name,
    read_fields,
)
from shared.config.route_json import build_each, load_route_json

__all__ = [
    "EXPORT_ROUTES_SETTING",
    "PLACEHOLDERS",
    "ExportRoute",
    "ExportRoutes",
    "fill_prefix",
    "parse_company",
    "parse_container",
    "parse_prefix",
]

EXPORT_ROUTES_SETTING = "EXPORT_ROUTES"
PLACEHOLDERS = ("{company}", "{date}", "{message_id}")
DEFAULT_MAX_MESSAGES = 100
_MAX_MESSAGES = 1000
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_EXAMPLE = (
    f'[{{"name": "customers-out", "activity_id": "{EXAMPLE_GUID}", '
    '"container": "d365-exports", "prefix": "customers/{date}/"}]'
)


def parse_container(value: object) -> str:
    """A route's target container name."""
    try:
        return parse_container_name(value if isinstance(value, str) else "")
    except InvalidValueError:
        raise RouteFieldError(
            f"{shown(value)} is not a valid container name; {container_name_form('d365-exports')}"
        ) from None


def parse_prefix(value: object) -> str:
    """A route's folder: relative, ending in ``/``, only the known placeholders."""
    expected = "expected a folder path ending in '/', e.g. customers/{company}/{date}/"
    if not isinstance(value, str) or not value:
        raise RouteFieldError(f"{shown(value)} is empty; {expected}")
    segments = value.split("/")
    unknown = sorted(set(_PLACEHOLDER.findall(value)) - set(PLACEHOLDERS))
    problem = None
    if has_control_character(value):
        problem = "holds a control character"
    elif value.startswith("/") or not value.endswith("/"):
        problem = "does not end with '/' or starts with '/'"
    elif any(not s for s in segments[:-1]) or any(s in (".", "..") for s in segments):
        problem = "has an empty, '.' or '..' segment"
    elif unknown:
        problem = f"uses the unknown placeholder(s) {', '.join(unknown)}"
    elif "{" in _PLACEHOLDER.sub("", value) or "}" in _PLACEHOLDER.sub("", value):
        problem = "holds an unpaired brace"
    if problem:
        raise RouteFieldError(
            f"{shown(value)} {problem}; {expected} (placeholders: {', '.join(PLACEHOLDERS)})"
        )
    return value


def parse_company(value: object) -> str:
    """A legal entity id (1-4 letters or digits), upper case."""
    problem = company_problem(value) if isinstance(value, str) else "is not text"
    if problem:
        raise RouteFieldError(problem if isinstance(value, str) else f"{shown(value)} {problem}")
    return str(value).upper()


def _parse_extension(value: object) -> str:
    if not is_file_suffix(value):
        raise RouteFieldError(f"{shown(value)} is not a file suffix; expected e.g. .zip or .xml")
    return value.lower()


def _parse_max_messages(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_MESSAGES:
        raise RouteFieldError(f"{shown(value)} is not a whole number from 1 to {_MAX_MESSAGES}")
    return value


_FIELD_PARSERS = {
    "name": parse_name,
    # Every export route dequeues a job: null names none.
    "activity_id": partial(parse_activity_id, nullable=False),
    "container": parse_container,
    "prefix": parse_prefix,
    "company": parse_company,
    "unzip": parse_bool,
    "extension": _parse_extension,
    "max_messages": _parse_max_messages,
    "enabled": parse_bool,
}
_REQUIRED = ("name", "activity_id", "container", "prefix")


def _cross_field_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    prefix = values.get("prefix") or ""
    problems = []
    if "{company}" in prefix and not values.get("company"):
        problems.append(
            (
                "company",
                "missing while the prefix holds {company}; the dequeue answer names no legal "
                'entity, so set the company the job exports, e.g. "company": "USMF"',
            )
        )
    if values.get("unzip") and "{message_id}" not in prefix:
        problems.append(
            (
                "prefix",
                f"{shown(prefix)} has no {{message_id}} while unzip is true; the files of two "
                "exports would overwrite each other: add a {message_id}/ folder",
            )
        )
    if values.get("unzip") and "extension" in values:
        problems.append(("extension", "is set while unzip is true; the package's names count"))
    return problems


def fill_prefix(prefix: str, *, company: str | None, at: datetime, message_id: str) -> str:
    """``prefix`` with its placeholders filled in: ``{company}``, ``{date}`` (``at``'s
    ``yyyy-mm-dd``) and ``{message_id}``."""
    values = {
        "{company}": company or "",
        "{date}": at.strftime("%Y-%m-%d"),
        "{message_id}": message_id,
    }
    return _PLACEHOLDER.sub(lambda match: values[match.group(0)], prefix)


@dataclass(frozen=True)
class ExportRoute:
    """One recurring export job and the blob folder its files land in."""

    name: str
    activity_id: str
    container: str
    prefix: str
    company: str | None = None
    unzip: bool = False
    extension: str = ".zip"
    max_messages: int = DEFAULT_MAX_MESSAGES
    enabled: bool = True

    @classmethod
    def from_dict(cls, raw: object, *, label: str = "export") -> ExportRoute:
        """Build a route from one parsed JSON object; ``label`` prefixes each problem.

        :raises RouteConfigError: every problem of this route.
        """
        values, problems = read_fields(raw, label, _FIELD_PARSERS, _REQUIRED)
        assert isinstance(raw, Mapping)  # read_fields raised otherwise
        # An invalid prefix still tells whether it uses {company} or {message_id}.
        seen = {**values, "prefix": values.get("prefix") or str(raw.get("prefix") or "")}
        problems += [f"{label}.{key}: {text}" for key, text in _cross_field_problems(seen)]
        if problems:
            raise RouteConfigError(problems)
        return cls(**values)

    def folder(self, *, dequeued_at: datetime, message_id: str) -> str:
        """The prefix with its placeholders filled in for one message."""
        return fill_prefix(self.prefix, company=self.company, at=dequeued_at, message_id=message_id)

    def as_dict(self) -> dict[str, Any]:
        """The route as JSON-ready values (nothing secret in a route)."""
        return {
            "name": self.name,
            "activity_id": self.activity_id,
            "container": self.container,
            "prefix": self.prefix,
            "company": self.company,
            "unzip": self.unzip,
            "extension": self.extension,
            "max_messages": self.max_messages,
            "enabled": self.enabled,
        }


@dataclass(frozen=True)
class ExportRoutes:
    """The configured export routes, validated as a whole (unique names and activity ids)."""

    routes: tuple[ExportRoute, ...] = ()

    @classmethod
    def from_json(cls, text: str | None) -> ExportRoutes:
        """Parse ``EXPORT_ROUTES``; None, blank or ``[]`` is no exports.

        :raises RouteConfigError: every problem found, each naming ``EXPORT_ROUTES[i].key``.
        """
        if text is None or not text.strip():
            return cls()
        raw = load_route_json(text, EXPORT_ROUTES_SETTING)
        if not isinstance(raw, list):
            raise RouteConfigError(
                [f"{EXPORT_ROUTES_SETTING}: {shown(raw)} is not a JSON list; expected {_EXAMPLE}"]
            )
        routes, problems = build_each(raw, EXPORT_ROUTES_SETTING, ExportRoute.from_dict)
        problems += _duplicates(routes)
        if problems:
            raise RouteConfigError(problems)
        return cls(tuple(routes))

    def __iter__(self) -> Iterator[ExportRoute]:
        return iter(self.routes)

    def __len__(self) -> int:
        return len(self.routes)


def _duplicates(routes: list[ExportRoute]) -> list[str]:
    problems = []
    for attribute, what in (("name", "name"), ("activity_id", "activity_id")):
        seen: set[str] = set()
        for route in routes:
            key = getattr(route, attribute).lower()
            if key in seen:
                problems.append(
                    f"{EXPORT_ROUTES_SETTING}: {what} {getattr(route, attribute)!r} is used by "
                    "two export routes; each job is dequeued by one route"
                )
            seen.add(key)
    return problems
