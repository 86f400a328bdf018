"""The client's session against the emulator: the write timeout bounds each send of a body
(not the connect timeout, as urllib3 alone does), and the pool holds `pool_maxsize` connections."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.identity import ClientSecretCredential

from devtools.d365_emulator import Emulator, Job
from shared.clients.d365 import D365Client, D365ConnectionError, RetryPolicy
from shared.clients.d365._transport import WriteTimeout, new_session
from tests import fakes
from tests.shared.clients.d365.support import ClientFactory, received, sha256, stored_bytes

MIB = 1024 * 1024
# Well past what loopback socket buffers take in while the emulator stops reading (4 MiB of
# send buffer here; the receive window stays small because the reader is stalled).
BIG = bytes(range(256)) * (16 * MIB // 256)
UNKNOWN_MESSAGE = "11111111-2222-3333-4444-555555555555"
ONE_ATTEMPT = RetryPolicy(max_attempts=1)
POOL_FULL = "Connection pool is full"


def stall_enqueue_bodies(d365: Emulator, seconds: float) -> None:
    """Make the emulator stop reading enqueue bodies for `seconds` after their first 64 KiB."""
    d365.knobs.operations = frozenset({"enqueue"})
    d365.knobs.body_read_pause_seconds = seconds


def let_the_stall_end(seconds: float) -> None:
    """Let the emulator's stalled reader finish before the next test resets the emulator."""
    time.sleep(seconds)


# -- write timeout ------------------------------------------------------------------------------


def test_slow_reader_gets_write_timeout_per_chunk_not_the_connect_timeout(
    make_client: ClientFactory, d365: Emulator
) -> None:
    stall_enqueue_bodies(d365, 1.0)
    client = make_client(connect_timeout=0.5, write_timeout=5.0, chunk_size=MIB)

    started = time.monotonic()
    result = client.enqueue(fakes.PACKAGE_ACTIVITY_ID, BIG, external_id="big.zip")
    seconds = time.monotonic() - started

    assert seconds > 1.0  # the upload outlasted the connect timeout twice over
    [request] = received(d365, "enqueue")
    assert request.body_sha256 == sha256(BIG)
    assert stored_bytes(d365, result.message_id) == BIG


def test_a_plain_session_sends_under_the_connect_timeout_which_is_why_write_timeout_exists(
    make_client: ClientFactory, d365: Emulator
) -> None:
    stall_enqueue_bodies(d365, 1.0)
    with requests.Session() as session:
        client = make_client(
            connect_timeout=0.5,
            write_timeout=5.0,
            chunk_size=MIB,
            session=session,
            retry=ONE_ATTEMPT,
        )
        with pytest.raises(D365ConnectionError) as caught:
            client.enqueue(fakes.PACKAGE_ACTIVITY_ID, BIG)

    assert "The write operation timed out" in str(caught.value)
    assert caught.value.sent_body is False
    let_the_stall_end(1.0)


def test_a_send_stalled_past_write_timeout_is_a_connection_error_naming_the_option(
    make_client: ClientFactory,
    d365: Emulator,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="shared.clients.d365")
    stall_enqueue_bodies(d365, 1.5)
    retry = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.01)
    client = make_client(write_timeout=0.5, chunk_size=MIB, retry=retry)

    started = time.monotonic()
    with pytest.raises(D365ConnectionError) as caught:
        client.enqueue(fakes.PACKAGE_ACTIVITY_ID, BIG, external_id="big.zip")
    seconds = time.monotonic() - started

    error = caught.value
    assert (error.sent_body, error.attempts, error.operation) == (False, 2, "enqueue")
    assert isinstance(error.__cause__, WriteTimeout)
    text = str(error)
    assert " got no response after 2 attempts: write timed out (write_timeout=0.5 s) (" in text
    assert text.endswith(
        "F&O did not get the whole request; sending it again is safe. F&O stopped taking the "
        "request body; if it is only slow to take large files, raise the client's write_timeout."
    )
    [warning] = [r.getMessage() for r in caplog.records if r.name.startswith("shared.clients.d365")]
    assert warning.startswith(
        "retrying operation=enqueue attempt=1/2 cause=write timed out (write_timeout=0.5 s)"
    )
    assert seconds < 1.5 * 2  # each attempt gave up at the write timeout, not the stall's end
    assert len(sleeps) == 1
    let_the_stall_end(1.5)
    assert d365.messages == {}


def test_the_response_is_still_read_under_the_read_timeout(
    make_client: ClientFactory, d365: Emulator
) -> None:
    client = make_client(write_timeout=0.2, read_timeout=5.0, retry=ONE_ATTEMPT)
    d365.knobs.latency_ms = 600
    assert client.get_message_status(UNKNOWN_MESSAGE).raw == "Enqueued"


