"""ASP.NET-style route templates of HTTP triggers (``items/{id?}``, ``{*rest}``) as regexes."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ROUTE_PARAMETER = re.compile(r"\{(\*{0,2})([A-Za-z_]\w*)(?::[^{}?=]*)?(\?)?\}")


@dataclass(frozen=True)
class CompiledRoute:
    """A route template ready to match request paths (``/`` + the part after ``/api``)."""

    pattern: re.Pattern[str]
    parameters: dict[str, str]  # regex group -> route parameter name
    literal_segments: int  # more literal segments win when two routes match


def compile_route(route: str) -> CompiledRoute:
    """A case-insensitive regex for ``route``; constraints (``{id:int}``) are ignored."""
    regex: list[str] = []
    parameters: dict[str, str] = {}
    literal_segments = 0
    for segment in route.split("/") if route else []:
        whole = _ROUTE_PARAMETER.fullmatch(segment)
        if whole and (whole.group(1) or whole.group(3)):
            group = f"p{len(parameters)}"
            parameters[group] = whole.group(2)
            value = ".*" if whole.group(1) else "[^/]+"
            regex.append(f"(?:/(?P<{group}>{value}))?")
            continue
        pieces: list[str] = []
        position = 0
        for match in _ROUTE_PARAMETER.finditer(segment):
            group = f"p{len(parameters)}"
            parameters[group] = match.group(2)
            pieces += [re.escape(segment[position : match.start()]), f"(?P<{group}>[^/]+)"]
            position = match.end()
        pieces.append(re.escape(segment[position:]))
        literal_segments += position == 0
        regex.append("/" + "".join(pieces))
    pattern = re.compile("".join(regex) + "/?", re.IGNORECASE)
    return CompiledRoute(pattern, parameters, literal_segments)
