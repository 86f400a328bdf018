"""Retries against the emulator's fault knobs: what is re-sent, how long the client waits."""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from devtools.azurite import free_port
from devtools.d365_emulator import THROTTLE_MESSAGES, Emulator
from shared.clients.d365 import (
    D365Client,
    D365ConnectionError,
    D365ServerError,
    D365ThrottledError,
    MessageStatus,
    RetryPolicy,
    honour_retry_after,
)
from tests import fakes
from tests.shared.clients.d365.support import ClientFactory, received, sha256, stored_bytes

UNKNOWN_MESSAGE = "11111111-2222-3333-4444-555555555555"


def counting_opener(data: bytes) -> tuple[Callable[[], io.BytesIO], list[int]]:
    """A body callable that opens a fresh stream each time and counts the calls."""
    calls: list[int] = []

    def open_body() -> io.BytesIO:
        calls.append(1)
        return io.BytesIO(data)

    return open_body, calls


def test_429_waits_for_retry_after_then_enqueues_once(
    client: D365Client, d365: Emulator, sleeps: list[float]
) -> None:
    d365.knobs.throttle_burst = 2
    d365.knobs.retry_after = 3
    data = b"throttled package"
    open_body, calls = counting_opener(data)

    result = client.enqueue(fakes.PACKAGE_ACTIVITY_ID, open_body, length=len(data))

    assert sleeps == [3.0, 3.0]
    assert len(calls) == 3
    assert [r.status for r in received(d365, "enqueue")] == [429, 429, 200]
    assert all(r.body_sha256 == sha256(data) for r in received(d365, "enqueue"))
    assert list(d365.messages) == [result.message_id]
    assert stored_bytes(d365, result.message_id) == data


def test_429_retry_after_as_http_date(
    client: D365Client, d365: Emulator, sleeps: list[float]
) -> None:
    d365.knobs.throttle_burst = 1
    d365.knobs.retry_after = 20
    d365.knobs.retry_after_as_date = True
    assert client.get_message_status(UNKNOWN_MESSAGE).status is MessageStatus.ENQUEUED
    [wait] = sleeps
    assert 17.0 <= wait <= 20.0


def test_429_without_retry_after_waits_the_default(
    client: D365Client, d365: Emulator, sleeps: list[float]
) -> None:
    d365.knobs.throttle_burst = 1
    d365.knobs.retry_after = None
    client.get_message_status(UNKNOWN_MESSAGE)
    assert sleeps == [7.0]


def test_429_after_the_attempts_raises_throttled_with_retry_after(
    client: D365Client, d365: Emulator, sleeps: list[float]
) -> None:
    d365.knobs.throttle_burst = 10
    d365.knobs.retry_after = 2
    d365.knobs.throttle_message = THROTTLE_MESSAGES[2]

    with pytest.raises(D365ThrottledError) as caught:
        client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"x", external_id="x.zip")

    error = caught.value
    assert (error.status_code, error.retry_after, error.attempts) == (429, 2.0, 4)
    assert sleeps == [2.0, 2.0, 2.0]
    assert error.fno_message == THROTTLE_MESSAGES[2]
    assert error.activity_id == fakes.PACKAGE_ACTIVITY_ID
    text = str(error)
    assert "HTTP 429 Too Many Requests after 4 attempts" in text
    assert "Number of concurrent requests exceeded the limit of 52." in text
    assert "asked to retry after 2 s" in text
    assert "max_attempts=4, total_timeout=60 s" in text
    assert "external id x.zip" in text
    assert not d365.messages


def test_retry_after_past_the_budget_ends_at_once(
    client: D365Client, d365: Emulator, sleeps: list[float]
) -> None:
    d365.knobs.throttle_burst = 1
    d365.knobs.retry_after = 300
    with pytest.raises(D365ThrottledError) as caught:
        client.get_message_status(UNKNOWN_MESSAGE)
    assert sleeps == []
    assert (caught.value.retry_after, caught.value.attempts) == (300.0, 1)
    assert "asked to retry after 300 s" in str(caught.value)


