"""Hostile principal headers (Hypothesis): whatever arrives as ``X-MS-CLIENT-PRINCIPAL*``, the
reader answers a principal whose actor has a GUID object id, nobody, or a PrincipalError that
says what is wrong without repeating a claim's value; never another exception."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from devtools.local_host import IDENTITIES, principal_headers
from shared.tracking import ActorKind
from shared.views.signin import ROUTES, PrincipalError, Role, admit, read_principal
from tests.hostile import DEEP_JSON, HOSTILE, JSON_VALUES, TEXTS, shown_in, weighted
from tests.shared.views.signin.test_principal import OID, ROLE_URI, USER_OID

GUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
ENTRA = {"HTTP_AUTH": "entra", "WEBSITE_AUTH_ENABLED": "True"}
OPERATOR = next(identity for identity in IDENTITIES if Role.OPERATOR in identity.roles)
_CLAIM_TYPES = st.sampled_from(
    [OID, "oid", "name", "preferred_username", "upn", "appid", "azp", "idtyp", "roles", ROLE_URI]
)
_VALUES = weighted(
    (
        1,
        st.sampled_from(
            [USER_OID, f" {USER_OID} ", USER_OID.upper(), "app", *(r.value for r in Role)]
        ),
    ),
    (2, TEXTS),
    (1, JSON_VALUES),
)
_TYPED = st.fixed_dictionaries({"typ": weighted((2, _CLAIM_TYPES), (1, TEXTS)), "val": _VALUES})
_CLAIM = weighted((3, _TYPED), (1, JSON_VALUES))
_LISTED = st.builds(
    lambda oid, rest: [{"typ": OID, "val": oid}, *rest] if oid else rest,
    weighted((2, st.just(USER_OID)), (1, st.none()), (1, TEXTS)),
    st.lists(_CLAIM, max_size=8),
)
"""Claims, most often with a good object id first, so the rest of them are read too."""
_SHAPED = st.fixed_dictionaries(
    {
        "auth_typ": weighted((2, st.just("aad")), (1, st.just("AAD")), (1, JSON_VALUES)),
        "claims": weighted((3, _LISTED), (1, JSON_VALUES)),
    },
    optional={"name_typ": _CLAIM_TYPES | JSON_VALUES, "role_typ": _CLAIM_TYPES | JSON_VALUES},
)
"""Principal documents of the documented shape with hostile fields."""


def _encode(document: Any, ascii_only: bool) -> str:
    # Lone surrogates survive as invalid UTF-8, as a hostile sender could write them.
    text = json.dumps(document, ensure_ascii=ascii_only)
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()


_SHAPED_ENCODED = st.builds(_encode, _SHAPED, st.sampled_from([True, True, True, False]))
ENCODED = weighted(
    (6, _SHAPED_ENCODED),
    (1, st.builds(_encode, JSON_VALUES, st.booleans())),
    (1, st.binary(max_size=300).map(lambda raw: base64.b64encode(raw).decode())),
    (1, DEEP_JSON.map(lambda text: base64.b64encode(text.encode()).decode())),
    (1, TEXTS),
)
"""Values of ``X-MS-CLIENT-PRINCIPAL``: mostly base64 JSON of its shape, else anything."""
_OTHER_HEADERS = {
    "x-ms-client-principal-id": st.just(USER_OID) | TEXTS,
    "X-MS-CLIENT-PRINCIPAL-NAME": TEXTS,
    "X-MS-CLIENT-PRINCIPAL-IDP": st.sampled_from(["aad", "AAD"]) | TEXTS,
}
WITH_PRINCIPAL = st.fixed_dictionaries({"X-MS-CLIENT-PRINCIPAL": ENCODED}, optional=_OTHER_HEADERS)
HEADERS = WITH_PRINCIPAL | st.fixed_dictionaries({}, optional=_OTHER_HEADERS)


def _claim_values(headers: dict[str, str]) -> list[str]:
    """The claims' values of the principal in ``headers``, as far as it decodes."""
    try:
        raw = base64.b64decode(headers["X-MS-CLIENT-PRINCIPAL"].strip(), validate=True)
        claims = json.loads(raw.decode("utf-8", "surrogatepass"))["claims"]
        return [c["val"] for c in claims if isinstance(c["val"], str)]
    except (KeyError, TypeError, ValueError, RecursionError):
        return []


@HOSTILE
@given(headers=WITH_PRINCIPAL)
@example(headers={"X-MS-CLIENT-PRINCIPAL": base64.b64encode(b"[" * 100_000).decode()})
@example(
    headers={
        "X-MS-CLIENT-PRINCIPAL": _encode(
            {"auth_typ": "aad", "claims": [{"typ": "oid", "val": USER_OID}]}, True
        ),
        "X-MS-CLIENT-PRINCIPAL-NAME": "  ",
    }
)
def test_hostile_headers_give_a_guid_actor_nobody_or_a_principal_error(
    headers: dict[str, str],
) -> None:
    try:
        principal = read_principal(headers)
    except PrincipalError as exc:
        message = str(exc)
        assert message.strip()
        leaked = [v for v in _claim_values(headers) if len(v.strip()) >= 8 and shown_in(v, message)]
        assert not leaked, f"{message!r} repeats a claim's value"
        return
    if principal is None:
        assert not any(name.lower().startswith("x-ms-client-principal") for name in headers)
        return
    actor = principal.actor
    assert GUID.fullmatch(actor.object_id), actor
    assert actor.kind in (ActorKind.USER, ActorKind.APPLICATION)
    assert actor.provider == "aad"
    assert isinstance(actor.name, str) and actor.name.strip(), actor
    assert principal.roles <= set(Role)


@HOSTILE
@given(headers=HEADERS, function=st.sampled_from(sorted(ROUTES)))
def test_hostile_headers_in_entra_mode_are_admitted_or_refused_with_401_or_403(
    headers: dict[str, str], function: str
) -> None:
    admission = admit(function, headers, ENTRA)

    if admission.refusal is None:
        assert admission.actor is None or GUID.fullmatch(admission.actor.object_id)
        return
    assert admission.refusal.status in (401, 403)
    assert admission.refusal.body["error"].strip()
    assert admission.actor is None


_SITES = st.sampled_from(["https://func.azurewebsites.net", "http://[::1", "http://[", "null"])
BROWSER = st.fixed_dictionaries(
    {},
    optional={
        "Origin": weighted((1, _SITES), (1, TEXTS)),
        "Sec-Fetch-Site": weighted(
            (1, st.sampled_from(["same-origin", "none", "cross-site"])), (1, TEXTS)
        ),
        "Host": weighted((1, st.just("func.azurewebsites.net")), (1, TEXTS)),
        "X-Forwarded-Host": TEXTS,
    },
)
"""What a browser, or a program posing as one, says about the page a request came from."""


@HOSTILE
@given(browser=BROWSER, function=st.sampled_from(["resubmit", "release"]))
@example(browser={"Origin": "http://[::1"}, function="resubmit")
def test_an_operators_write_with_hostile_browser_headers_is_admitted_or_a_403(
    browser: dict[str, str], function: str
) -> None:
    admission = admit(function, {**principal_headers(OPERATOR), **browser}, ENTRA)

    assert admission.refusal is None or admission.refusal.status == 403, admission.refusal