def test_timeouts_must_be_positive(make_client: ClientFactory) -> None:
    with pytest.raises(ValueError, match=r"^write_timeout must be a positive number of seconds"):
        make_client(write_timeout=0)
    with pytest.raises(ValueError, match=r"^connect_timeout must be a positive number"):
        make_client(connect_timeout=None)
    with pytest.raises(ValueError, match=r"^pool_maxsize must be a positive int, got 0$"):
        make_client(pool_maxsize=0)


@pytest.fixture(scope="module")
def plain_http() -> Iterator[Emulator]:
    """An emulator without TLS: plain-HTTP connections open inside their first send."""
    job = Job(fakes.PACKAGE_ACTIVITY_ID, allowed_client_ids=(fakes.CLIENT_ID,))
    with Emulator([job], [], tls=False) as emulator:
        yield emulator


def test_plain_http_connections_connect_then_send_under_the_write_timeout(
    plain_http: Emulator,
) -> None:
    plain_http.reset()
    url = f"{plain_http.base_url}/api/connector/enqueue/{fakes.PACKAGE_ACTIVITY_ID}"
    with new_session(write_timeout=0.5, pool_maxsize=2) as session:
        # No token: the emulator reads the whole body, then answers 401.
        answer = session.post(url, data=b"x" * MIB, timeout=(0.5, 5.0))
        assert answer.status_code == 401

        stall_enqueue_bodies(plain_http, 1.5)
        with pytest.raises(
            WriteTimeout, match=r": Write timed out: sending \d+ bytes took longer than 0\.5 s$"
        ):
            session.post(url, data=BIG, timeout=(0.5, 5.0))
    let_the_stall_end(1.5)


# -- connection pool ----------------------------------------------------------------------------


def _calls_at_once(client: D365Client, count: int) -> None:
    with ThreadPoolExecutor(count) as pool:
        statuses = list(
            pool.map(lambda _: client.get_message_status(UNKNOWN_MESSAGE), range(count))
        )
    assert {status.raw for status in statuses} == {"Enqueued"}


def _pool_full_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if POOL_FULL in r.getMessage()]


def test_pool_keeps_a_connection_per_concurrent_call(
    make_client: ClientFactory, d365: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    client = make_client(pool_maxsize=16)
    client.get_message_status(UNKNOWN_MESSAGE)  # the token, and one pooled connection
    d365.knobs.latency_ms = 500  # sixteen calls in flight together
    before = d365.connections

    _calls_at_once(client, 16)
    _calls_at_once(client, 16)

    assert _pool_full_warnings(caplog) == []
    # Thirty-two calls, at most sixteen at once, and no connection thrown away: never more
    # than fifteen new ones beside the pooled one.
    assert 1 < d365.connections - before <= 15


def test_requests_default_pool_of_ten_discards_connections_under_sixteen_calls(
    make_client: ClientFactory, d365: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    with requests.Session() as session:
        client = make_client(session=session)
        client.get_message_status(UNKNOWN_MESSAGE)
        d365.knobs.latency_ms = 500
        before = d365.connections

        _calls_at_once(client, 16)
        opened = d365.connections - before
        _calls_at_once(client, 16)

    assert _pool_full_warnings(caplog)
    assert d365.connections - before > opened  # thrown away, then opened again


# -- CA bundle ----------------------------------------------------------------------------------


def _bundle_lookups(monkeypatch: pytest.MonkeyPatch, bundle: str) -> list[str]:
    """Record each `os.path` look-up of `bundle` (requests' per-request checks) from now on."""
    seen: list[str] = []

    def spy(name: str) -> Callable[[Any], bool]:
        real: Callable[[Any], bool] = getattr(os.path, name)

        def look_up(path: Any) -> bool:
            if os.fspath(path) == bundle:
                seen.append(name)
            return real(path)

        return look_up

    for name in ("exists", "isdir", "isfile"):
        monkeypatch.setattr(os.path, name, spy(name))
    return seen


def test_the_ca_bundle_is_looked_up_when_the_client_is_built_not_per_call(
    make_client: ClientFactory, d365: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client()
    client.get_message_status(UNKNOWN_MESSAGE)  # the token, and one pooled connection
    lookups = _bundle_lookups(monkeypatch, os.environ["REQUESTS_CA_BUNDLE"])

    for _ in range(5):
        assert client.get_message_status(UNKNOWN_MESSAGE).raw == "Enqueued"

    assert lookups == []
    assert len(received(d365, "GetMessageStatus")) == 6


def test_a_missing_ca_bundle_fails_every_call_with_requests_error_naming_it(
    make_client: ClientFactory,
    d365: Emulator,
    d365_credential: ClientSecretCredential,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # The credential's token is cached first: only the F&O session meets the missing bundle.
    d365_credential.get_token(f"{d365.base_url.lower()}/.default")
    missing = tmp_path / "gone.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(missing))
    client = make_client()

    for _ in range(2):
        with pytest.raises(
            OSError,
            match=f"^Could not find a suitable TLS CA certificate bundle, invalid path: {missing}$",
        ):
            client.get_message_status(UNKNOWN_MESSAGE)
    assert received(d365, "GetMessageStatus") == []
