"""Typed errors and their texts: what F&O refused, why, and what to check."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from azure.identity import ClientSecretCredential

from devtools.d365_emulator import Emulator
from shared.clients.d365 import (
    D365AuthenticationError,
    D365Client,
    D365CredentialError,
    D365HttpError,
    D365NotFoundError,
    D365PayloadTooLargeError,
    D365PermissionError,
    D365ResponseError,
    D365ServerError,
    RetryPolicy,
)
from tests import fakes
from tests.shared.clients.d365.support import ClientFactory, received


def test_app_not_on_the_job_policy_is_401_with_the_checklist(
    make_client: ClientFactory, d365: Emulator
) -> None:
    other = ClientSecretCredential(
        fakes.TENANT_ID,
        fakes.OTHER_CLIENT_ID,
        fakes.OTHER_CLIENT_SECRET,
        authority=d365.authority_host,
        disable_instance_discovery=True,
    )
    with other:
        client = make_client(credential=other)
        with pytest.raises(D365AuthenticationError) as caught:
            client.enqueue(fakes.CUSTOMERS_ACTIVITY_ID, b"x", entity="CustomersV3")

    error = caught.value
    assert error.status_code == 401
    assert error.operation == "enqueue"
    assert error.activity_id == fakes.CUSTOMERS_ACTIVITY_ID
    assert error.url == f"{d365.base_url}/api/connector/enqueue/{fakes.CUSTOMERS_ACTIVITY_ID}"
    assert f"'{fakes.OTHER_CLIENT_ID}' is not authorized" in (error.fno_message or "")
    text = str(error)
    assert text.startswith(
        f"enqueue (POST {error.url}; activity {fakes.CUSTOMERS_ACTIVITY_ID}) failed: "
        "HTTP 401 Unauthorized."
    )
    assert "?entity" not in text
    for expected in (
        "System administration > Setup > Microsoft Entra applications",
        "authorization policy",
        "without a trailing slash",
        f"scope requested: {d365.base_url.lower()}/.default",
        "tenant",
    ):
        assert expected in text
    assert len(received(d365, "enqueue")) == 1


def test_unknown_activity_is_404_with_where_to_find_the_id(
    client: D365Client, d365: Emulator
) -> None:
    d365.knobs.unknown_ids_not_found = True
    unknown = "99999999-9999-9999-9999-999999999999"
    with pytest.raises(D365NotFoundError) as caught:
        client.dequeue(unknown)
    text = str(caught.value)
    assert "HTTP 404 Not Found" in text
    assert f"No enabled recurring data job answers to activity id {unknown}" in text
    assert "Manage scheduled data jobs" in text
    assert len(received(d365, "dequeue")) == 1


def test_unknown_activity_answered_500_on_enqueue_is_not_retried_and_says_so(
    client: D365Client, d365: Emulator, sleeps: list[float]
) -> None:
    with pytest.raises(D365ServerError) as caught:
        client.enqueue("99999999-9999-9999-9999-999999999999", b"x")
    assert sleeps == []
    assert "An error has occurred." in str(caught.value)
    assert "An unknown or disabled recurring job also answers 5xx" in str(caught.value)


def test_unknown_message_id_is_404_when_f_and_o_says_so(client: D365Client, d365: Emulator) -> None:
    d365.knobs.unknown_ids_not_found = True
    with pytest.raises(D365NotFoundError) as caught:
        client.get_message_status("11111111-2222-3333-4444-555555555555")
    error = caught.value
    assert error.message_id == "11111111-2222-3333-4444-555555555555"
    assert error.fno_message == "Message '11111111-2222-3333-4444-555555555555' was not found."
    assert "GetMessageStatus (POST " in str(error)
    assert "F&O does not know the id" in str(error)


def test_wrong_entity_is_a_plain_http_error_with_f_and_o_text(
    client: D365Client, d365: Emulator
) -> None:
    with pytest.raises(D365HttpError) as caught:
        client.enqueue(fakes.CUSTOMERS_ACTIVITY_ID, b"x", entity="VendorsV2")
    assert type(caught.value) is D365HttpError
    assert caught.value.status_code == 400
    assert "Entity 'VendorsV2' is not part of data project" in str(caught.value)


def test_413_names_the_size_and_the_package_api(client: D365Client, d365: Emulator) -> None:
    d365.knobs.max_enqueue_bytes = 1000
    with pytest.raises(D365PayloadTooLargeError) as caught:
        client.enqueue(fakes.PACKAGE_ACTIVITY_ID, bytes(3 * 1024 * 1024))
    text = str(caught.value)
    assert "HTTP 413" in text
    assert "(3145728 bytes, 3.0 MiB)" in text
    assert "data management package API (GetAzureWriteUrl, then ImportFromPackage)" in text
    assert "request entity is too large" in text
    assert len(received(d365, "enqueue")) == 1


def test_wrong_secret_is_a_credential_error_without_the_secret(
    make_client: ClientFactory, d365: Emulator
) -> None:
    secret = "wrong-secret-value-42"
    credential = ClientSecretCredential(
        fakes.TENANT_ID,
        fakes.CLIENT_ID,
        secret,
        authority=d365.authority_host,
        disable_instance_discovery=True,
    )
    with credential:
        client = make_client(credential=credential)
        with pytest.raises(D365CredentialError) as caught:
            client.get_message_status("11111111-2222-3333-4444-555555555555")

    text = str(caught.value)
    assert secret not in text
    assert "ClientSecretCredential could not get a token" in text
    assert f"scope {d365.base_url.lower()}/.default" in text
    assert "AADSTS7000215" in text
    assert "Check the tenant id, the client id, the client secret or certificate" in text
    assert "authority host" in text
    assert caught.value.scope == f"{d365.base_url.lower()}/.default"
    assert received(d365, "GetMessageStatus") == []


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.enqueue("not-a-guid", b"x"), "activity_id must be a GUID"),
        (lambda c: c.enqueue("../../data", b"x"), "activity_id must be a GUID"),
        (lambda c: c.dequeue("123"), "activity_id must be a GUID"),
        (lambda c: c.get_message_status(" "), "message_id must be a non-empty string"),
        (lambda c: c.get_execution_errors(""), "execution_id must be a non-empty string"),
        (
            lambda c: c.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"x", length=-1),
            "length must be a non-negative int",
        ),
        (
            lambda c: c.enqueue(fakes.PACKAGE_ACTIVITY_ID, NonSeekable()),
            "body stream must be seekable",
        ),
    ],
)
def test_bad_ids_and_bodies_fail_before_any_request(
    client: D365Client, d365: Emulator, call: Any, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        call(client)
    assert [r for r in d365.requests if r.operation not in ("oidc", "token")] == []


class NonSeekable(io.RawIOBase):
    """A readable stream that cannot rewind."""

    def readable(self) -> bool:
        return True


def test_body_shorter_than_its_length_is_refused(client: D365Client, d365: Emulator) -> None:
    with pytest.raises(ValueError, match="the body ended after 3 of the 10 bytes"):
        client.enqueue(fakes.PACKAGE_ACTIVITY_ID, lambda: io.BytesIO(b"abc"), length=10)
    assert d365.messages == {}


def test_body_of_unknown_size_needs_a_length(client: D365Client) -> None:
    with pytest.raises(ValueError, match="length is required"):
        client.enqueue(fakes.PACKAGE_ACTIVITY_ID, NonSeekable)


@pytest.mark.parametrize(
    "base_url", ["fno.localhost", "ftp://fno.localhost", "https://fno.localhost/?x=1"]
)
def test_bad_base_url(base_url: str, d365_credential: ClientSecretCredential) -> None:
    with pytest.raises(ValueError, match="base_url"):
        D365Client(base_url, d365_credential)


# -- answers the emulator does not give: a stand-in server on loopback -------------------------


@dataclass
class CannedServer:
    """A plain HTTP server answering every request with one canned reply."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    url: str = ""