def test_budget_counts_the_waits(
    make_client: ClientFactory, d365: Emulator, sleeps: list[float]
) -> None:
    client = make_client(retry=RetryPolicy(max_attempts=10, total_timeout=10.0))
    d365.knobs.throttle_burst = 10
    d365.knobs.retry_after = 4
    with pytest.raises(D365ThrottledError) as caught:
        client.get_message_status(UNKNOWN_MESSAGE)
    assert sleeps == [4.0, 4.0]
    assert caught.value.attempts == 3


def test_503_on_enqueue_is_re_sent(client: D365Client, d365: Emulator, sleeps: list[float]) -> None:
    d365.knobs.error_status = 503
    d365.knobs.error_burst = 1
    d365.knobs.retry_after = None
    data = os.urandom(3000)
    open_body, calls = counting_opener(data)

    result = client.enqueue(fakes.PACKAGE_ACTIVITY_ID, open_body)

    assert len(calls) == 2
    assert sleeps == [7.0]
    assert [r.status for r in received(d365, "enqueue")] == [503, 200]
    assert stored_bytes(d365, result.message_id) == data


@pytest.mark.parametrize("status", [500, 502, 504])
def test_5xx_on_enqueue_is_not_re_sent(
    client: D365Client, d365: Emulator, sleeps: list[float], status: int
) -> None:
    d365.knobs.error_status = status
    d365.knobs.error_burst = 1
    data = b"sent once"

    with pytest.raises(D365ServerError) as caught:
        client.enqueue(fakes.PACKAGE_ACTIVITY_ID, data)

    [request] = received(d365, "enqueue")
    assert (request.status, request.body_sha256) == (status, sha256(data))
    assert sleeps == []
    assert caught.value.status_code == status
    assert caught.value.attempts == 1
    assert "may have taken the file before failing, so it was not re-sent" in str(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_on_a_read_is_retried_with_backoff(
    client: D365Client, d365: Emulator, sleeps: list[float], status: int
) -> None:
    d365.knobs.error_status = status
    d365.knobs.error_burst = 2
    d365.knobs.retry_after = None
    assert client.get_execution_id(UNKNOWN_MESSAGE) is None
    assert len(received(d365, "GetExecutionIdByMessageId")) == 3
    if status == 503:
        assert sleeps == [7.0, 7.0]
    else:
        assert len(sleeps) == 2
        assert 0.0 <= sleeps[0] <= 0.01
        assert 0.0 <= sleeps[1] <= 0.02


def test_5xx_after_the_attempts_raises_server_error(
    client: D365Client, d365: Emulator, sleeps: list[float]
) -> None:
    d365.knobs.error_status = 500
    d365.knobs.error_burst = 10
    with pytest.raises(D365ServerError) as caught:
        client.get_execution_summary_status("Exec-1")
    assert caught.value.attempts == 4
    assert len(sleeps) == 3
    assert "F&O kept failing within the retry budget" in str(caught.value)
    assert caught.value.fno_message == "An error has occurred."


def test_dropped_before_body_on_a_read_is_retried(
    client: D365Client, d365: Emulator, sleeps: list[float]
) -> None:
    d365.knobs.drop_before_body_burst = 2
    assert client.get_message_status(UNKNOWN_MESSAGE).raw == "Enqueued"
    assert [r.status for r in received(d365, "GetMessageStatus")] == [None, None, 200]
    assert len(sleeps) == 2


def test_dropped_after_body_on_a_read_is_retried(client: D365Client, d365: Emulator) -> None:
    d365.knobs.drop_after_body_burst = 1
    assert client.get_execution_errors("Exec-1").errors == ()
    assert len(received(d365, "GetExecutionErrors")) == 2


def test_dropped_after_body_on_enqueue_is_not_re_sent(
    client: D365Client, d365: Emulator, sleeps: list[float]
) -> None:
    d365.knobs.drop_after_body_burst = 1
    data = b"maybe taken"

    with pytest.raises(D365ConnectionError) as caught:
        client.enqueue(fakes.PACKAGE_ACTIVITY_ID, data, external_id="maybe.zip")

    assert caught.value.sent_body is True
    assert len(received(d365, "enqueue")) == 1
    assert sleeps == []
    # F&O did take it: exactly why a blind re-send would have made a duplicate.
    [message] = d365.messages.values()
    assert message.external_id == "maybe.zip"
    text = str(caught.value)
    assert "got no response" in text
    assert "so F&O may have taken it; it was not re-sent" in text


def test_dropped_before_a_small_body_is_indistinguishable_and_not_re_sent(
    client: D365Client, d365: Emulator
) -> None:
    # The whole small body sat in socket buffers before the drop: no proof F&O lacks it.
    d365.knobs.drop_before_body_burst = 1
    with pytest.raises(D365ConnectionError) as caught:
        client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"small")
    assert caught.value.sent_body is True
    assert len(received(d365, "enqueue")) == 1
    assert not d365.messages


