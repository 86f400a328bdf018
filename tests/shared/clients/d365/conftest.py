"""Fixtures for the F&O client tests: clients against the session's emulator, recorded sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.identity import ClientSecretCredential

from devtools.d365_emulator import Emulator
from shared.clients.d365 import D365Client
from tests.shared.clients.d365.support import FAST_RETRY, ClientFactory


@pytest.fixture
def sleeps() -> list[float]:
    """The waits the client asked for, in order."""
    return []


@pytest.fixture
def make_client(
    d365: Emulator, d365_credential: ClientSecretCredential, sleeps: list[float]
) -> Iterator[ClientFactory]:
    """Builds clients for the emulator (fast retries, recorded sleeps); closes them after."""
    clients: list[D365Client] = []

    def make(**options: Any) -> D365Client:
        base_url = options.pop("base_url", d365.base_url)
        credential = options.pop("credential", d365_credential)
        options.setdefault("retry", FAST_RETRY)
        options.setdefault("sleep", sleeps.append)
        options.setdefault("connect_timeout", 2.0)
        options.setdefault("read_timeout", 10.0)
        # The emulator's blob endpoint (SAS URLs of the package API) is on its own host.
        options.setdefault("sas_hosts", (d365.host,))
        client = D365Client(base_url, credential, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: ClientFactory) -> D365Client:
    """A client with the default test options."""
    return make_client()
