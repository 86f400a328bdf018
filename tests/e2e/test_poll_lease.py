"""The poll lease of a tick: kept by a live tick as long as it runs, let go within a minute when
its host process dies mid-tick (before: POLL_TICK_BUDGET + D365_HTTP_TIMEOUT + 30 s)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError

from devtools.d365_emulator import Emulator
from shared.flows.policies import PollPolicy
from shared.tracking import utcnow
from tests.e2e.conftest import App, host_process

# The poll of the first tick hangs this long in F&O: longer than a lease span.
HANG_SECONDS = 60


def _holder(app: App) -> str | None:
    table = app.tables.get_table_client(app.env["STATUS_TABLE"])
    try:
        row = table.get_entity("files", "~lease-poller")
    except ResourceNotFoundError:
        return None  # no tick yet
    return str(row["holder"]) if row["until"] > utcnow() else None


def _wait_for(condition: Callable[[], bool], seconds: float) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds
        time.sleep(0.2)
    return time.monotonic() - started


def _holds(app: App, process: subprocess.Popen[bytes]) -> bool:
    holder = _holder(app)
    return holder is not None and f":{process.pid}:" in holder


@pytest.mark.timeout(300)
def test_a_killed_tick_lets_the_next_one_poll_within_a_minute_a_live_one_keeps_its_lease(
    app: App, d365: Emulator, tmp_path: Path
) -> None:
    span = PollPolicy().lease_span.total_seconds()
    old_bound = 4 * 60 + 300 + 30  # POLL_TICK_BUDGET + D365_HTTP_TIMEOUT + 30 s, the defaults
    blob = app.upload("customers/USMF/lease.xml", b"<Customers/>")
    app.deliver()
    assert app.record(blob)["state"] == "Enqueued"
    d365.knobs.latency_ms = HANG_SECONDS * 1000  # every F&O call from now on hangs
    env = {**os.environ, **app.env}
    first = host_process(env, tmp_path / "first.log")
    second: subprocess.Popen[bytes] | None = None
    try:
        _wait_for(lambda: _holds(app, first), 30)
        second = host_process(env, tmp_path / "second.log")
        # The first tick is stuck in its poll for longer than a span: renewed, kept.
        time.sleep(span + 5)
        assert _holds(app, first), _holder(app)
        assert b"another tick holds the poll lease" in (tmp_path / "second.log").read_bytes()

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        taken_after = _wait_for(lambda: second is not None and _holds(app, second), 90)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()  # a clean stop would wait for the hanging poll
                process.wait(timeout=30)

    # Within the span (the renewal before the kill may have just landed), plus a timer period.
    assert taken_after <= span + 5, taken_after
    assert taken_after < old_bound / 10
