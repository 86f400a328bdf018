"""The app roles, with the one each HTTP route needs: every route decided in one table."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["ROUTES", "Role", "RouteAccess", "route_access"]


class Role(enum.StrEnum):
    """An app role of the app registration (its ``value``, as the ``roles`` claim carries it)."""

    READER = "Integration.Reader"
    """The console's data, the lists, the details, the counts, the health check, the OpenAPI
    document, the audit trail."""
    OPERATOR = "Integration.Operator"
    """All a reader may do, and the operator actions: resubmit, release a line."""

    def grants(self, needed: Role) -> bool:
        """Whether holding this role allows what ``needed`` allows."""
        return self is needed or self is Role.OPERATOR


@dataclass(frozen=True)
class RouteAccess:
    """What a route needs: a role (None: anyone may load it, it holds no data), what the route
    does (for the text of a 403), and whether it changes anything (then a browser's request
    from another site is refused: a session cookie would ride along with it)."""

    role: Role | None
    action: str
    writes: bool = False


ROUTES: dict[str, RouteAccess] = {
    "http_status": RouteAccess(Role.READER, "read tracked files and export records"),
    "counts": RouteAccess(Role.READER, "read the counts"),
    "health": RouteAccess(Role.READER, "read the health check"),
    "openapi": RouteAccess(Role.READER, "read the OpenAPI document"),
    "audit": RouteAccess(Role.READER, "read the audit trail"),
    # The page holds no data, so it loads without a session; its script signs the person in
    # and every call it makes needs a role.
    "console": RouteAccess(None, "open the console page"),
    "resubmit": RouteAccess(Role.OPERATOR, "resubmit a file", writes=True),
    "release": RouteAccess(Role.OPERATOR, "release an ordered line", writes=True),
}
"""Every HTTP function of the app, by function name (a test checks none is missing)."""


def route_access(function: str) -> RouteAccess:
    """The access rule of HTTP function ``function``.

    :raises LookupError: a function the table does not name (a route added without its role).
    """
    try:
        return ROUTES[function]
    except KeyError:
        raise LookupError(
            f"HTTP function {function!r} has no entry in shared.views.signin's route table; "
            "add it with the role it needs"
        ) from None
