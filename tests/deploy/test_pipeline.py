"""azure-pipelines.yml: its structure, and its deploy scripts run with bash against a stand-in
for the Azure CLI (no Azure here) and, for the smoke test, a real HTTPS server on loopback."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from tests import fakes

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE_TEXT = (REPO_ROOT / "azure-pipelines.yml").read_text(encoding="utf-8")
PIPELINE = yaml.safe_load(PIPELINE_TEXT)
FAKE_FUNCTION_KEY = "fake-function-key-not-real"
ROUTES = json.dumps(
    [
        {
            "name": "customers",
            "prefix": "customers/{company}/",
            "activity_id": fakes.CUSTOMERS_ACTIVITY_ID,
            "entity": fakes.CUSTOMERS_ENTITY,
        }
    ]
)
# Answers of the Azure CLI stand-in; it logs its argv and the files given as @file.
AZ_STUB = """#!/bin/bash
printf '%s\\n' "$*" >> "$AZ_LOG"
for arg in "$@"; do
  case "$arg" in @*) cat "${arg#@}" >> "$AZ_FILES"; printf '\\n' >> "$AZ_FILES";; esac
done
case "$1 $2 $3" in
  "deployment group create")
    echo '{"functionAppName": {"type": "String", "value": "func-fake"},'
    echo ' "functionAppHostName": {"type": "String", "value": "func-fake.azurewebsites.net"}}';;
  "functionapp keys list")
    case "$*" in
      *"!= null"*) echo true;;
      *functionKeys.default*) echo "$FAKE_FUNCTION_KEY";;
    esac;;
