"""Reading the caller from App Service's principal headers: real-shaped ones give an Actor with
its roles; malformed, oversized and forged ones are refused with the reason."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from devtools.local_host import IDENTITIES, principal_headers
from shared.tracking import Actor, ActorKind
from shared.views.signin import (
    MAX_CLAIMS,
    MAX_PRINCIPAL_CHARS,
    PrincipalError,
    Role,
    read_principal,
)

IDENTITY = {identity.key: identity for identity in IDENTITIES}
ROLE_URI = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
USER_OID = "0d6a1c0e-5f4b-4c3e-9e2a-1b7f3c5d8a01"

# As App Service sends it for a person signed in with Entra ID (v2 tokens, default mapping).
REAL_USER = {
    "auth_typ": "aad",
    "claims": [
        {"typ": "aud", "val": "3f1c0de2-6a58-4d0a-9a53-0c8c5d1f2b7e"},
        {"typ": "iss", "val": "https://login.microsoftonline.com/72f9/v2.0"},
        {"typ": "iat", "val": "1765000000"},
        {"typ": "name", "val": "Jane Doe"},
        {"typ": OID, "val": USER_OID},
        {"typ": "preferred_username", "val": "jane@contoso.com"},
        {"typ": "roles", "val": "Integration.Reader"},
        {"typ": "http://schemas.microsoft.com/identity/claims/tenantid", "val": "72f9"},
        {"typ": "ver", "val": "2.0"},
    ],
    "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "role_typ": ROLE_URI,
}


def encoded(document: Any) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def headers(document: Any, **extra: str) -> dict[str, str]:
    return {"X-MS-CLIENT-PRINCIPAL": encoded(document), "X-MS-CLIENT-PRINCIPAL-IDP": "aad", **extra}


def with_claims(*claims: dict[str, Any], base: dict[str, Any] = REAL_USER) -> dict[str, Any]:
    return {**base, "claims": [*base["claims"], *claims]}


def test_a_real_shaped_user_principal_gives_the_user_and_their_roles() -> None:
    principal = read_principal(headers(REAL_USER, **{"x-ms-client-principal-id": USER_OID}))

    assert principal is not None
    assert principal.actor == Actor(ActorKind.USER, "Jane Doe", USER_OID, "aad")
    assert principal.roles == {Role.READER}


def test_a_managed_identitys_app_token_is_an_application_with_its_app_role() -> None:
    principal = read_principal(principal_headers(IDENTITY["logic-app"]))

    assert principal is not None
    assert principal.actor.kind is ActorKind.APPLICATION
    assert principal.actor.name == IDENTITY["logic-app"].name  # the program's client id
    assert principal.actor.object_id == IDENTITY["logic-app"].object_id
    assert principal.roles == {Role.OPERATOR}


def test_a_principal_without_any_name_claim_is_taken_for_a_program() -> None:
    document = {
        **REAL_USER,
        "claims": [{"typ": "oid", "val": USER_OID}, {"typ": "appid", "val": "app-1"}],
    }

    principal = read_principal(headers(document))

    assert principal is not None
    assert (principal.actor.kind, principal.actor.name) == (ActorKind.APPLICATION, "app-1")


@pytest.mark.parametrize("name_header", ["", "  ", "\t"])
def test_a_program_with_a_blank_name_header_is_named_by_its_object_id(name_header: str) -> None:
    # Found by test_principal_hostile.py: a blank header once gave an actor without a name.
    document = {**REAL_USER, "claims": [{"typ": "oid", "val": USER_OID}]}

    principal = read_principal(headers(document, **{"X-MS-CLIENT-PRINCIPAL-NAME": name_header}))

    assert principal is not None
    assert (principal.actor.kind, principal.actor.name) == (ActorKind.APPLICATION, USER_OID)


def test_roles_are_read_under_the_role_uri_too_and_unknown_roles_are_ignored() -> None:
    document = with_claims(
        {"typ": ROLE_URI, "val": "Integration.Operator"},
        {"typ": "roles", "val": "Integration.Admin"},
        {"typ": "groups", "val": "Integration.Operator"},  # a group id is not a role
    )

    principal = read_principal(headers(document))

    assert principal is not None
    assert principal.roles == {Role.READER, Role.OPERATOR}


def test_no_principal_header_is_nobody_signed_in() -> None:
    assert read_principal({"Accept": "application/json"}) is None


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ({"X-MS-CLIENT-PRINCIPAL": "%%% not base64"}, "is not base64-encoded JSON"),
        (
            {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(b"\xff\xfe").decode()},
            "not base64-encoded JSON",
        ),
        ({"X-MS-CLIENT-PRINCIPAL": base64.b64encode(b"{oops").decode()}, "not base64-encoded JSON"),
        # Nested deeper than the JSON parser recurses, within the size limit.
        ({"X-MS-CLIENT-PRINCIPAL": base64.b64encode(b"[" * 40000).decode()}, "not base64-encoded"),
        (headers([REAL_USER]), "is not a JSON object"),
        (headers({**REAL_USER, "claims": "roles"}), "claims are missing or not a list"),
        (headers({**REAL_USER, "auth_typ": 7}), "auth_typ is missing or not a string"),
        (
            headers(with_claims({"typ": "roles", "val": 10000})),
            "claim 9 has no typ and val strings",
        ),
        (headers(with_claims("roles")), "claim 9 is not an object"),
        (headers(with_claims({"typ": "roles", "val": "x" * 9000})), "claim 9 is over 8,192"),
        (headers({**REAL_USER, "claims": REAL_USER["claims"][:4]}), "no object id (oid claim)"),
        (
            headers(with_claims(base={**REAL_USER, "claims": [{"typ": "oid", "val": "me"}]})),
            "no object id (oid claim) in GUID form",
        ),
    ],
)
def test_a_malformed_principal_is_refused_saying_what_is_wrong(
    given: dict[str, str], reason: str
) -> None:
    with pytest.raises(PrincipalError, match=re.escape(reason)):
        read_principal(given)


def test_an_oversized_principal_is_refused_before_it_is_decoded() -> None:
    huge = "A" * (MAX_PRINCIPAL_CHARS + 1)

    with pytest.raises(PrincipalError, match="65,537 characters, over the 65,536"):
        read_principal({"X-MS-CLIENT-PRINCIPAL": huge})


def test_a_principal_with_too_many_claims_is_refused() -> None:
    claims = [{"typ": "c", "val": ""} for _ in range(MAX_CLAIMS + 1)]

    with pytest.raises(PrincipalError, match="1,001 claims, over the 1,000"):
        read_principal(headers({**REAL_USER, "claims": claims}))


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        # Another provider's principal: this app trusts Entra ID's only.
        (
            headers({**REAL_USER, "auth_typ": "github"}, **{"X-MS-CLIENT-PRINCIPAL-IDP": "github"}),
            "identity provider is 'github', not Entra ID",
        ),
        # Headers that are not one principal from App Service.
        (headers(REAL_USER, **{"X-MS-CLIENT-PRINCIPAL-IDP": "facebook"}), "IDP disagrees"),
        (
            {"X-MS-CLIENT-PRINCIPAL-ID": USER_OID, "X-MS-CLIENT-PRINCIPAL-NAME": "jane"},
            "x-ms-client-principal-id, x-ms-client-principal-name came without",
        ),
    ],
)
def test_a_forged_principal_is_refused(given: dict[str, str], reason: str) -> None:
    with pytest.raises(PrincipalError, match=re.escape(reason)):
        read_principal(given)


def test_a_refusal_never_repeats_a_claims_value() -> None:
    secret = "jane-secret-claim-value"
    document = with_claims({"typ": "roles", "val": secret + "x" * 9000})

    with pytest.raises(PrincipalError) as refused:
        read_principal(headers(document))

    assert secret not in str(refused.value)
