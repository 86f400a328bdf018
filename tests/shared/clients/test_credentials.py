"""The F&O credential: real tokens from the D365 emulator's Entra endpoint over loopback HTTPS."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
import trustme
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientSecretCredential, ManagedIdentityCredential
from cryptography.hazmat.primitives import serialization

from devtools.d365_emulator import App, Emulator
from shared.clients import credentials
from shared.clients.credentials import is_microsoft_authority
from shared.clients.d365 import D365Client, D365CredentialError
from shared.config import D365Settings, Settings
from shared.context import d365_credential
from tests import fakes

REPO_ROOT = Path(__file__).resolve().parents[3]
CERT_CLIENT = "00000000-0000-0000-0000-0000000000c9"
CERT_PASSWORD = "fake-key-password"
# azure-identity signs client assertions with RS256: the app certificate needs an RSA key.
_APP_CERT = trustme.CA(organization_name="fake app certificates").issue_cert(
    "fake-app", key_type=trustme.KeyType.RSA
)


@pytest.fixture(scope="module")
def certificate_tenant() -> Iterator[Emulator]:
    """A second emulator whose tenant knows an app that signs in with a certificate."""
    app = App(client_id=CERT_CLIENT, certificate_pem=_APP_CERT.cert_chain_pems[0].bytes())
    with Emulator(jobs=[], apps=[app], tenant_id=fakes.TENANT_ID) as emulator:
        yield emulator


@pytest.fixture
def trust_certificate_tenant(
    certificate_tenant: Emulator, monkeypatch: pytest.MonkeyPatch
) -> Emulator:
    """Trust the certificate tenant's own throwaway CA for one test."""
    assert certificate_tenant.ca_bundle is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificate_tenant.ca_bundle)
    return certificate_tenant


def _d365(emulator: Emulator, **identity: str | None) -> D365Settings:
    return D365Settings(
        base_url=emulator.base_url,
        authority_host=emulator.authority_host,
        tenant_id=fakes.TENANT_ID,
        **identity,  # type: ignore[arg-type]
    )


