"""The caller App Service authentication signed in, read from its ``X-MS-CLIENT-PRINCIPAL*``.

The platform sets these headers on each request it authenticated, and strips them from
callers' requests while its authentication is on (Microsoft Learn, "Work with user identities
in Azure App Service authentication"). ``X-MS-CLIENT-PRINCIPAL`` is base64 JSON: ``auth_typ``,
``claims`` (``typ``, ``val``), ``name_typ``, ``role_typ``. App roles arrive as claims of type
``roles`` while ``role_typ`` names the long role URI (Azure/azure-functions-host#3898,
AzureAD/microsoft-identity-web#2166), so both are read.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.clients.bounded_json import loads
from shared.errors import AppError
from shared.tracking import Actor, ActorKind
from shared.views.signin._roles import Role

__all__ = [
    "MAX_CLAIMS",
    "MAX_PRINCIPAL_CHARS",
    "PRINCIPAL_HEADER",
    "ROLE_CLAIM_TYPES",
    "Principal",
    "PrincipalError",
    "read_principal",
]

PRINCIPAL_HEADER = "x-ms-client-principal"
_ID_HEADER = "x-ms-client-principal-id"
_NAME_HEADER = "x-ms-client-principal-name"
_IDP_HEADER = "x-ms-client-principal-idp"
MAX_PRINCIPAL_CHARS = 64 * 1024
"""A principal of 1,000 claims of 40 bytes is about 53 KB in base64: more is not Entra's."""
MAX_CLAIMS = 1000
_MAX_CLAIM_CHARS = 8192
_ENTRA = "aad"
_OBJECT_ID_TYPES = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
ROLE_CLAIM_TYPES = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
"""Where app roles are: Entra's ``roles`` claim, or the role claim type .NET maps it to."""
_ROLE_VALUES = frozenset(role.value for role in Role)
_GUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_USER_NAME_TYPES = ("name", "preferred_username", "upn")
_APP_ID_TYPES = ("appid", "azp")


class PrincipalError(AppError, ValueError):
    """The principal headers are not what App Service sends: the text says what is wrong
    (never a claim's value)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, and the app roles they hold (of :class:`Role`; others are ignored)."""

    actor: Actor
    roles: frozenset[Role]


def read_principal(headers: Mapping[str, str]) -> Principal | None:
    """The signed-in caller of a request with these headers; None when nobody is signed in.

    :raises PrincipalError: a principal that is oversized, not base64 JSON of the documented
        shape, not from Entra ID, without an object id, or whose headers disagree.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    encoded = lowered.get(PRINCIPAL_HEADER)
    if encoded is None:
        stray = sorted(h for h in (_ID_HEADER, _NAME_HEADER, _IDP_HEADER) if h in lowered)
        if stray:
            raise PrincipalError(
                f"{', '.join(stray)} came without X-MS-CLIENT-PRINCIPAL; App Service sends them "
                "together"
            )
        return None
    document = _decode(encoded)
    provider = _text(document, "auth_typ").lower()
    if provider != _ENTRA:
        raise PrincipalError(
            f"the identity provider is {provider[:40]!r}, not Entra ID ('aad'), the only one "
            "this app is configured for"
        )
    idp = lowered.get(_IDP_HEADER)
    if idp is not None and idp.strip().lower() != provider:
        raise PrincipalError(
            "X-MS-CLIENT-PRINCIPAL-IDP disagrees with the principal's auth_typ: not one "
            "principal from App Service"
        )
    claims = _claims(document)
    object_id = _first(claims, _OBJECT_ID_TYPES)
    if not object_id or not _GUID.fullmatch(object_id):
        raise PrincipalError("the principal has no object id (oid claim) in GUID form")
    role_types = {*ROLE_CLAIM_TYPES, _text(document, "role_typ", required=False)}
    roles = frozenset(Role(val) for typ, val in claims if typ in role_types and val in _ROLE_VALUES)
    return Principal(_actor(document, claims, lowered, object_id, provider), roles)


def _decode(encoded: str) -> dict[str, Any]:
    if len(encoded) > MAX_PRINCIPAL_CHARS:
        raise PrincipalError(
            f"X-MS-CLIENT-PRINCIPAL is {len(encoded):,} characters, over the "
            f"{MAX_PRINCIPAL_CHARS:,} this app reads"
        )
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
        document = loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        # JSON nested too deeply too (a ValueError): a 401 like any garbage, not a 500.
        raise PrincipalError("X-MS-CLIENT-PRINCIPAL is not base64-encoded JSON") from None
    if not isinstance(document, dict):
        raise PrincipalError("X-MS-CLIENT-PRINCIPAL is not a JSON object")
    return document


def _text(document: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = document.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        raise PrincipalError(f"the principal's {key} is missing or not a string")
    return value


def _claims(document: dict[str, Any]) -> list[tuple[str, str]]:
    claims = document.get("claims")
    if not isinstance(claims, list):
        raise PrincipalError("the principal's claims are missing or not a list")
    if len(claims) > MAX_CLAIMS:
        raise PrincipalError(
            f"the principal has {len(claims):,} claims, over the {MAX_CLAIMS:,} this app reads"
        )
    pairs = []
    for index, claim in enumerate(claims):
        if not isinstance(claim, dict):
            raise PrincipalError(f"claim {index} is not an object with typ and val")
        typ, val = claim.get("typ"), claim.get("val")
        if not isinstance(typ, str) or not isinstance(val, str):
            raise PrincipalError(f"claim {index} has no typ and val strings")
        if len(typ) > _MAX_CLAIM_CHARS or len(val) > _MAX_CLAIM_CHARS:
            raise PrincipalError(f"claim {index} is over {_MAX_CLAIM_CHARS:,} characters")
        pairs.append((typ, val))
    return pairs


def _first(claims: list[tuple[str, str]], types: tuple[str, ...]) -> str:
    for wanted in types:
        for typ, val in claims:
            if typ == wanted and val.strip():
                return val.strip()
    return ""


def _actor(
    document: dict[str, Any],
    claims: list[tuple[str, str]],
    headers: Mapping[str, str],
    object_id: str,
    provider: str,
) -> Actor:
    # An app-only token (a managed identity, a service principal) says idtyp=app when the
    # optional claim is configured; without it, it carries no name of a person.
    name_type = _text(document, "name_typ", required=False)
    person = _first(claims, (name_type, *_USER_NAME_TYPES) if name_type else _USER_NAME_TYPES)
    if _first(claims, ("idtyp",)) == "app" or not person:
        # A blank name header names nobody: the object id does then.
        name = _first(claims, _APP_ID_TYPES) or headers.get(_NAME_HEADER, "").strip() or object_id
        return Actor(ActorKind.APPLICATION, name, object_id, provider)
    return Actor(ActorKind.USER, person, object_id, provider)
