"""The rules for URLs handed out by F&O (shared/clients/d365/_urls.py): the pure decisions, then the
client refusing before a byte is sent, against the emulator."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator

import pytest

from devtools.d365_emulator import Emulator
from shared.clients.d365 import D365Client, D365UntrustedUrlError
from shared.clients.d365._urls import UrlPolicy
from tests.shared.clients.d365.support import ClientFactory

PUBLIC = UrlPolicy.of("https://contoso.operations.dynamics.com")
SAS = "?sv=2020-10-02&sr=b&sp=cw&sig=secret-signature"


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        (
            "https://contoso.operations.dynamics.com",
            "https://dmfstore1.blob.core.windows.net/dmf/a",
        ),
        (
            "https://contoso.sandbox.operations.dynamics.com",
            "https://abc.z17.blob.storage.azure.net/x",
        ),
        ("https://contoso.cloudax.dynamics.com", "https://dmfstore1.blob.core.windows.net:443/x"),
        (
            "https://agency.operations.dynamics.us",
            "https://store.blob.core.usgovcloudapi.net/dmf/a",
        ),
        ("https://firm.operations.dynamics.cn", "https://store.blob.core.chinacloudapi.cn/dmf/a"),
    ],
)
def test_a_blob_endpoint_of_fnos_cloud_is_a_sas_url(base_url: str, url: str) -> None:
    assert UrlPolicy.of(base_url).check_sas(url + SAS, operation="op", what="BlobUrl") == url + SAS


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://169.254.169.254/metadata/instance", "its scheme is 'http', not https"),
        ("https://169.254.169.254/metadata/instance", "its host '169.254.169.254' is not a blob"),
        ("http://dmfstore1.blob.core.windows.net/dmf/a", "its scheme is 'http', not https"),
        ("https://dmfstore1.blob.core.windows.net:8443/dmf/a", "it names port 8443"),
        ("https://user:pw@dmfstore1.blob.core.windows.net/dmf/a", "it carries a user name"),
        ("https://dmfstore1.blob.core.windows.net.evil.example/a", "is not a blob endpoint"),
        ("https://store.blob.core.usgovcloudapi.net/dmf/a", "is not a blob endpoint"),
        ("https://contoso.operations.dynamics.com/dmf/a", "is not a blob endpoint"),
        ("/dmf/a", "it is not an absolute URL"),
        ("ftp://dmfstore1.blob.core.windows.net/a", "its scheme is 'ftp', not https"),
    ],
)
def test_anything_else_is_refused_naming_the_url_and_the_rule(url: str, problem: str) -> None:
    with pytest.raises(D365UntrustedUrlError) as caught:
        PUBLIC.check_sas(url + SAS, operation="upload_package", what="BlobUrl")
    text = str(caught.value)
    assert problem in text
    assert "A SAS URL must be https on a blob endpoint of F&O's cloud" in text
    assert "<account>.blob.core.windows.net" in text and "D365_SAS_HOSTS (now: none)" in text
    assert "secret-signature" not in text and "pw@" not in text


def test_the_clouds_are_told_from_fnos_host() -> None:
    gov = UrlPolicy.of("https://agency.operations.dynamics.us")
    with pytest.raises(D365UntrustedUrlError, match=r"\.blob\.core\.usgovcloudapi\.net\)"):
        gov.check_sas("https://store.blob.core.windows.net/a", operation="o", what="w")
    china = UrlPolicy.of("https://firm.operations.dynamics.cn")
    with pytest.raises(D365UntrustedUrlError, match=r"\.blob\.core\.chinacloudapi\.cn\)"):
        china.check_sas("https://store.blob.core.windows.net/a", operation="o", what="w")


def test_an_allowed_host_takes_any_port_but_still_only_https() -> None:
    policy = UrlPolicy.of("https://127.0.0.1:8443", ["127.0.0.1", "LocalHost."])
    assert policy.check_sas("https://127.0.0.1:10000/dmf/a", operation="o", what="w")
    assert policy.check_sas("https://localhost/dmf/a", operation="o", what="w")
    with pytest.raises(D365UntrustedUrlError, match="its scheme is 'http'"):
        policy.check_sas("http://127.0.0.1:10000/dmf/a", operation="o", what="w")


def test_the_token_goes_only_to_fnos_exact_origin() -> None:
    policy = UrlPolicy.of("https://contoso.operations.dynamics.com")
    same = "https://CONTOSO.operations.dynamics.com:443/api/connector/download/x?a=b"
    assert policy.check_download(same, operation="download", what="DownloadLocation") == (
        same,
        True,
    )
    sas = "https://dmfstore1.blob.core.windows.net/export/x.zip" + SAS
    assert policy.check_download(sas, operation="download", what="DownloadLocation") == (
        sas,
        False,
    )
    for other in (
        "https://contoso.operations.dynamics.com:8443/api/connector/download/x",
        "http://contoso.operations.dynamics.com/api/connector/download/x",
        "https://admin@contoso.operations.dynamics.com/api/connector/download/x",
    ):
        with pytest.raises(D365UntrustedUrlError) as caught:
            policy.check_download(other, operation="download", what="DownloadLocation")
        assert "not F&O's own origin https://contoso.operations.dynamics.com:443" in str(
            caught.value
        )


def test_hosts_that_are_not_hosts_are_refused() -> None:
    with pytest.raises(ValueError, match="is not a host name or IP address"):
        UrlPolicy.of("https://x.operations.dynamics.com", ["127.0.0.1:8443"])
    with pytest.raises(ValueError, match="not one string"):
        UrlPolicy.of("https://x.operations.dynamics.com", "127.0.0.1")


# -- the client, before any byte is sent ---------------------------------------------------------


def test_upload_package_refuses_plain_http_and_sends_nothing(
    client: D365Client, d365: Emulator
) -> None:
    good = client.get_azure_write_url("package.zip").url
    plain = good.replace("https://", "http://", 1)
    opened: list[bool] = []

    with pytest.raises(D365UntrustedUrlError) as caught:
        client.upload_package(plain, lambda: opened.append(True) or io.BytesIO(b"PK"), length=2)

    assert "refused the BlobUrl F&O handed out, http://127.0.0.1:" in str(caught.value)
    assert "its scheme is 'http', not https" in str(caught.value)
    assert "sig=" not in str(caught.value)
    assert opened == []
    assert [r for r in d365.requests if r.operation.startswith("blob_")] == []


def test_an_error_file_url_on_a_host_not_allowed_is_not_fetched(
    make_client: ClientFactory, d365: Emulator
) -> None:
    client = make_client(sas_hosts=())
    url = d365.blobs.write_url("errors.txt")

    with pytest.raises(
        D365UntrustedUrlError, match=r"its host '127\.0\.0\.1' is not a blob endpoint"
    ):
        client.download_sas_file(url, io.BytesIO())

    assert [r for r in d365.requests if r.operation.startswith("blob_")] == []


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback port that records what each connection sends (nothing answers)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(1)
                try:
                    received.append(connection.recv(65536))
                except OSError:
                    received.append(b"")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join()
    server.close()


def test_a_download_location_on_fnos_host_but_another_port_gets_no_token(
    make_client: ClientFactory, listener: tuple[int, list[bytes]]
) -> None:
    port, received = listener
    client = make_client(sas_hosts=())

    with pytest.raises(D365UntrustedUrlError) as caught:
        client.download(f"http://127.0.0.1:{port}/api/connector/download/x", io.BytesIO())

    text = str(caught.value)
    assert f"refused the DownloadLocation F&O handed out, https://127.0.0.1:{port}/api/" in text
    assert "not F&O's own origin https://127.0.0.1:" in text
    assert received == []