@pytest.fixture
def canned() -> Iterator[CannedServer]:
    """An on-premises AOS or a misrouted proxy: answers whatever the test sets."""
    state = CannedServer()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(state.status)
            for name, value in {**state.headers, "Content-Length": str(len(state.body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_302_says_on_premises_or_wrong_url(
    make_client: ClientFactory, canned: CannedServer
) -> None:
    canned.status = 302
    canned.headers = {"Location": "https://adfs.contoso.com/adfs/ls/?wa=wsignin1.0&secret=1"}
    client = make_client(base_url=canned.url)
    with pytest.raises(D365HttpError) as caught:
        client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"x")
    text = str(caught.value)
    assert caught.value.status_code == 302
    assert "HTTP 302 Found" in text
    assert "redirected to https://adfs.contoso.com/adfs/ls/:" in text
    assert "secret=1" not in text
    assert "not exist on on-premises environments" in text
    assert "environment root" in text


def test_unparseable_2xx_is_a_response_error_with_the_shortened_body(
    make_client: ClientFactory, canned: CannedServer
) -> None:
    canned.body = b"<html><body>" + b"Sign in to your account " * 40 + b"</body></html>"
    canned.headers = {"Content-Type": "text/html", "x-ms-request-id": "req-123"}
    client = make_client(base_url=canned.url)

    with pytest.raises(D365ResponseError) as caught:
        client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"x")
    error = caught.value
    assert error.status_code == 200
    assert error.request_id == "req-123"
    assert "returned a response the client cannot read: expected a message id (GUID), got" in (
        str(error)
    )
    assert "'<html><body>Sign in to your account Sign in" in str(error)
    assert len(error.body) == 200

    canned.body = b'{"unexpected": true}'
    with pytest.raises(D365ResponseError, match="expected JSON with a 'value'"):
        client.get_message_status("11111111-2222-3333-4444-555555555555")


def test_403_says_the_app_is_known_but_not_allowed(
    make_client: ClientFactory, canned: CannedServer
) -> None:
    canned.status = 403
    canned.headers = {"x-ms-request-id": "req-403"}
    canned.body = json.dumps(
        {"error": {"code": "", "message": "outer", "innererror": {"message": "User is disabled"}}}
    ).encode()
    client = make_client(base_url=canned.url)
    with pytest.raises(D365PermissionError) as caught:
        client.get_execution_errors("Exec-1")
    error = caught.value
    assert (error.status_code, error.fno_message, error.request_id) == (
        403,
        "User is disabled",
        "req-403",
    )
    assert error.execution_id == "Exec-1"
    text = str(error)
    assert "HTTP 403 Forbidden. F&O says: User is disabled Request id: req-403." in text
    assert "The app is known but not allowed" in text


def test_an_f_and_o_error_quoting_a_package_url_shows_no_sas_signature(
    make_client: ClientFactory, canned: CannedServer
) -> None:
    url = "https://fno.blob.core.windows.net/dmf/p.zip?sv=2024-11-04&sp=r&sig=S3cr3tSiGnAtUrE%3D"
    canned.status = 400
    canned.body = json.dumps({"error": {"message": f"Cannot read the package {url}."}}).encode()
    canned.headers = {"Content-Type": "application/json"}
    client = make_client(base_url=canned.url)

    with pytest.raises(D365HttpError) as caught:
        client.import_from_package(
            url, "CustomersPackage", "exec-1", retry=RetryPolicy(max_attempts=1)
        )

    assert "Cannot read the package https://fno.blob.core.windows.net/dmf/p.zip?" in str(
        caught.value
    )
    for text in (str(caught.value), caught.value.fno_message or ""):
        assert "S3cr3tSiGnAtUrE" not in text