def _claims(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


def test_client_secret_gets_a_token_for_the_environment(
    d365: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _d365(d365, client_id=fakes.CLIENT_ID, client_secret=fakes.CLIENT_SECRET)
    caplog.set_level(logging.DEBUG)
    credential = d365_credential(settings)
    assert isinstance(credential, ClientSecretCredential)
    claims = _claims(credential.get_token(settings.scope).token)
    assert claims["aud"] == d365.base_url
    assert claims["tid"] == fakes.TENANT_ID
    assert claims["appid"] == fakes.CLIENT_ID
    assert fakes.CLIENT_SECRET not in caplog.text
    assert f"D365 credential: mode=client_secret client_id={fakes.CLIENT_ID}" in caplog.text


def _certificate_file(tmp_path: Path, password: bytes | None) -> Path:
    key = serialization.load_pem_private_key(_APP_CERT.private_key_pem.bytes(), password=None)
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    path = tmp_path / "app.pem"
    path.write_bytes(key_pem + _APP_CERT.cert_chain_pems[0].bytes())
    return path


@pytest.mark.parametrize("password", [None, CERT_PASSWORD])
def test_client_certificate_gets_a_token(
    trust_certificate_tenant: Emulator, tmp_path: Path, password: str | None
) -> None:
    path = _certificate_file(tmp_path, password.encode() if password else None)
    d365 = _d365(
        trust_certificate_tenant,
        client_id=CERT_CLIENT,
        client_certificate_path=str(path),
        client_certificate_password=password,
    )
    credential = d365_credential(d365)
    assert isinstance(credential, CertificateCredential)
    claims = _claims(credential.get_token(d365.scope).token)
    assert (claims["aud"], claims["appid"]) == (trust_certificate_tenant.base_url, CERT_CLIENT)


def test_wrong_secret_is_refused_without_echoing_it(d365: Emulator) -> None:
    wrong = "wrong-secret-value-123"
    settings = _d365(d365, client_id=fakes.CLIENT_ID, client_secret=wrong)
    with pytest.raises(ClientAuthenticationError) as caught:
        d365_credential(settings).get_token(settings.scope)
    assert "AADSTS7000215: Invalid client secret provided" in str(caught.value)
    assert wrong not in str(caught.value)


def test_settings_from_the_local_example_get_a_token(d365: Emulator) -> None:
    example = json.loads((REPO_ROOT / "local.settings.example.json").read_text(encoding="utf-8"))
    values = {
        **example["Values"],
        "D365_BASE_URL": d365.base_url,
        "D365_AUTHORITY_HOST": d365.authority_host,
    }
    settings = Settings.from_env(values)
    token = d365_credential(settings).get_token(settings.d365.scope).token
    assert _claims(token)["aud"] == d365.base_url


def _hung_token_request(d365: Emulator, settings: D365Settings) -> tuple[BaseException, float]:
    """The error an F&O call meets while the token endpoint hangs for 120 s, and the wait."""
    d365.knobs.token_delay_seconds = 120
    outcome: list[BaseException | str] = []

    def ask() -> None:
        with D365Client(d365.base_url, d365_credential(settings)) as client:
            try:
                client.get_message_status(fakes.CUSTOMERS_ACTIVITY_ID)
                outcome.append("answered")
            except Exception as exc:
                outcome.append(exc)

    started = time.monotonic()
    caller = threading.Thread(target=ask, daemon=True)
    caller.start()
    caller.join(timeout=40)
    waited = time.monotonic() - started
    d365.knobs.token_delay_seconds = 0  # lets a hung request (the bug) end

    assert not caller.is_alive(), "the token request was still waiting after 40 s"
    [error] = outcome
    assert isinstance(error, D365CredentialError)
    return error, waited


def test_a_hung_token_endpoint_fails_within_the_read_timeout(d365: Emulator) -> None:
    """Finding 14: the credential's token request is bounded like every F&O call
    (D365_HTTP_TIMEOUT), not by azure-core's 300 s default."""
    settings = replace(
        _d365(d365, client_id=fakes.CLIENT_ID, client_secret=fakes.CLIENT_SECRET),
        http_timeout=timedelta(seconds=2),
    )
    error, waited = _hung_token_request(d365, settings)
    assert "could not get a token for scope" in str(error)
    assert "timed out" in str(error).lower()
    assert waited < 25  # four tries of 2 s and their back-off


def test_a_token_request_waits_less_than_a_long_d365_http_timeout(
    d365: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """D365_HTTP_TIMEOUT is sized for F&O reading a large upload (300 s by default): a token
    request waits at most TOKEN_READ_TIMEOUT between bytes (2 s here, to keep the test short)."""
    monkeypatch.setattr(credentials, "TOKEN_READ_TIMEOUT", 2.0)
    settings = _d365(d365, client_id=fakes.CLIENT_ID, client_secret=fakes.CLIENT_SECRET)
    assert settings.http_timeout >= timedelta(seconds=120)
    error, waited = _hung_token_request(d365, settings)
    assert "timed out" in str(error).lower()
    assert waited < 25


def test_missing_certificate_file_fails_at_construction(tmp_path: Path) -> None:
    d365 = D365Settings(
        base_url="https://fno.localhost",
        authority_host="https://fno.localhost",
        tenant_id=fakes.TENANT_ID,
        client_id=CERT_CLIENT,
        client_certificate_path=str(tmp_path / "missing.pem"),
    )
    with pytest.raises(OSError, match=r"missing\.pem"):
        d365_credential(d365)


def test_secret_without_tenant_is_refused_before_any_request() -> None:
    d365 = D365Settings(
        base_url="https://fno.localhost",
        client_id=fakes.CLIENT_ID,
        client_secret=fakes.CLIENT_SECRET,
    )
    with pytest.raises(
        ValueError, match="D365_TENANT_ID and D365_CLIENT_ID are required"
    ) as caught:
        d365_credential(d365)
    assert fakes.CLIENT_SECRET not in str(caught.value)


@pytest.mark.parametrize("client_id", [None, "cccccccc-0000-4000-8000-000000000001"])
def test_managed_identity_without_secret_or_certificate(client_id: str | None) -> None:
    d365 = D365Settings(base_url="https://fno.localhost", managed_identity_client_id=client_id)
    assert isinstance(d365_credential(d365), ManagedIdentityCredential)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("https://login.microsoftonline.com", True),
        ("https://login.microsoftonline.com/", True),
        ("login.microsoftonline.us", True),
        ("https://login.chinacloudapi.cn", True),
        ("https://login.partner.microsoftonline.cn", True),
        ("https://127.0.0.1:8443", False),
        ("https://fno.localhost", False),
        ("https://login.microsoftonline.com.evil.example", False),
    ],
)
def test_microsoft_authority_hosts(host: str, expected: bool) -> None:
    assert is_microsoft_authority(host) is expected
