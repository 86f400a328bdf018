"""One import route: a recurring data job fed from a folder of the inbound container.

The keys of a route are described in :mod:`shared.config.routes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from shared.config.import_fields import (
    API_ENQUEUE,
    API_PACKAGE,
    COMPANY_PLACEHOLDER,
    EXTENSIONS_FORM,
    FIELD_PARSERS,
    ON_FAILURE_STOP,
    PACKAGE_EXTENSIONS,
    REQUIRED,
    parse_fields,
    takes_only_packages,
)
from shared.config.route_fields import RouteConfigError, key_problems

__all__ = ["ImportRoute"]


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
    order: str | None = None
    """``"upload"`` or ``"final"``: the route's files go one at a time per company (see
    :mod:`shared.flows.line`); None: in parallel."""
    on_failure: str = ON_FAILURE_STOP
    """What an ordered line does when a file fails: ``"stop"`` or ``"continue"``."""
    folders: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The prefix's folders, ``{company}`` as written."""

    def __post_init__(self) -> None:
        raw = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        values, problems = parse_fields(raw)
        if problems:
            raise RouteConfigError([f"route {self.name!r}.{key}: {text}" for key, text in problems])
        if takes_only_packages(values) and not values["extensions"]:
            values["extensions"] = PACKAGE_EXTENSIONS
        for key, value in values.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "folders", tuple(self.prefix.split("/")[:-1]))

    @classmethod
    def from_dict(cls, raw: object, *, label: str = "route") -> ImportRoute:
        """Build a route from one parsed JSON object; ``label`` prefixes each problem.

        :raises RouteConfigError: every problem of this route, e.g.
            ``D365_ROUTES[1].activity_id: 'abc' is not a GUID; expected ...``.
        """
        package = isinstance(raw, Mapping) and raw.get("api") == API_PACKAGE
        required = REQUIRED if package else (*REQUIRED, "activity_id")
        problems = key_problems(raw, label, FIELD_PARSERS, required)
        assert isinstance(raw, Mapping)  # key_problems raised otherwise
        if raw.get("extensions") == []:
            problems.append(
                f"{label}.extensions: is an empty list, which would allow no file; "
                f"{EXTENSIONS_FORM}, or omit it to allow any"
            )
        known = {key: value for key, value in raw.items() if key in FIELD_PARSERS}
        values, field_problems = parse_fields(known)
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
        return COMPANY_PLACEHOLDER in self.folders

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
            "order": self.order,
            "on_failure": self.on_failure,
        }

    def matches(self, segments: Sequence[str]) -> bool:
        """True when a path's folders start with this prefix and a file name follows."""
        if len(segments) <= len(self.folders):
            return False
        return all(
            mine in (COMPANY_PLACEHOLDER, theirs)
            for mine, theirs in zip(self.folders, segments, strict=False)
        )

    def company_for(self, segments: Sequence[str]) -> str | None:
        """The ``{company}`` segment of a matching path, else the fixed company (or None)."""
        if self.takes_company_from_path:
            return segments[self.folders.index(COMPANY_PLACEHOLDER)]
        return self.company

    def specificity(self) -> tuple[int, int]:
        """How specific the prefix is: its folders, then its literal ones (more is more)."""
        literal = sum(1 for s in self.folders if s != COMPANY_PLACEHOLDER)
        return len(self.folders), literal
