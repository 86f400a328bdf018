"""PinnedSession: the environment's proxies read once, NO_PROXY decided per host."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from shared.clients.sessions import PinnedSession


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def server() -> Iterator[int]:
    """A plain HTTP server on loopback answering 200 "ok"; its port."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def _refusing_proxy() -> str:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every host through a proxy nobody listens on, but 127.0.0.1."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", _refusing_proxy())
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.mark.usefixtures("proxied")
def test_no_proxy_is_decided_for_each_host_the_session_reaches(server: int) -> None:
    """One session reaches F&O and the storage hosts of its SAS URLs: an exempt host goes
    direct and another through the proxy, whichever the session reached first."""
    with PinnedSession() as session:
        with pytest.raises(requests.exceptions.ProxyError):
            session.get(f"http://localhost:{server}/", timeout=5)
        assert session.get(f"http://127.0.0.1:{server}/", timeout=5).text == "ok"
        with pytest.raises(requests.exceptions.ProxyError):
            session.get(f"http://localhost:{server}/", timeout=5)


def test_the_environment_is_read_when_the_session_is_built(
    server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    with PinnedSession() as session:
        monkeypatch.setenv("HTTP_PROXY", _refusing_proxy())
        assert session.get(f"http://localhost:{server}/", timeout=5).text == "ok"


def test_a_ca_bundle_of_the_environment_is_the_sessions_verify(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    assert PinnedSession().verify == "/etc/ssl/certs/ca-certificates.crt"
    monkeypatch.delenv("CURL_CA_BUNDLE")
    assert PinnedSession().verify is True
