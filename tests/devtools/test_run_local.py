"""`run_local --services-only`: the recipe for `func start` against Azurite and the emulator.

Core Tools cannot run here, so the tests check everything `func start` relies on: the services
answer where ``local.settings.example.json`` points, the printed CA bundle lets a real
azure-identity credential get its token, and the app's settings accept that file's ``Values``.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import certifi
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.storage.blob import BlobServiceClient

from devtools import run_local
from devtools.azurite import connection_string, free_port
from shared.config import Settings
from shared.context import d365_credential

EXAMPLE_VALUES: dict[str, str] = json.loads(
    (run_local.REPO_ROOT / "local.settings.example.json").read_text(encoding="utf-8")
)["Values"]
STARTUP_TIMEOUT = 60.0


@dataclass
class Services:
    """A running ``--services-only`` and what it printed up to its last recipe line."""

    process: subprocess.Popen[str]
    lines: list[str]
    overrides: dict[str, str]
    ca_bundle: Path


def _read_until(lines: queue.Queue[str | None], last: str) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not seen or seen[-1] != last:
        line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
        assert line is not None, "run_local exited early:\n" + "\n".join(seen)
        seen.append(line.rstrip("\n"))
    return seen


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """``--services-only`` on free ports; everything else as local.settings.example.json says."""
    storage = connection_string(free_port(), free_port(), free_port())
    d365 = f"https://127.0.0.1:{free_port()}"
    overrides = {
        "IntegrationStorage": storage,
        "AzureWebJobsStorage": storage,
        "D365_BASE_URL": d365,
        "D365_AUTHORITY_HOST": d365,
    }
    bundle = tmp_path / "ca-bundle.pem"
    environ = {
        k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.run_local",
            "--services-only",
            "--azurite-location",
            str(tmp_path / "azurite"),
            "--log-dir",
            str(tmp_path / "logs"),
            "--ca-bundle",
            str(bundle),
        ],
        cwd=run_local.REPO_ROOT,
        env={**environ, **overrides},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    stdout = process.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        printed = _read_until(lines, "Ctrl-C stops the services")
        yield Services(process, printed, overrides, bundle)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_services_only_prints_the_func_start_recipe(services: Services) -> None:
    bundle = services.ca_bundle
    text = "\n".join(services.lines)
    # Three import jobs and the export job of the example settings, one export waiting on it.
    assert f"D365 emulator: {services.overrides['D365_BASE_URL']} (jobs: 4)" in text
    assert "queued for customers-out -> d365-exports/customers/{company}/{date}/" in text
    assert f"CA bundle (public CAs + the emulator's): {bundle}" in text
    assert f"{run_local.SERVICES_READY}; in another shell, from {run_local.REPO_ROOT}:" in text
    assert f"  REQUESTS_CA_BUNDLE={bundle} SSL_CERT_FILE={bundle} func start" in text
    # The settings that this test overrides are named, their values are not.
    names = ", ".join(sorted(services.overrides))
    assert f"this shell sets {names} over local.settings.example.json" in text
    assert services.overrides["IntegrationStorage"] not in text
    assert "local Functions host" not in text
    # The public CAs stay trusted (the host downloads its extension bundle through them).
    assert bundle.read_text(encoding="utf-8").startswith(
        Path(certifi.where()).read_text(encoding="utf-8")
    )


def test_azurite_answers_with_the_inbound_container(services: Services) -> None:
    storage = services.overrides["IntegrationStorage"]
    with BlobServiceClient.from_connection_string(storage) as service:
        container = service.get_container_client(EXAMPLE_VALUES["INBOUND_CONTAINER"])
        assert container.exists()


def test_the_printed_ca_bundle_gets_a_token_with_the_example_settings(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env({**EXAMPLE_VALUES, **services.overrides})
    scope = settings.d365.scope

    # What `func start` hands the worker: the printed bundle in both variables.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(services.ca_bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(services.ca_bundle))
    credential = d365_credential(settings)
    with credential:
        token = credential.get_token(scope)
    payload = token.token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == services.overrides["D365_BASE_URL"]

    # Without the emulator's CA the same request fails: the bundle is what makes it work.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    with (
        d365_credential(settings) as untrusting,
        pytest.raises(ClientAuthenticationError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        untrusting.get_token(scope)


def test_the_app_settings_accept_the_example_values_as_func_start_loads_them() -> None:
    settings = Settings.from_env(EXAMPLE_VALUES, app_root=run_local.REPO_ROOT)
    assert settings.d365.base_url.rstrip("/") == EXAMPLE_VALUES["D365_BASE_URL"]
    assert run_local.local_storage_ports(EXAMPLE_VALUES["IntegrationStorage"]) == (
        10000,
        10001,
        10002,
    )
    assert [route.name for route in settings.routes] == [
        "customers",
        "general-journal",
        "packages-usmf",
    ]


def _commands(task: dict) -> list[str]:
    """A task's command, or its command for each OS."""
    if "command" in task:
        return [task["command"]]
    return [task[os_name]["command"] for os_name in ("linux", "osx", "windows")]


def test_vscode_tasks_and_readme_follow_the_same_recipe() -> None:
    tasks = json.loads(
        (run_local.REPO_ROOT / ".vscode" / "tasks.json").read_text(encoding="utf-8")
    )["tasks"]
    by_label = {task["label"]: task for task in tasks}
    host = by_label["func: host start"]
    (services_label,) = [
        label
        for label in host["dependsOn"]
        if any("--services-only" in command for command in _commands(by_label[label]))
    ]
    service_task = by_label[services_label]
    commands = _commands(service_task)
    assert len(commands) == 3  # one per OS (a POSIX path fails on Windows)
    assert all(c.endswith("-m devtools.run_local --services-only") for c in commands)
    assert service_task["isBackground"] is True
    background = service_task["problemMatcher"]["background"]
    assert background["endsPattern"] == f"^{run_local.SERVICES_READY}"
    bundle = "${workspaceFolder}/" + run_local.CA_BUNDLE.relative_to(run_local.REPO_ROOT).as_posix()
    assert host["options"]["env"] == {"REQUESTS_CA_BUNDLE": bundle, "SSL_CERT_FILE": bundle}

    readme = (run_local.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "python -m devtools.run_local --services-only" in readme
    relative = run_local.CA_BUNDLE.relative_to(run_local.REPO_ROOT)
    assert run_local.func_start_command(relative) in readme


def test_make_run_plays_app_service_authentication_with_http_auth_entra(tmp_path: Path) -> None:
    """The demo runs to the end behind the local sign-in: Event Grid reaches the excluded
    webhook, the status reads go as a program with the operator role."""
    storage = connection_string(free_port(), free_port(), free_port())
    d365 = f"https://127.0.0.1:{free_port()}"
    environ = {
        k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
    }
    environ |= {
        "IntegrationStorage": storage,
        "AzureWebJobsStorage": storage,
        "D365_BASE_URL": d365,
        "D365_AUTHORITY_HOST": d365,
        "HTTP_AUTH": "entra",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "devtools.run_local",
            *("--exit-when-done", "--timeout", "120", "--port", "0"),
            *("--azurite-location", str(tmp_path / "azurite"), "--log-dir", str(tmp_path)),
            *("--ca-bundle", str(tmp_path / "ca-bundle.pem")),
        ],
        cwd=run_local.REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "sign-in: HTTP_AUTH=entra, App Service authentication played locally" in done.stdout
    assert "Riya Reader (Integration.Reader)" in done.stdout
    assert "ProcessedWithErrors" in done.stdout
