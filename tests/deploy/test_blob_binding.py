"""The real binding path: the blob trigger's BlobClient built from model binding data by the
blob extension's own converter (what the Python worker does in Azure), then the function run
on it; for a connection string and for identity-based settings."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from azure.identity import ManagedIdentityCredential
from azure.storage.blob import BlobClient
from azurefunctions.extensions.base import Datum
from azurefunctions.extensions.bindings.blob import BlobClient as BlobClientType
from azurefunctions.extensions.bindings.blob import BlobClientConverter

from devtools.local_host.blob_binding import convert_blob_client, model_binding_datum
from enqueue_blob import enqueue_blob
from tests import fakes
from tests.e2e.conftest import App, enqueue_requests

CONNECTION = "IntegrationStorage"
VALID = b"""<?xml version="1.0" encoding="utf-8"?><Document><CUSTCUSTOMERV3ENTITY>
<CUSTOMERACCOUNT>US-7002</CUSTOMERACCOUNT><CUSTOMERGROUPID>10</CUSTOMERGROUPID>
</CUSTCUSTOMERV3ENTITY></Document>"""


class _ModelBindingData:
    """The worker's ModelBindingData message: the four fields the converter reads."""

    def __init__(self, container: str, blob: str) -> None:
        self.version = "1.0"
        self.source = "AzureStorageBlobs"
        self.content_type = "application/json"
        self.content = json.dumps(
            {"Connection": CONNECTION, "ContainerName": container, "BlobName": blob}
        )


def _worker_convert(container: str, blob: str) -> BlobClient:
    """Exactly the worker's call for a `BlobClient` parameter of a blobTrigger binding."""
    datum = Datum(value=_ModelBindingData(container, blob), type="model_binding_data")
    client = BlobClientConverter.decode(datum, trigger_metadata={}, pytype=BlobClientType)
    assert isinstance(client, BlobClient)
    return client


def test_a_connection_string_setting_gives_a_client_the_function_runs_on(app: App) -> None:
    blob = app.upload("customers/USMF/converted.xml", VALID)

    client = _worker_convert(app.inbound.container_name, blob)
    assert (client.container_name, client.blob_name) == (app.inbound.container_name, blob)
    assert client.url.startswith(app.inbound.url.rsplit("/", 1)[0])
    with client:
        enqueue_blob(client)

    (request,) = enqueue_requests(app.d365)
    assert request.body == VALID
    assert app.record(blob)["state"] in {"Enqueued", "Processed"}


def test_the_local_host_builds_the_same_data_as_the_worker(app: App) -> None:
    datum = model_binding_datum(CONNECTION, "c", "a/b.xml")
    reference = _ModelBindingData("c", "a/b.xml")
    assert datum.type == "model_binding_data"
    for field in ("version", "source", "content_type", "content"):
        assert getattr(datum.value, field) == getattr(reference, field)
    client = convert_blob_client(CONNECTION, "c", "a/b.xml")
    assert client.url == _worker_convert("c", "a/b.xml").url


class _ManagedIdentityEndpoint:
    """The App Service managed identity endpoint (IDENTITY_ENDPOINT) on loopback."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                outer.requests.append(
                    {"query": query, "header": self.headers.get("X-IDENTITY-HEADER")}
                )
                body = json.dumps(
                    {
                        "access_token": "fake-token-not-real",
                        "expires_on": "4102444800",
                        "resource": query["resource"][0],
                        "token_type": "Bearer",
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/msi/token"

    def __enter__(self) -> _ManagedIdentityEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def identity_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[_ManagedIdentityEndpoint]:
    with _ManagedIdentityEndpoint() as endpoint:
        monkeypatch.setenv("IDENTITY_ENDPOINT", endpoint.url)
        monkeypatch.setenv("IDENTITY_HEADER", "fake-identity-header")
        yield endpoint


def test_identity_based_settings_give_a_client_with_the_user_assigned_identity(
    monkeypatch: pytest.MonkeyPatch, identity_endpoint: _ManagedIdentityEndpoint
) -> None:
    # The settings infra/app/function.bicep writes for the trigger's connection.
    monkeypatch.delenv(CONNECTION, raising=False)
    monkeypatch.setenv(f"{CONNECTION}__blobServiceUri", "https://stfake.blob.core.windows.net/")
    monkeypatch.setenv(f"{CONNECTION}__queueServiceUri", "https://stfake.queue.core.windows.net/")
    monkeypatch.setenv(f"{CONNECTION}__credential", "managedidentity")
    monkeypatch.setenv(f"{CONNECTION}__clientId", fakes.CLIENT_ID)

    client = _worker_convert("d365-inbound", "customers/USMF/x.xml")

    assert client.url == "https://stfake.blob.core.windows.net/d365-inbound/customers/USMF/x.xml"
    assert isinstance(client.credential, ManagedIdentityCredential)
    token = client.credential.get_token("https://storage.azure.com/.default")
    assert token.token == "fake-token-not-real"
    (request,) = identity_endpoint.requests
    assert request["query"]["client_id"] == [fakes.CLIENT_ID]
    assert request["query"]["resource"] == ["https://storage.azure.com"]
    assert request["header"] == "fake-identity-header"


def test_without_a_client_id_the_extension_uses_the_system_assigned_identity(
    monkeypatch: pytest.MonkeyPatch, identity_endpoint: _ManagedIdentityEndpoint
) -> None:
    monkeypatch.delenv(CONNECTION, raising=False)
    monkeypatch.setenv(f"{CONNECTION}__blobServiceUri", "https://stfake.blob.core.windows.net/")
    monkeypatch.delenv(f"{CONNECTION}__clientId", raising=False)

    client = _worker_convert("d365-inbound", "x.xml")

    assert isinstance(client.credential, ManagedIdentityCredential)
    client.credential.get_token("https://storage.azure.com/.default")
    (request,) = identity_endpoint.requests
    assert "client_id" not in request["query"]


def test_a_missing_connection_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for suffix in ("", "__serviceUri", "__blobServiceUri"):
        monkeypatch.delenv(CONNECTION + suffix, raising=False)

    with pytest.raises(ValueError, match="Storage account connection name IntegrationStorage"):
        _worker_convert("d365-inbound", "x.xml")
