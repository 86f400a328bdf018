"""Reading a route list's JSON text within the limits a route list needs.

Both ``D365_ROUTES`` and ``EXPORT_ROUTES`` are read here: JSON nested deeper, with longer
numbers or with a key repeated in one object is refused before it can cost much.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from shared.clients.bounded_json import JsonTooDeepError, loads
from shared.config.parsers import shown
from shared.config.route_fields import RouteConfigError

__all__ = ["build_each", "load_route_json"]

_T = TypeVar("_T")
# Deeper JSON than a route list needs is refused before parsing (it could exhaust the stack).
_MAX_ROUTES_DEPTH = 10
_MAX_JSON_INT_DIGITS = 20


class _JsonLimitError(ValueError):
    """A route list holds JSON this module refuses to read (text says why)."""


def load_route_json(text: str, setting: str) -> object:
    """Parse ``text``, refusing what a route list never holds before it can cost much.

    :raises RouteConfigError: invalid JSON, or JSON beyond the limits, naming ``setting``.
    """
    try:
        return loads(
            text,
            max_depth=_MAX_ROUTES_DEPTH,
            object_pairs_hook=_unique_keys,
            parse_int=_short_int,
        )
    except JsonTooDeepError:
        problem = f"is nested deeper than {_MAX_ROUTES_DEPTH} levels"
    except _JsonLimitError as exc:
        problem = str(exc)
    except json.JSONDecodeError as exc:
        problem = f"is not valid JSON ({exc})"
    raise RouteConfigError([f"{setting}: {problem}; expected a JSON list of route objects"])


def build_each(
    items: Sequence[object], setting: str, build: Callable[..., _T]
) -> tuple[list[_T], list[str]]:
    """Build a route from each JSON item by ``build(item, label=...)``, labelled
    ``setting[index]``; return the routes built and every problem of the others."""
    routes: list[_T] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        try:
            routes.append(build(item, label=f"{setting}[{index}]"))
        except RouteConfigError as exc:
            problems.extend(exc.problems)
    return routes, problems


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # One pass with a set: counting each key's copies took minutes for an object of 100,000 keys.
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _JsonLimitError(
                f"an object repeats the key {shown(key)}, and only one would count"
            )
        seen.add(key)
    return dict(pairs)


def _short_int(digits: str) -> int:
    if len(digits.lstrip("-")) > _MAX_JSON_INT_DIGITS:
        raise _JsonLimitError(f"holds a number of more than {_MAX_JSON_INT_DIGITS} digits")
    return int(digits)
