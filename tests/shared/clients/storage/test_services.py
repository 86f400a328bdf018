"""Storage clients from the IntegrationStorage settings: Azurite round trips, identity forms,
bounded timeouts and retries."""

from __future__ import annotations

import gc
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

from devtools.azurite import Azurite, connection_string
from shared.clients.storage import STREAM_CHUNK
from shared.config import StorageSettings
from shared.config.storage import MANAGED_IDENTITY
from shared.context import blob_service_client, storage_credential, table_service_client

MI_CLIENT_ID = "cccccccc-0000-4000-8000-000000000001"
BLOB_URI = "https://fakeaccount.blob.core.windows.net"
TABLE_URI = "https://fakeaccount.table.core.windows.net"


def test_connection_string_form_round_trips_blobs_and_tables(
    azurite: Azurite, unique_name: str
) -> None:
    storage = StorageSettings(connection_string=azurite.connection_string)

    blobs = blob_service_client(storage)
    container = blobs.create_container(unique_name)
    container.upload_blob("customers/USMF/a.xml", b"<Document/>")
    assert container.download_blob("customers/USMF/a.xml").readall() == b"<Document/>"

    tables = table_service_client(storage)
    table = tables.create_table(unique_name)
    table.create_entity({"PartitionKey": "record", "RowKey": "1", "State": "Received"})
    assert table.get_entity("record", "1")["State"] == "Received"


def test_identity_form_with_managed_identity() -> None:
    # What IntegrationStorage__credential=managedidentity and __clientId read as
    # (tests/shared/config/test_settings.py, the storage forms).
    storage = StorageSettings(
        blob_service_uri=BLOB_URI,
        queue_service_uri="https://fakeaccount.queue.core.windows.net",
        table_service_uri=TABLE_URI,
        credential=MANAGED_IDENTITY,
        client_id=MI_CLIENT_ID,
    )
    blobs = blob_service_client(storage)
    tables = table_service_client(storage)
    assert blobs.url.rstrip("/") == BLOB_URI
    assert tables.url.rstrip("/") == TABLE_URI
    assert isinstance(blobs.credential, ManagedIdentityCredential)
    assert isinstance(tables.credential, ManagedIdentityCredential)


def test_identity_form_without_credential_setting_uses_default_credential() -> None:
    storage = StorageSettings(blob_service_uri=BLOB_URI, table_service_uri=TABLE_URI)
    assert isinstance(storage_credential(storage), DefaultAzureCredential)
    shared = ManagedIdentityCredential()
    assert blob_service_client(storage, credential=shared).credential is shared
    assert table_service_client(storage, credential=shared).credential is shared


def test_missing_endpoint_and_connection_string_credential_are_errors() -> None:
    with pytest.raises(ValueError, match=r"IntegrationStorage__tableServiceUri is not set"):
        table_service_client(StorageSettings(blob_service_uri=BLOB_URI))
    with pytest.raises(ValueError, match=r"IntegrationStorage__blobServiceUri .* is not set"):
        blob_service_client(StorageSettings(table_service_uri=TABLE_URI))
    with pytest.raises(ValueError, match="no token credential needed"):
        storage_credential(StorageSettings(connection_string="UseDevelopmentStorage=true"))


