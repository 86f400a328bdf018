"""Session fixtures that start the real parts on loopback: Azurite and the D365 emulator."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest
from azure.identity import ClientSecretCredential

from devtools.azurite import Azurite
from devtools.d365_emulator import App, Emulator, Job
from tests import fakes


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite for the whole session, on free loopback ports, always stopped."""
    with Azurite(location=tmp_path_factory.mktemp("azurite")) as instance:
        yield instance


@pytest.fixture
def storage_connection_string(azurite: Azurite) -> str:
    """Connection string of the session's Azurite."""
    return azurite.connection_string


@pytest.fixture
def unique_name() -> str:
    """A fresh lower-case name, valid as a container or (prefixed) table name."""
    return "t" + uuid.uuid4().hex[:20]


def fake_jobs() -> list[Job]:
    """The recurring data jobs of the test environment (ids in tests/fakes.py)."""
    allowed = (fakes.CLIENT_ID,)
    return [
        Job(fakes.CUSTOMERS_ACTIVITY_ID, fakes.CUSTOMERS_ENTITY, "Import customers", allowed),
        Job(
            fakes.GENERAL_JOURNAL_ACTIVITY_ID,
            fakes.GENERAL_JOURNAL_ENTITY,
            "Import general journal",
            allowed,
        ),
        Job(fakes.PACKAGE_ACTIVITY_ID, "", "Import package", allowed),
        Job(fakes.EXPORT_ACTIVITY_ID, fakes.CUSTOMERS_ENTITY, "Export customers", allowed),
    ]


def _trust_bundle(emulator: Emulator, folder: Path) -> Path:
    """The CAs this machine trusts plus the emulator's test CA: subprocesses of the tests
    (pip building the package) inherit the variables and must still reach the registry."""
    bundle = folder / "trust.pem"
    current = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    public = Path(current or certifi.where()).read_text(encoding="utf-8")
    test_ca = Path(emulator.ca_bundle).read_text(encoding="ascii")
    bundle.write_text(public + "\n" + test_ca, encoding="utf-8")
    return bundle


@pytest.fixture(scope="session")
def d365_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One TLS D365 emulator for the session; its CA is trusted through REQUESTS_CA_BUNDLE and
    SSL_CERT_FILE while it runs (restored afterwards)."""
    apps = [
        App(fakes.CLIENT_ID, fakes.CLIENT_SECRET),
        App(fakes.OTHER_CLIENT_ID, fakes.OTHER_CLIENT_SECRET),
    ]
    with (
        Emulator(fake_jobs(), apps, tenant_id=fakes.TENANT_ID, tls=True) as emulator,
        pytest.MonkeyPatch.context() as patch,
    ):
        bundle = _trust_bundle(emulator, tmp_path_factory.mktemp("ca"))
        patch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        patch.setenv("SSL_CERT_FILE", str(bundle))
        yield emulator


@pytest.fixture
def d365(d365_emulator: Emulator) -> Emulator:
    """The session's emulator, reset: no requests, messages, forced outcomes or changed knobs."""
    d365_emulator.reset()
    return d365_emulator


@pytest.fixture
def d365_credential(d365: Emulator) -> Iterator[ClientSecretCredential]:
    """A real azure-identity ClientSecretCredential against the emulator's token endpoint."""
    credential = ClientSecretCredential(
        fakes.TENANT_ID,
        fakes.CLIENT_ID,
        fakes.CLIENT_SECRET,
        authority=d365.authority_host,
        disable_instance_discovery=True,
    )
    with credential:
        yield credential