esac
"""


def _stages() -> dict[str, dict[str, Any]]:
    return {stage["stage"]: stage for stage in PIPELINE["stages"]}


def _steps(stage: str) -> list[dict[str, Any]]:
    job = _stages()[stage]["jobs"][0]
    if "strategy" in job:
        return job["strategy"]["runOnce"]["deploy"]["steps"]
    return job["steps"]


def _deploy_step(display_name_start: str) -> dict[str, Any]:
    return next(
        step
        for step in _steps("Deploy")
        if step.get("displayName", "").startswith(display_name_start)
    )


@dataclass
class ScriptRun:
    """One run of a pipeline script: its result and what the Azure CLI stand-in saw."""

    result: subprocess.CompletedProcess[str]
    az_calls: list[str]
    az_files: str
    temp: Path


@dataclass
class Workspace:
    """A folder with the stand-in tools on PATH and an agent temp folder."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, step: dict[str, Any], **env: str) -> ScriptRun:
        """Run the step's inline script with bash, the step's env names filled from ``env``."""
        log, files, temp = self.root / "az.log", self.root / "az.files", self.root / "agent-temp"
        for path in (log, files):
            path.write_text("", encoding="utf-8")
        temp.mkdir(exist_ok=True)
        environ = {
            "PATH": f"{self.root / 'bin'}:/usr/bin:/bin",
            "AZ_LOG": str(log),
            "AZ_FILES": str(files),
            "FAKE_FUNCTION_KEY": FAKE_FUNCTION_KEY,
            "AGENT_TEMPDIRECTORY": str(temp),
            "BUILD_BUILDID": "42",
            "PIPELINE_WORKSPACE": str(self.root / "pipeline"),
            **self.env,
            **env,
        }
        result = subprocess.run(
            ["bash", "-c", step["inputs"]["inlineScript"]],
            env=environ,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        return ScriptRun(
            result,
            log.read_text(encoding="utf-8").splitlines(),
            files.read_text(encoding="utf-8"),
            temp,
        )


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """Stand-ins for `az` and `sleep` (the retry loops must not wait in tests)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("az", AZ_STUB), ("sleep", "#!/bin/sh\nexit 0\n")):
        (bin_dir / name).write_text(body, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    return Workspace(tmp_path)


PHASE_ONE_ENV = {
    "RESOURCE_GROUP": "rg-fake",
    "LOCATION": "westeurope",
    "NAME_PREFIX": "d365fake",
    "PYTHON_VERSION": "3.12",
    "D365_BASE_URL": "https://fno.localhost.operations.dynamics.com",
    "D365_AUTH_MODE": "secret",
    "D365_TENANT_ID": fakes.TENANT_ID,
    "D365_CLIENT_ID": fakes.CLIENT_ID,
    "D365_ROUTES": ROUTES,
    "D365_CLIENT_SECRET": fakes.CLIENT_SECRET,
}


def test_pipeline_has_build_package_and_deploy_stages_in_order() -> None:
    stages = PIPELINE["stages"]
    assert [stage["stage"] for stage in stages] == ["Build", "Package", "Deploy"]
    assert stages[1]["dependsOn"] == "Build"
    assert stages[2]["dependsOn"] == "Package"
    assert "refs/heads/main" in stages[2]["condition"]
    assert PIPELINE["variables"]["pythonVersion"] == "3.12"


def test_build_stage_runs_the_make_test_gates_and_publishes_results() -> None:
    steps = _steps("Build")
    tasks = [step.get("task") for step in steps]
    assert tasks[:2] == ["UsePythonVersion@0", "NodeTool@0"]
    assert steps[0]["inputs"]["versionSpec"] == "$(pythonVersion)"
    assert PIPELINE["variables"]["nodeVersion"] == "20.x"
    scripts = [step.get("script", "") for step in steps]
    assert "make install PYTHON=python" in scripts
    assert "make lint" in scripts
    assert any("-m pytest" in line and "--junitxml" in line for line in scripts)
    publish = next(step for step in steps if step.get("task") == "PublishTestResults@2")
    assert publish["condition"] == "succeededOrFailed()"
    assert publish["inputs"]["testResultsFormat"] == "JUnit"


def test_package_stage_calls_the_package_script_and_publishes_the_zip() -> None:
    steps = _steps("Package")
    command = " ".join(step.get("script", "") for step in steps)
    output = r"--output \"\$\(Build.ArtifactStagingDirectory\)/app.zip\""
    assert re.search(
        rf"python scripts/build_package.py\s+{output}\s+--python-version \$\(pythonVersion\)",
        command,
    )
    published = {step["artifact"]: step["publish"] for step in steps if "publish" in step}
    assert published == {"app": "$(Build.ArtifactStagingDirectory)/app.zip", "infra": "infra"}


def test_deploy_runs_infra_code_event_grid_then_smoke_test() -> None:
    steps = [step for step in _steps("Deploy") if "task" in step]
    assert [step["task"] for step in steps] == [
        "AzureCLI@2",
        "AzureFunctionApp@2",
        "AzureCLI@2",
        "AzureCLI@2",
    ]
    phase1, code, phase2, smoke = steps
    assert "deployEventSubscription=false" in phase1["inputs"]["inlineScript"]
    assert code["inputs"]["isFlexConsumption"] is True
    assert code["inputs"]["appType"] == "functionAppLinux"
    assert code["inputs"]["package"] == "$(Pipeline.Workspace)/app/app.zip"
    assert code["inputs"]["appName"] == "$(functionAppName)"
    assert "deployEventSubscription=true" in phase2["inputs"]["inlineScript"]
    assert "/api/health" in smoke["inputs"]["inlineScript"]
    for step in (phase1, phase2, smoke):
        assert step["inputs"]["azureSubscription"] == "${{ variables.serviceConnection }}"
        assert step["inputs"]["scriptType"] == "bash"


def test_every_variable_is_documented_and_the_secret_is_not_defined_here() -> None:
    header = PIPELINE_TEXT.split("\ntrigger:", 1)[0]
    for name in PIPELINE["variables"]:
        assert re.search(rf"^#\s+{name}\s", header, re.MULTILINE), f"{name} is not documented"
    assert re.search(r"^#\s+d365ClientSecret\s+SECRET variable", header, re.MULTILINE)
    assert "d365ClientSecret" not in PIPELINE["variables"]
    # A secret variable reaches a script only through an explicit env mapping.
    assert PIPELINE_TEXT.count("$(d365ClientSecret)") == 1
    assert "D365_CLIENT_SECRET: $(d365ClientSecret)" in PIPELINE_TEXT


@pytest.mark.parametrize(
    "step",
    [step for step in _steps("Deploy") if "inlineScript" in step.get("inputs", {})],
    ids=lambda step: step["displayName"],
)
def test_inline_scripts_are_valid_bash(step: dict[str, Any]) -> None:
    result = subprocess.run(
        ["bash", "-n"],
        input=step["inputs"]["inlineScript"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_phase_one_passes_routes_verbatim_and_the_secret_only_in_a_file(
    workspace: Workspace,
) -> None:
    run = workspace.run(_deploy_step("Infrastructure, phase 1"), **PHASE_ONE_ENV)

    assert run.result.returncode == 0, run.result.stderr
    parameters = json.loads((run.temp / "deploy.parameters.json").read_text(encoding="utf-8"))
    assert parameters["parameters"]["d365Routes"]["value"] == ROUTES
    assert parameters["parameters"]["namePrefix"]["value"] == "d365fake"
    assert fakes.CLIENT_SECRET not in json.dumps(parameters)
    deploy = next(call for call in run.az_calls if call.startswith("deployment group create"))
    assert "--parameters deployEventSubscription=false" in deploy
    assert "--name d365-phase1-42" in deploy
    assert all(fakes.CLIENT_SECRET not in call for call in run.az_calls)
    assert f'"d365ClientSecret": {{"value": "{fakes.CLIENT_SECRET}"}}' in run.az_files
    assert not (run.temp / "deploy.secret.json").exists()
    assert "##vso[task.setvariable variable=functionAppName]func-fake" in run.result.stdout
    assert (
        "##vso[task.setvariable variable=functionAppHostName]func-fake.azurewebsites.net"
        in run.result.stdout
    )


def test_phase_one_keeps_the_vault_secret_when_the_variable_is_undefined(
    workspace: Workspace,
) -> None:
    # Azure Pipelines leaves an undefined variable's macro as it is.
    env = {**PHASE_ONE_ENV, "D365_CLIENT_SECRET": "$(d365ClientSecret)"}
    run = workspace.run(_deploy_step("Infrastructure, phase 1"), **env)

    assert run.result.returncode == 0, run.result.stderr
    assert "d365ClientSecret" not in run.az_files
    deploy = next(call for call in run.az_calls if call.startswith("deployment group create"))
    assert deploy.count("--parameters @") == 1


@pytest.mark.parametrize("variable", ["D365_TENANT_ID", "D365_BASE_URL", "D365_ROUTES"])
def test_phase_one_refuses_placeholders(workspace: Workspace, variable: str) -> None:
    env = {**PHASE_ONE_ENV, variable: "<set me>"}
    run = workspace.run(_deploy_step("Infrastructure, phase 1"), **env)

    assert run.result.returncode == 1
    assert f"{variable} still holds a placeholder" in run.result.stdout
    assert run.az_calls == []


def test_phase_one_needs_no_client_id_with_managed_identity(workspace: Workspace) -> None:
    env = {**PHASE_ONE_ENV, "D365_AUTH_MODE": "managedIdentity", "D365_CLIENT_ID": "<unused>"}
    run = workspace.run(_deploy_step("Infrastructure, phase 1"), **env)

    assert run.result.returncode == 0, run.result.stdout


def test_phase_two_checks_for_the_key_without_reading_it(workspace: Workspace) -> None:
    run = workspace.run(
        _deploy_step("Infrastructure, phase 2"),
        RESOURCE_GROUP="rg-fake",
        FUNCTION_APP="func-fake",
        FUNCTION_HOST="127.0.0.1:9",
    )

    assert run.result.returncode == 0, run.result.stderr
    key_calls = [call for call in run.az_calls if call.startswith("functionapp keys list")]
    assert key_calls and all("systemKeys.blobs_extension != null" in call for call in key_calls)
    deploy = next(call for call in run.az_calls if call.startswith("deployment group create"))
    assert "--parameters deployEventSubscription=true" in deploy
    assert "deploy.parameters.json" in deploy


class _HealthServer:
    """An HTTPS server on loopback answering /api/health like the app does."""

    def __init__(self, ca: trustme.CA, body: dict[str, Any], status: int) -> None:
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append((self.path, self.headers.get("x-functions-key")))
                authorised = self.headers.get("x-functions-key") == FAKE_FUNCTION_KEY
                payload = json.dumps(body if authorised else {"error": "unauthorised"}).encode()
                self.send_response(status if authorised else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        """host:port for the script's FUNCTION_HOST."""
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> _HealthServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[tuple[trustme.CA, Path]]:
    """A throwaway CA and its PEM file for curl."""
    authority = trustme.CA()
    pem = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    yield authority, pem


def _run_smoke(workspace: Workspace, server: _HealthServer, ca_file: Path) -> ScriptRun:
    return workspace.run(
        _deploy_step("Smoke test"),
        RESOURCE_GROUP="rg-fake",
        FUNCTION_APP="func-fake",
        FUNCTION_HOST=server.host,
        CURL_CA_BUNDLE=str(ca_file),
    )


def _lines_with_key(text: str) -> list[str]:
    return [line for line in text.splitlines() if FAKE_FUNCTION_KEY in line]


def test_smoke_test_passes_on_healthy_and_keeps_the_key_out_of_urls_and_logs(
    workspace: Workspace, ca: tuple[trustme.CA, Path]
) -> None:
    authority, pem = ca
    body = {"healthy": True, "checks": {"settings": {"ok": True}}}
    with _HealthServer(authority, body, 200) as server:
        run = _run_smoke(workspace, server, pem)

    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert server.requests == [("/api/health", FAKE_FUNCTION_KEY)]
    assert "Healthy:" in run.result.stdout
    # The only line holding the key is the command that tells the agent to mask it.
    assert _lines_with_key(run.result.stdout) == [f"##vso[task.setsecret]{FAKE_FUNCTION_KEY}"]
    assert _lines_with_key(run.result.stderr) == []


def test_smoke_test_fails_the_stage_unless_healthy(
    workspace: Workspace, ca: tuple[trustme.CA, Path]
) -> None:
    authority, pem = ca
    body = {"healthy": False, "checks": {"d365_token": {"ok": False, "error": "ClientAuthError"}}}
    with _HealthServer(authority, body, 503) as server:
        run = _run_smoke(workspace, server, pem)

    assert run.result.returncode == 1
    assert len(server.requests) == 10
    assert "Attempt 10/10: HTTP 503" in run.result.stdout
    assert "did not report healthy" in run.result.stdout
    assert _lines_with_key(run.result.stdout) == [f"##vso[task.setsecret]{FAKE_FUNCTION_KEY}"]