class _SilentServer:
    """Accepts TCP connections on loopback and never answers: a hung storage endpoint."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port: int = self._socket.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.connections.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self.connections:
            conn.close()
        self._socket.close()


@pytest.fixture
def silent_storage() -> Iterator[_SilentServer]:
    server = _SilentServer()
    try:
        yield server
    finally:
        server.close()


def test_read_timeout_and_retry_count_bound_a_hung_table_call(
    silent_storage: _SilentServer,
) -> None:
    port = silent_storage.port
    storage = StorageSettings(connection_string=connection_string(port, port, port))
    tables = table_service_client(storage, read_timeout=0.3, retry_total=1)
    started = time.monotonic()
    with pytest.raises(ServiceResponseError):
        tables.get_table_client("hung").get_entity("p", "r")
    assert time.monotonic() - started < 5
    assert len(silent_storage.connections) == 2  # the first attempt and one retry


def test_read_timeout_bounds_a_hung_blob_call(silent_storage: _SilentServer) -> None:
    port = silent_storage.port
    storage = StorageSettings(connection_string=connection_string(port, port, port))
    blobs = blob_service_client(storage, read_timeout=0.3, retry_total=0)
    started = time.monotonic()
    with pytest.raises(ServiceResponseError):
        blobs.get_blob_client("hung", "a.xml").get_blob_properties()
    assert time.monotonic() - started < 5
    assert len(silent_storage.connections) == 1


def test_sixteen_calls_at_once_keep_their_connections(
    azurite: Azurite, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A poll tick runs 16 calls at once: none of their connections is discarded."""
    storage = StorageSettings(connection_string=azurite.connection_string)
    table = table_service_client(storage).create_table(unique_name)
    table.create_entity({"PartitionKey": "p", "RowKey": "1"})
    barrier = threading.Barrier(16)

    def read() -> None:
        barrier.wait()
        for _ in range(5):
            table.get_entity("p", "1")

    with caplog.at_level("WARNING", logger="urllib3.connectionpool"):
        threads = [threading.Thread(target=read) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert "Connection pool is full" not in caplog.text


def _status_mib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"{field} not in /proc/self/status")


def test_a_large_blob_is_streamed_without_holding_it_in_memory(
    storage_connection_string: str, unique_name: str
) -> None:
    service = blob_service_client(StorageSettings(connection_string=storage_connection_string))
    container = service.create_container(unique_name)
    data = os.urandom(40 * 1024 * 1024)
    container.upload_blob("big.bin", data)
    digest = hashlib.sha256(data).hexdigest()
    del data
    source = service.get_blob_client(unique_name, "big.bin")
    source.get_blob_properties()
    gc.collect()

    before = _status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to now
    stream = source.download_blob()
    received = hashlib.sha256()
    while chunk := stream.read(1024 * 1024):
        received.update(chunk)
    growth = _status_mib("VmHWM") - before

    assert received.hexdigest() == digest
    # The SDK's default first GET alone would hold 32 MiB of this 40 MiB blob.
    assert growth < 4 * STREAM_CHUNK // (1024 * 1024), growth


# -- the environment, read once ----------------------------------------------------------------


def _refusing_proxy() -> str:
    """A proxy URL on a loopback port nobody listens on: a request through it is refused."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.parametrize("kind", ["blob", "table"])
def test_a_proxy_set_after_the_client_is_built_is_not_read(
    azurite: Azurite, unique_name: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_proxy_settings(monkeypatch)
    storage = StorageSettings(connection_string=azurite.connection_string)
    if kind == "blob":
        container = blob_service_client(storage, retry_total=0).get_container_client(unique_name)
        monkeypatch.setenv("HTTP_PROXY", _refusing_proxy())
        container.create_container()
        container.upload_blob("a.xml", b"<Document/>")
        assert container.download_blob("a.xml").readall() == b"<Document/>"
    else:
        table = table_service_client(storage, retry_total=0).get_table_client(unique_name)
        monkeypatch.setenv("HTTP_PROXY", _refusing_proxy())
        table.create_table()
        table.create_entity({"PartitionKey": "p", "RowKey": "1", "State": "Received"})
        assert table.get_entity("p", "1")["State"] == "Received"


def test_a_proxy_set_when_the_client_is_built_is_used(
    azurite: Azurite, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_proxy_settings(monkeypatch)
    proxy = _refusing_proxy()
    monkeypatch.setenv("HTTP_PROXY", proxy)
    storage = StorageSettings(connection_string=azurite.connection_string)
    blobs = blob_service_client(storage, retry_total=0)
    _no_proxy_settings(monkeypatch)

    with pytest.raises(ServiceRequestError, match="Unable to connect to proxy"):
        blobs.create_container(unique_name)


def test_no_proxy_when_the_client_is_built_exempts_its_endpoint(
    azurite: Azurite, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_proxy_settings(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", _refusing_proxy())
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    storage = StorageSettings(connection_string=azurite.connection_string)
    tables = table_service_client(storage, retry_total=0)

    assert tables.create_table(unique_name).table_name == unique_name
