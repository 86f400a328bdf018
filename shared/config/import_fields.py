"""Validators of each ``D365_ROUTES`` key of an import route, alone or side by side.

:func:`parse_fields` parses and normalises every key, then checks what the keys need of each
other; each problem comes back as ``(key, text)`` for the caller to label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.config.blob_names import MAX_BLOB_NAME_CHARS, MAX_BLOB_NAME_SEGMENTS, utf16_length
from shared.config.parsers import (
    MAX_BYTE_SIZE,
    InvalidValueError,
    byte_size_form,
    is_container_name,
    parse_byte_size,
    shown,
)
from shared.config.route_fields import (
    RouteFieldError,
    company_problem,
    has_control_character,
    is_file_suffix,
    parse_activity_id,
    parse_bool,
    parse_name,
)

__all__ = [
    "API_ENQUEUE",
    "API_PACKAGE",
    "COMPANY_PLACEHOLDER",
    "EXTENSIONS_FORM",
    "FIELD_PARSERS",
    "ON_FAILURE_CONTINUE",
    "ON_FAILURE_STOP",
    "ORDER_FINAL",
    "ORDER_UPLOAD",
    "PACKAGE_EXTENSIONS",
    "REQUIRED",
    "ROUTES_SETTING",
    "parse_fields",
    "takes_only_packages",
]

COMPANY_PLACEHOLDER = "{company}"
ROUTES_SETTING = "D365_ROUTES"
PACKAGE_EXTENSIONS = (".zip",)
API_ENQUEUE = "enqueue"
API_PACKAGE = "package"
ORDER_UPLOAD = "upload"
ORDER_FINAL = "final"
ON_FAILURE_STOP = "stop"
ON_FAILURE_CONTINUE = "continue"
EXTENSIONS_FORM = 'expected a list of suffixes such as [".xml", ".csv"]'


def _parse_prefix(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise RouteFieldError(f"{shown(value)} is empty; expected a folder path like customers/")
    expected = "expected a relative folder path ending in '/', e.g. customers/{company}/"
    segments = value.split("/")
    problem = None
    if has_control_character(value):
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
    elif utf16_length(value) >= MAX_BLOB_NAME_CHARS or len(segments) > MAX_BLOB_NAME_SEGMENTS:
        problem = (
            f"leaves no room for a file name (blob names are accepted up to "
            f"{MAX_BLOB_NAME_CHARS} characters and {MAX_BLOB_NAME_SEGMENTS} segments)"
        )
    if problem:
        raise RouteFieldError(f"{shown(value)} {problem}; {expected}")
    return value


def _shown_name(value: object, problem: str) -> str | None:
    """A name F&O shows (an entity, a data project), stripped; None stays None."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or has_control_character(value):
        raise RouteFieldError(f"{shown(value)} {problem}")
    return value.strip()


def _parse_entity(value: object) -> str | None:
    return _shown_name(
        value,
        "is not an entity name; expected the data entity as the job's data project shows it, "
        "e.g. CustomersV3, or omit it for a data package job",
    )


def _parse_company(value: object) -> str | None:
    if value is None:
        return None
    problem = company_problem(value) if isinstance(value, str) else None
    if not isinstance(value, str) or problem:
        raise RouteFieldError(problem or f"{shown(value)} is not a legal entity id")
    return value


def _parse_max_bytes(value: object) -> int | None:
    if value is None:
        return None
    hint = byte_size_form(MAX_BYTE_SIZE, '20971520 or "20MiB"')
    if not isinstance(value, str | int):
        raise RouteFieldError(f"{shown(value)} is not a size; {hint}")
    try:
        return parse_byte_size(value)
    except InvalidValueError as exc:
        raise RouteFieldError(f"{exc}; {hint}") from None


def _parse_extensions(value: object) -> tuple[str, ...]:
    expected = EXTENSIONS_FORM
    if not isinstance(value, list | tuple):
        raise RouteFieldError(f"{shown(value)} is not a list; {expected}")
    bad = [item for item in value if not is_file_suffix(item)]
    if bad:
        raise RouteFieldError(f"{shown(bad)} are not file suffixes; {expected}")
    return tuple(dict.fromkeys(item.lower() for item in value))


def _parse_api(value: object) -> str:
    if not isinstance(value, str) or value.strip().lower() not in (API_ENQUEUE, API_PACKAGE):
        raise RouteFieldError(f'{shown(value)} is not an API; expected "enqueue" or "package"')
    return value.strip().lower()


def _parse_definition_group(value: object) -> str | None:
    return _shown_name(
        value,
        "is not a data project name; expected the project's name as Data management shows "
        "it, e.g. CustomersPackage",
    )


def _parse_template(value: object) -> str | None:
    if value is None:
        return None
    container, _, path = value.partition("/") if isinstance(value, str) else ("", "", "")
    if (
        not is_container_name(container)
        or not path.lower().endswith(".zip")
        or has_control_character(path)
    ):
        raise RouteFieldError(
            f"{shown(value)} is not a template package; expected <container>/<path>.zip, "
            "e.g. d365-templates/customers.zip"
        )
    return value


def _parse_on_too_large(value: object) -> str | None:
    if value is None:
        return None
    if value != API_PACKAGE:
        raise RouteFieldError(f'{shown(value)} is not a fallback; expected "package" or omit it')
    return value


def _parse_order(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in (ORDER_UPLOAD, ORDER_FINAL):
        raise RouteFieldError(
            f'{shown(value)} is not an order; expected "upload" (the next file is sent once '
            'the one before was enqueued) or "final" (once the one before reached a final '
            "state), or omit it to send files in parallel"
        )
    return value.strip().lower()


def _parse_on_failure(value: object) -> str:
    if not isinstance(value, str) or value.strip().lower() not in (
        ON_FAILURE_STOP,
        ON_FAILURE_CONTINUE,
    ):
        raise RouteFieldError(
            f'{shown(value)} is not a failure rule; expected "stop" (the line waits for an '
            'operator) or "continue" (the next file goes on)'
        )
    return value.strip().lower()


FIELD_PARSERS = {
    "name": parse_name,
    "prefix": _parse_prefix,
    "activity_id": parse_activity_id,
    "entity": _parse_entity,
    "company": _parse_company,
    "max_bytes": _parse_max_bytes,
    "extensions": _parse_extensions,
    "enabled": parse_bool,
    "api": _parse_api,
    "definition_group": _parse_definition_group,
    "overwrite": parse_bool,
    "execute": parse_bool,
    "template": _parse_template,
    "on_too_large": _parse_on_too_large,
    "order": _parse_order,
    "on_failure": _parse_on_failure,
}
REQUIRED = ("name", "prefix")


def parse_fields(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Parse and normalise every key; return the values and (key, problem) pairs."""
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key, value in raw.items():
        try:
            values[key] = FIELD_PARSERS[key](value)
        except RouteFieldError as exc:
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
    if values.get("on_failure") == ON_FAILURE_CONTINUE and values.get("order") is None:
        problems.append(
            ("on_failure", 'is for ordered routes; set "order": "upload" or "final", or remove it')
        )
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


def takes_only_packages(values: Mapping[str, Any]) -> bool:
    """A data package job (no entity), or the package API with no template to wrap a plain
    file in: only ``.zip`` packages, refused otherwise before anything reaches F&O."""
    if values.get("template") is not None:
        return False
    return values.get("entity") is None or values.get("api", API_ENQUEUE) == API_PACKAGE
