"""`python -m devtools.host_process`: the app's own host in a process of its own."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from devtools.azurite import Azurite, free_port
from devtools.d365_emulator import Emulator
from tests import fakes

ROOT = Path(__file__).resolve().parents[2]
# tgkill(2): a signal to one thread of a process, as the kernel may pick for a kill(2).
TGKILL = {"x86_64": 234, "aarch64": 131}


def _environment(d365: Emulator, azurite: Azurite, name: str) -> dict[str, str]:
    route = {
        "name": "customers",
        "prefix": "customers/{company}/",
        "activity_id": fakes.CUSTOMERS_ACTIVITY_ID,
        "entity": fakes.CUSTOMERS_ENTITY,
    }
    return os.environ | {
        "D365_BASE_URL": d365.base_url,
        "D365_AUTHORITY_HOST": d365.authority_host,
        "D365_TENANT_ID": fakes.TENANT_ID,
        "D365_CLIENT_ID": fakes.CLIENT_ID,
        "D365_CLIENT_SECRET": fakes.CLIENT_SECRET,
        "D365_ROUTES": json.dumps([route]),
        "IntegrationStorage": azurite.connection_string,
        "INBOUND_CONTAINER": "d365-inbound",
        "POLL_SCHEDULE": "0 0 * * * *",
        "EXPORT_SCHEDULE": "0 0 * * * *",
        "RETENTION_SCHEDULE": "0 0 * * * *",
        "STATUS_TABLE": "s" + name,
        "ARCHIVE_CONTAINER": f"{name}-archive",
        "ERRORS_CONTAINER": f"{name}-errors",
    }


def _host(env: dict[str, str], *options: str) -> subprocess.Popen[str]:
    """``python -m devtools.host_process`` with ``options``, its output read as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "devtools.host_process", *options],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serves_until_sigterm(d365: Emulator, azurite: Azurite, unique_name: str) -> None:
    port = free_port()
    process = _host(_environment(d365, azurite, unique_name), "--http-port", str(port))
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert first_line == f"ready http=http://127.0.0.1:{port}\n", process.communicate()
        listing = requests.get(f"http://127.0.0.1:{port}/api/messages", timeout=30)
        assert (listing.status_code, listing.json()["items"]) == (200, [])
    finally:
        process.terminate()
        _, logs = process.communicate(timeout=60)
    assert process.returncode == 143  # 128 + SIGTERM, after a clean stop
    assert "local host stopped" in logs


def _signal_a_worker_thread(process: subprocess.Popen[str], signum: int) -> None:
    """Send ``signum`` to a thread of ``process`` other than its main thread."""
    threads = Path(f"/proc/{process.pid}/task").iterdir()
    tids = sorted(int(t.name) for t in threads if int(t.name) != process.pid)
    assert tids, "the host runs its loops in threads"
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(TGKILL[platform.machine()], process.pid, tids[0], signum) == 0


def test_a_sigterm_taken_by_another_thread_still_stops_the_host(
    d365: Emulator, azurite: Azurite, unique_name: str
) -> None:
    env = _environment(d365, azurite, unique_name)
    process = _host(env, "--http-port", "0", "--poll-blobs")
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("ready http="), process.communicate()
        time.sleep(1)  # the main thread logs one line after "ready", then waits
        _signal_a_worker_thread(process, signal.SIGTERM)
        _, logs = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 143
    assert "local host stopped" in logs


def test_needs_the_storage_connection() -> None:
    environ = {k: v for k, v in os.environ.items() if k != "IntegrationStorage"}
    result = subprocess.run(
        [sys.executable, "-m", "devtools.host_process"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        "IntegrationStorage is not set: the host needs the storage connection string"
    )
