"""`python -m devtools.d365_emulator`: the standalone emulator from its example jobs file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import requests

from devtools.d365_emulator._config import load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "devtools" / "d365_emulator" / "jobs.example.json"


def test_example_jobs_file_loads() -> None:
    config = load_config(EXAMPLE)

    assert config.tenant_id == "faketenant"
    assert [job.entity for job in config.jobs] == [
        "CustomersV3",
        "General journal",
        "",
        "CustomersV3",
    ]
    assert all(job.allowed_client_ids == (config.apps[0].client_id,) for job in config.jobs)


def test_cli_serves_https_with_its_ca_and_stops_on_sigterm(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    command = [
        sys.executable,
        "-m",
        "devtools.d365_emulator",
        "--port",
        "0",
        "--ca-file",
        str(ca_file),
        "--state-seconds",
        "0",
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=EXAMPLE.parents[2],
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Ctrl+C"):
                break
        base_url = lines[0].split()[-1]
        response = requests.get(
            f"{base_url}/faketenant/v2.0/.well-known/openid-configuration",
            verify=str(ca_file),
            timeout=10,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=10)

    assert base_url.startswith("https://127.0.0.1:")
    assert response.status_code == 200
    assert json.loads(response.text)["token_endpoint"] == (
        f"{base_url}/faketenant/oauth2/v2.0/token"
    )
    assert any("00000000-0000-0000-0000-00000000a001  CustomersV3" in line for line in lines)
    assert returncode == 0
