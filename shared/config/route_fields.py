"""Validators of the route fields that import routes share with export routes.

Each ``parse_*`` takes a value of a parsed JSON object and returns it normalised, or raises
:class:`RouteFieldError` saying what is wrong; the caller labels it with the route and key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from shared.config.parsers import EXAMPLE_GUID, InvalidValueError, parse_guid, shown
from shared.errors import AppError

__all__ = [
    "RouteConfigError",
    "RouteFieldError",
    "company_problem",
    "has_control_character",
    "is_file_suffix",
    "key_problems",
    "parse_activity_id",
    "parse_bool",
    "parse_name",
    "read_fields",
]

# \Z, not $: $ also matches before a final newline, which a JSON string may end with.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
# F&O legal entity ids (DataAreaId) are at most 4 characters; RIS flags longer ones.
_COMPANY = re.compile(r"^[A-Za-z0-9]{1,4}\Z")
_FILE_SUFFIX = re.compile(r"^\.[A-Za-z0-9][A-Za-z0-9._-]{0,31}\Z")
# C0 and C1 control characters, which Azure does not allow in blob names (0x00-0x1F, \u0081).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class RouteConfigError(AppError, ValueError):
    """One or more routes are invalid; ``problems`` lists each, naming route and key."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class RouteFieldError(ValueError):
    """One field's problem, before it is labelled with its route and key."""


def has_control_character(text: str) -> bool:
    """True when ``text`` holds a C0 or C1 control character (Azure refuses them in names)."""
    return _CONTROL.search(text) is not None


def is_file_suffix(value: object) -> bool:
    """True for a file suffix such as ``.xml``: a dot, then 1-32 letters, digits, ``._-``."""
    return isinstance(value, str) and _FILE_SUFFIX.match(value) is not None


def company_problem(company: str) -> str | None:
    """What is wrong with a legal entity id (1-4 letters or digits), or None."""
    if _COMPANY.match(company):
        return None
    return (
        f"{shown(company)} is not a legal entity id; expected 1-4 letters or digits "
        "(the company's DataAreaId, e.g. USMF)"
    )


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


def read_fields(
    raw: object,
    label: str,
    parsers: Mapping[str, Callable[[object], Any]],
    required: Iterable[str],
) -> tuple[dict[str, Any], list[str]]:
    """The parsed values of one JSON object of a route list, with every problem found
    (unknown and missing keys, values the parsers refused), each prefixed with ``label``.

    :raises RouteConfigError: ``raw`` is not an object at all.
    """
    problems = key_problems(raw, label, parsers, required)
    assert isinstance(raw, Mapping)  # key_problems raised otherwise
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in parsers:
            try:
                values[key] = parsers[key](value)
            except RouteFieldError as exc:
                problems.append(f"{label}.{key}: {exc}")
    return values, problems


def parse_name(value: object) -> str:
    """A route's name: 1-64 letters, digits, ``-`` or ``_``."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise RouteFieldError(
            f"{shown(value)} is not a simple name; expected 1-64 letters, digits, '-' or '_', "
            "e.g. customers"
        )
    return value


def parse_activity_id(value: object, *, nullable: bool = True) -> str | None:
    """A recurring data job's ID as a bare lower-case GUID.

    :keyword nullable: None stays None (an import route may name no job); when False, None
        is refused like any other value that is not a GUID.
    """
    if value is None and nullable:
        return None
    hint = (
        "expected the recurring data job's activity ID from Data management > Manage scheduled "
        f"data jobs, e.g. {EXAMPLE_GUID}"
    )
    try:
        return parse_guid(value)
    except InvalidValueError as exc:
        raise RouteFieldError(f"{exc}; {hint}") from None


def parse_bool(value: object) -> bool:
    """A JSON ``true`` or ``false``."""
    if not isinstance(value, bool):
        raise RouteFieldError(f"{shown(value)} is not true or false")
    return value
