"""`python -m devtools.host_process`: the app's own host in a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from devtools.azurite import Azurite, free_port
from devtools.d365_emulator import Emulator
from tests import fakes

ROOT = Path(__file__).resolve().parents[2]


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


def test_serves_until_sigterm(d365: Emulator, azurite: Azurite, unique_name: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.host_process", "--http-port", str(port)],
        cwd=ROOT,
        env=_environment(d365, azurite, unique_name),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
