"""Who may call each HTTP route: the ``HTTP_AUTH`` mode, the caller, the app roles.

:func:`admit` decides one request (:mod:`._admission`); :func:`read_principal` reads the
caller App Service authentication signed in (:mod:`._principal`); :data:`ROUTES` is the one
table of the role each HTTP function needs (:mod:`._roles`). Pure Python: the adapter in
``http_status/`` hands in the request's headers and the app settings.
"""

from shared.views.signin._admission import LOGIN_PATH, Admission, admit
from shared.views.signin._principal import (
    MAX_CLAIMS,
    MAX_PRINCIPAL_CHARS,
    PRINCIPAL_HEADER,
    ROLE_CLAIM_TYPES,
    Principal,
    PrincipalError,
    read_principal,
)
from shared.views.signin._roles import ROUTES, Role, RouteAccess, route_access

__all__ = [
    "LOGIN_PATH",
    "MAX_CLAIMS",
    "MAX_PRINCIPAL_CHARS",
    "PRINCIPAL_HEADER",
    "ROLE_CLAIM_TYPES",
    "ROUTES",
    "Admission",
    "Principal",
    "PrincipalError",
    "Role",
    "RouteAccess",
    "admit",
    "read_principal",
    "route_access",
]
