"""A Microsoft Entra ID stand-in: OIDC discovery, the client-credentials token endpoint, and
validation of the RS256 tokens it issues."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from ._models import App
from ._replies import Reply, json_reply

_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class TokenError(Exception):
    """A bearer token F&O would refuse; the text says why (never the token itself)."""


@dataclass(frozen=True)
class TokenClaims:
    """The claims of a valid token that the F&O side needs."""

    client_id: str
    tenant_id: str
    object_id: str


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return jwt.utils.base64url_encode(raw).decode()


class Entra:
    """Issues and checks tokens for one tenant and its registered apps."""

    def __init__(self, tenant_id: str, apps: Iterable[App]) -> None:
        self.tenant_id = tenant_id
        self._apps = {app.client_id.lower(): app for app in apps}
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = self._key.public_key().public_numbers()
        self._kid = hashlib.sha256(str(public.n).encode()).hexdigest()[:27]
        self._jwk = {
            "kty": "RSA",
            "use": "sig",
            "kid": self._kid,
            "alg": "RS256",
            "n": _b64url_uint(public.n),
            "e": _b64url_uint(public.e),
        }

    # -- documents --------------------------------------------------------------------------

    def openid_configuration(self, tenant: str, host: str, version: str) -> Reply:
        """The OIDC discovery document MSAL reads before asking for a token."""
        if not self._known_tenant(tenant):
            return _tenant_not_found(tenant)
        prefix = f"{host}/{tenant}"
        v2 = version == "v2.0"
        suffix = "/v2.0" if v2 else ""
        document = {
            "issuer": self.issuer(host),
            "authorization_endpoint": f"{prefix}/oauth2{suffix}/authorize",
            "token_endpoint": f"{prefix}/oauth2{suffix}/token",
            "device_authorization_endpoint": f"{prefix}/oauth2{suffix}/devicecode",
            "jwks_uri": f"{prefix}/discovery{suffix}/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "tenant_region_scope": "WW",
            "cloud_instance_name": "fno.localhost",
        }
        return json_reply(200, document)

    def keys(self, tenant: str) -> Reply:
        """The JWKS with the signing key."""
        if not self._known_tenant(tenant):
            return _tenant_not_found(tenant)
        return json_reply(200, {"keys": [self._jwk]})

    def issuer(self, host: str) -> str:
        """The `iss` claim of issued tokens."""
        return f"{host}/{self.tenant_id}/v2.0"

    # -- token endpoint ---------------------------------------------------------------------

    def token(
        self, tenant: str, form: Mapping[str, str], *, host: str, endpoint: str, lifetime: int
    ) -> Reply:
        """Answer a client-credentials request (v2.0 `scope` or v1 `resource`)."""
        if not self._known_tenant(tenant):
            return _tenant_not_found(tenant)
        if form.get("grant_type") != "client_credentials":
            return _aad_error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{form.get('grant_type', '')}'.",
            )
        client_id = form.get("client_id", "")
        app = self._apps.get(client_id.lower())
        if app is None:
            return _aad_error(
                401,
                "invalid_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the "
                f"directory '{self.tenant_id}'. This can happen if the application "
                "has not been installed by the administrator of the tenant.",
            )
        refusal = self._check_client_credential(app, form, endpoint)
        if refusal is not None:
            return refusal
        audience = _audience(form)
        if isinstance(audience, Reply):
            return audience
        token = self.issue_token(app.client_id, audience, host=host, lifetime=lifetime)
        return json_reply(
            200,
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            },
        )

    def issue_token(
        self, client_id: str, audience: str, *, host: str, lifetime: int, key: Any = None
    ) -> str:
        """An RS256 access token as Entra would issue it for F&O (`key` overrides the signer)."""
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": self.issuer(host),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "tid": self.tenant_id,
            "appid": client_id,
            "azp": client_id,
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"oid:{client_id.lower()}")),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sub:{client_id.lower()}")),
            "idtyp": "app",
            "ver": "2.0",
            "uti": secrets.token_urlsafe(16),
        }
        return jwt.encode(claims, key or self._key, algorithm="RS256", headers={"kid": self._kid})

    def _check_client_credential(
        self, app: App, form: Mapping[str, str], endpoint: str
    ) -> Reply | None:
        if form.get("client_assertion_type") == _ASSERTION_TYPE:
            return self._check_assertion(app, form.get("client_assertion", ""), endpoint)
        secret = form.get("client_secret")
        if (
            app.client_secret is not None
            and secret is not None
            and secrets.compare_digest(secret.encode(), app.client_secret.encode())
        ):
            return None
        return _aad_error(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the "
            "request is the client secret value, not the client secret ID, for a "
            f"secret added to app '{app.client_id}'.",
        )

    def _check_assertion(self, app: App, assertion: str, endpoint: str) -> Reply | None:
        if app.certificate_pem is None:
            return _aad_error(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation: the application "
                f"'{app.client_id}' has no certificate credential.",
            )
        public_key = x509.load_pem_x509_certificate(app.certificate_pem).public_key()
        try:
            jwt.decode(
                assertion,
                public_key,
                algorithms=["RS256", "PS256"],
                audience=endpoint,
                issuer=app.client_id,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.PyJWTError as exc:
            return _aad_error(
                401,
                "invalid_client",
                700027,
                f"Client assertion failed signature validation. ({exc})",
            )
        return None

    # -- validation on the F&O side ---------------------------------------------------------

    def validate(self, token: str, audience: str) -> TokenClaims:
        """Check a bearer token as F&O does.

        :raises TokenError: bad signature, expired, wrong audience or tenant, no `oid`.
        """
        try:
            claims = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["RS256"],
                options={"verify_aud": False, "require": ["exp", "nbf", "aud", "tid"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("the bearer token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenError("the bearer token is not valid yet (nbf)") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenError("the bearer token signature is invalid") from exc
        except jwt.PyJWTError as exc:
            raise TokenError(f"the bearer token is not valid ({exc})") from exc
        if claims["aud"] != audience:
            raise TokenError(
                f"the bearer token audience '{claims['aud']}' is not the environment URL "
                f"'{audience}' (lower case, no trailing slash)"
            )
        if claims["tid"] != self.tenant_id:
            raise TokenError(f"the bearer token was issued by tenant '{claims['tid']}'")
        if not claims.get("oid"):
            raise TokenError("the bearer token has no 'oid' claim (no service principal)")
        return TokenClaims(claims.get("appid", ""), claims["tid"], claims["oid"])

    def _known_tenant(self, tenant: str) -> bool:
        return tenant.lower() == self.tenant_id.lower()


def _aad_error(status: int, error: str, code: int, description: str) -> Reply:
    trace_id = str(uuid.uuid4())
    correlation_id = str(uuid.uuid4())
    timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    text = (
        f"AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
        f"Timestamp: {timestamp}"
    )
    payload = {
        "error": error,
        "error_description": text,
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return json_reply(status, payload)


def _audience(form: Mapping[str, str]) -> str | Reply:
    """The token audience: the v2.0 scope without `/.default`, or the v1 resource."""
    if "resource" in form and "scope" not in form:
        return form["resource"]
    scope = (form.get("scope") or "").split()
    if not scope:
        return _aad_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        )
    if not scope[0].endswith("/.default"):
        return _aad_error(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope[0]} is not valid. Client credential flows "
            "must have a scope value with /.default suffixed to the resource identifier "
            "(application ID URI).",
        )
    return scope[0].removesuffix("/.default")


def _tenant_not_found(tenant: str) -> Reply:
    return _aad_error(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct "
        "tenant ID and are signing into the correct cloud.",
    )
