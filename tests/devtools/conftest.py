"""Fixtures of the local host's tests: the throwaway app (tests/devtools/probe_app.py) hosted
on the session's Azurite."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from devtools.azurite import Azurite
from devtools.local_host import LocalHost
from tests.devtools.probe_app import FUNCTION_KEY, Probe, build_app


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SCHEDULE", "*/1 * * * * *")


@pytest.fixture
def container(azurite: Azurite, unique_name: str) -> Iterator[ContainerClient]:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    with service.create_container(unique_name) as client:
        yield client
        client.delete_container()


@pytest.fixture
def make_host(
    azurite: Azurite, container: ContainerClient, env: None
) -> Iterator[Callable[..., tuple[LocalHost, Probe]]]:
    """Builds and starts hosts of the throwaway app; stops them after the test."""
    started: list[LocalHost] = []

    def _make(**options: object) -> tuple[LocalHost, Probe]:
        probe = Probe()
        defaults: dict[str, object] = {
            "http_port": 0,
            "blob_scan_interval": 3600,
            "timer_interval": 3600,
            "function_key": FUNCTION_KEY,
            "poison_threshold": 3,
        }
        host = LocalHost(
            build_app(container.container_name, probe),
            storage_connection_string=azurite.connection_string,
            **{**defaults, **options},  # type: ignore[arg-type]
        )
        host.start()
        started.append(host)
        return host, probe

    yield _make
    for host in started:
        host.stop()


@pytest.fixture
def hosted(make_host: Callable[..., tuple[LocalHost, Probe]]) -> tuple[LocalHost, Probe]:
    return make_host()