def test_dropped_while_sending_a_large_body_is_re_sent_from_a_fresh_stream(
    client: D365Client, d365: Emulator, sleeps: list[float]
) -> None:
    data = os.urandom(24 * 1024 * 1024)
    open_body, calls = counting_opener(data)
    d365.knobs.drop_before_body_burst = 1

    result = client.enqueue(fakes.PACKAGE_ACTIVITY_ID, open_body)

    assert len(calls) == 2
    assert len(sleeps) == 1
    assert [r.status for r in received(d365, "enqueue")] == [None, 200]
    assert stored_bytes(d365, result.message_id) == data


def test_seekable_stream_is_re_sent_from_its_start(
    client: D365Client, d365: Emulator, sleeps: list[float]
) -> None:
    stream = io.BytesIO(b"skip:" + b"retried stream")
    stream.seek(5)
    d365.knobs.throttle_burst = 1
    result = client.enqueue(fakes.PACKAGE_ACTIVITY_ID, stream)
    assert sleeps == [1.0]
    assert [r.body_sha256 for r in received(d365, "enqueue")] == [sha256(b"retried stream")] * 2
    assert stored_bytes(d365, result.message_id) == b"retried stream"


def test_read_timeout_on_a_read_is_retried_then_surfaces(
    make_client: ClientFactory, d365: Emulator, sleeps: list[float]
) -> None:
    client = make_client(read_timeout=0.2)
    d365.knobs.latency_ms = 400
    with pytest.raises(D365ConnectionError) as caught:
        client.get_message_status(UNKNOWN_MESSAGE)
    assert caught.value.attempts == 4
    assert len(sleeps) == 3
    assert "read timed out" in str(caught.value)


def test_read_timeout_on_enqueue_is_not_re_sent(
    make_client: ClientFactory, d365: Emulator, sleeps: list[float]
) -> None:
    client = make_client(read_timeout=0.2)
    d365.knobs.latency_ms = 400
    with pytest.raises(D365ConnectionError) as caught:
        client.enqueue(fakes.PACKAGE_ACTIVITY_ID, b"slow", external_id="slow.zip")
    assert caught.value.sent_body is True
    assert sleeps == []
    # F&O finishes the request after the client gave up: one message, never two.
    deadline = time.monotonic() + 5
    while not d365.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(d365.messages) == 1
    assert len(received(d365, "enqueue")) == 1


def test_connection_refused_is_retried_even_for_enqueue(
    make_client: ClientFactory, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shared.clients.d365")
    client = make_client(base_url=f"https://127.0.0.1:{free_port()}")
    open_body, calls = counting_opener(b"never arrives")

    with pytest.raises(D365ConnectionError) as caught:
        client.enqueue(fakes.PACKAGE_ACTIVITY_ID, open_body)

    assert caught.value.sent_body is False
    assert caught.value.attempts == 4
    assert len(calls) == 4
    assert len(sleeps) == 3
    text = str(caught.value)
    assert "got no response after 4 attempts" in text
    assert "Connection refused" in text
    assert "sending it again is safe" in text
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert warnings[0].startswith("retrying operation=enqueue attempt=1/4 cause=connection failed")


def test_a_back_off_keeps_to_what_retry_after_asked() -> None:
    throttled = D365ThrottledError(
        "throttled", status_code=429, url="https://fno/api", retry_after=90.0
    )
    assert honour_retry_after(timedelta(seconds=30), throttled) == timedelta(seconds=90)
    assert honour_retry_after(timedelta(seconds=120), throttled) == timedelta(seconds=120)
    unasked = D365ThrottledError("throttled", status_code=429, url="https://fno/api")
    assert honour_retry_after(timedelta(seconds=30), unasked) == timedelta(seconds=30)
    assert honour_retry_after(timedelta(seconds=30), OSError("no answer")) == timedelta(seconds=30)
