"""azure-pipelines.yml and its templates: structure, variables, and the deployment scripts run
with bash in pipeline order against a stand-in for the Azure CLI (no Azure here) and, for the
smoke test, a real HTTPS server on loopback."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import trustme
import yaml

from tests import fakes

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE_TEXT = (REPO_ROOT / "azure-pipelines.yml").read_text(encoding="utf-8")
PIPELINE = yaml.safe_load(PIPELINE_TEXT)
TEMPLATES = REPO_ROOT / "scripts" / "pipeline"
DEPLOY_STAGE = yaml.safe_load((TEMPLATES / "deploy-stage.yml").read_text(encoding="utf-8"))
VALIDATE_STEPS = yaml.safe_load((TEMPLATES / "validate-steps.yml").read_text(encoding="utf-8"))
SCRIPTS = REPO_ROOT / "scripts" / "deploy"
SCHEMA = json.loads(
    (Path(__file__).parent / "schema" / "azure-pipelines-service-schema.json").read_text(
        encoding="utf-8"
    )
)
ENVIRONMENTS = ("dev", "test", "prod")
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
# The Azure CLI stand-in: logs its argv and the files given as @file; AZ_FAIL makes the
# calls starting with that text fail.
AZ_STUB = """#!/bin/bash
printf '%s\\n' "$*" >> "$AZ_LOG"
for arg in "$@"; do
  case "$arg" in @*) cat "${arg#@}" >> "$AZ_FILES"; printf '\\n' >> "$AZ_FILES";; esac
done
all="$*"
if [ -n "${AZ_FAIL:-}" ] && [ "${all#"$AZ_FAIL"}" != "$all" ]; then
  echo "stand-in failure: $*" >&2; exit 1
fi
case "$1 $2 $3" in
  "group exists "*) echo "${AZ_GROUP_EXISTS:-true}";;
  "deployment group create")
    case "$*" in
      *main.bicep*)
        echo '{"functionAppName": {"type": "String", "value": "func-fake"},'
        echo ' "functionAppHostName": {"type": "String", "value": "func-fake.azurewebsites.net"},'
        echo ' "systemTopicName": {"type": "String", "value": "evgt-fake"},'
        echo ' "storageAccountName": {"type": "String", "value": "stfake"},'
        echo ' "inboundContainerName": {"type": "String", "value": "d365-inbound"},'
        echo ' "deadLetterContainerName":'
        echo '   {"type": "String", "value": "d365-eventgrid-deadletter"}}';;
    esac;;
  "functionapp keys list")
    case "$*" in
      *"!= null"*) echo true;;
      *functionKeys.default*) echo "$FAKE_FUNCTION_KEY";;
    esac;;
esac
"""
GROUP_ENV = {
    "RESOURCE_GROUP": "rg-fake",
    "LOCATION": "westeurope",
    "NAME_PREFIX": "d365fake",
    "PYTHON_VERSION": "3.12",
    "D365_BASE_URL": "https://fno.localhost.operations.dynamics.com",
    "D365_AUTH_MODE": "secret",
    "D365_TENANT_ID": fakes.TENANT_ID,
    "D365_CLIENT_ID": fakes.CLIENT_ID,
    "D365_ROUTES": ROUTES,
    # Optional entries left out of the group reach the script as their macro text.
    "KEY_VAULT_NAME": "$(keyVaultName)",
    "VNET_ENABLED": "$(vnetEnabled)",
}
# What phase 1 hands to the later steps of the job (##vso setvariable), as their env maps them.
PHASE_TWO_ENV = {
    "RESOURCE_GROUP": "rg-fake",
    "DEPLOYMENT_NAME": "d365-phase2-42",
    "FUNCTION_APP": "func-fake",
    "FUNCTION_HOST": "127.0.0.1:9",
    "SYSTEM_TOPIC": "evgt-fake",
    "STORAGE_ACCOUNT": "stfake",
    "INBOUND_CONTAINER": "d365-inbound",
    "DEAD_LETTER_CONTAINER": "d365-eventgrid-deadletter",
}


def _stages() -> dict[str, dict[str, Any]]:
    """The stages after template expansion: Build, then one Deploy stage per environment."""
    stages: dict[str, dict[str, Any]] = {}
    for entry in PIPELINE["stages"]:
        if "template" in entry:
            assert entry["template"] == "scripts/pipeline/deploy-stage.yml"
            stage = _expand(DEPLOY_STAGE["stages"][0], entry["parameters"])
            stages[stage["stage"]] = stage
        else:
            stages[entry["stage"]] = entry
    return stages


def _expand(node: Any, parameters: dict[str, str]) -> Any:
    """``${{ parameters.x }}`` replaced, as Azure Pipelines does when it compiles templates."""
    if isinstance(node, dict):
        return {_expand(key, parameters): _expand(value, parameters) for key, value in node.items()}
    if isinstance(node, list):
        return [_expand(item, parameters) for item in node]
    if isinstance(node, str):
        return re.sub(r"\$\{\{ parameters\.(\w+) \}\}", lambda m: parameters[m.group(1)], node)
    return node


def _deploy_steps(environment: str) -> list[dict[str, Any]]:
    job = _stages()[f"Deploy_{environment}"]["jobs"][0]
    return job["strategy"]["runOnce"]["deploy"]["steps"]


def _deploy_step(environment: str, display_name_start: str) -> dict[str, Any]:
    return next(
        step
        for step in _deploy_steps(environment)
        if step.get("displayName", "").startswith(display_name_start)
    )


def _build_jobs() -> dict[str, dict[str, Any]]:
    return {job["job"]: job for job in _stages()["Build"]["jobs"]}


@dataclass
class ScriptRun:
    """One run of a pipeline script: its result and what the Azure CLI stand-in saw."""

    result: subprocess.CompletedProcess[str]
    az_calls: list[str]
    az_files: str
    temp: Path


class Workspace:
    """A folder with the stand-in tools on PATH, an agent temp folder and one az log for all
    the scripts of a simulated run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root / "az.log"
        self.files = root / "az.files"
        self.temp = root / "agent-temp"
        self.temp.mkdir()
        for path in (self.log, self.files):
            path.write_text("", encoding="utf-8")

    def run(self, script: str, **env: str) -> ScriptRun:
        """Run ``scripts/deploy/<script>`` with bash, as AzureCLI@2 (scriptType bash) does."""
        start = len(self.log.read_text(encoding="utf-8").splitlines())
        environ = {
            "PATH": f"{self.root / 'bin'}:/usr/bin:/bin",
            "AZ_LOG": str(self.log),
            "AZ_FILES": str(self.files),
            "FAKE_FUNCTION_KEY": FAKE_FUNCTION_KEY,
            "AGENT_TEMPDIRECTORY": str(self.temp),
            "BUILD_BUILDID": "42",
            "INFRA_DIR": str(REPO_ROOT / "infra"),
            **env,
        }
        result = subprocess.run(
            ["bash", str(SCRIPTS / script)],
            env=environ,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        return ScriptRun(
            result,
            self.log.read_text(encoding="utf-8").splitlines()[start:],
            self.files.read_text(encoding="utf-8"),
            self.temp,
        )

    def all_calls(self) -> list[str]:
        """Every az call of every script run so far, in order."""
        return self.log.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """Stand-ins for `az` and `sleep` (the retry loops must not wait in tests)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("az", AZ_STUB), ("sleep", "#!/bin/sh\nexit 0\n")):
        (bin_dir / name).write_text(body, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    return Workspace(tmp_path)


# --- schema and structure ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "azure-pipelines.yml",
        *(f"scripts/pipeline/{p.name}" for p in sorted(TEMPLATES.glob("*.yml"))),
    ],
)
def test_pipeline_files_validate_against_the_azure_pipelines_schema(path: str) -> None:
    document = yaml.safe_load((REPO_ROOT / path).read_text(encoding="utf-8"))
    errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(document))
    assert errors == [], [error.message[:300] for error in errors]


def test_the_schema_checks_task_inputs() -> None:
    document = yaml.safe_load(PIPELINE_TEXT)
    document["stages"][0]["jobs"][0]["steps"][0]["inputs"]["versionSpecc"] = "3.12"
    assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors(document))


def test_stages_are_build_then_dev_test_prod_each_after_the_previous() -> None:
    stages = _stages()
    assert list(stages) == ["Build", "Deploy_dev", "Deploy_test", "Deploy_prod"]
    assert [stages[f"Deploy_{env}"]["dependsOn"] for env in ENVIRONMENTS] == [
        "Build",
        "Deploy_dev",
        "Deploy_test",
    ]
    for env in ENVIRONMENTS:
        condition = stages[f"Deploy_{env}"]["condition"]
        # No deploy stage runs unless the stage before it (and so Build) succeeded.
        assert condition.startswith("and(succeeded(), ")
        assert "eq(variables['Build.SourceBranch'], 'refs/heads/main')" in condition


def test_each_deploy_stage_is_bound_to_its_environment_and_variable_group() -> None:
    for env in ENVIRONMENTS:
        stage = _stages()[f"Deploy_{env}"]
        assert stage["variables"] == [{"group": f"d365-integration-{env}"}]
        job = stage["jobs"][0]
        assert job["deployment"] == "deploy"
        assert job["environment"] == f"d365-integration-{env}"
        for step in _deploy_steps(env):
            inputs = step.get("inputs", {})
            connection = inputs.get("azureSubscription") or inputs.get("connectedServiceNameARM")
            if connection:
                assert connection == f"sc-d365-integration-{env}"


def test_build_stage_lints_validates_tests_and_packages() -> None:
    jobs = _build_jobs()
    assert set(jobs) == {"test", "package", "bicep", *(f"validate_{env}" for env in ENVIRONMENTS)}
    lint = jobs["bicep"]["steps"][0]
    assert lint["script"] == "bash scripts/deploy/bicep-lint.sh"
    for env in ENVIRONMENTS:
        job = jobs[f"validate_{env}"]
        assert job["dependsOn"] == "bicep"
        assert job["variables"] == [{"group": f"d365-integration-{env}"}]
        (step,) = job["steps"]
        assert step["template"] == "scripts/pipeline/validate-steps.yml"
        assert step["parameters"]["serviceConnection"] == f"sc-d365-integration-{env}"
    (validate,) = VALIDATE_STEPS["steps"]
    assert validate["inputs"]["scriptPath"] == "scripts/deploy/validate.sh"
    scripts = [step.get("script", "") for step in jobs["test"]["steps"]]
    assert "make install PYTHON=python" in scripts
    assert "make lint" in scripts
    assert any("-m pytest" in line and "--junitxml" in line for line in scripts)
    package = " ".join(step.get("script", "") for step in jobs["package"]["steps"])
    assert re.search(
        r"python scripts/build_package.py\s+"
        r"--output \"\$\(Build.ArtifactStagingDirectory\)/app.zip\"\s+"
        r"--python-version \$\(pythonVersion\)",
        package,
    )
    assert 'python scripts/check_package.py "$(Build.ArtifactStagingDirectory)/app.zip"' in package
    published = {s["artifact"]: s["publish"] for s in jobs["package"]["steps"] if "publish" in s}
    assert published == {
        "app": "$(Build.ArtifactStagingDirectory)/app.zip",
        "infra": "infra",
        "deploy-scripts": "scripts/deploy",
    }


def test_deploy_runs_phase_one_code_phase_two_then_smoke_test() -> None:
    for env in ENVIRONMENTS:
        steps = [step for step in _deploy_steps(env) if "task" in step]
        assert [step["task"] for step in steps] == [
            "AzureCLI@2",
            "AzureFunctionApp@2",
            "AzureCLI@2",
            "AzureCLI@2",
        ]
        phase1, code, phase2, smoke = steps
        scripts = [step["inputs"].get("scriptPath", "") for step in (phase1, phase2, smoke)]
        assert scripts == [
            "$(Pipeline.Workspace)/deploy-scripts/deploy-infra.sh",
            "$(Pipeline.Workspace)/deploy-scripts/event-subscription.sh",
            "$(Pipeline.Workspace)/deploy-scripts/smoke-test.sh",
        ]
        assert code["inputs"]["isFlexConsumption"] is True
        assert code["inputs"]["appType"] == "functionAppLinux"
        assert code["inputs"]["package"] == "$(Pipeline.Workspace)/app/app.zip"
        assert code["inputs"]["appName"] == "$(functionAppName)"
        for step in (phase1, phase2, smoke):
            assert step["inputs"]["scriptType"] == "bash"
            assert step["inputs"]["scriptLocation"] == "scriptPath"


def test_no_per_environment_value_is_set_in_the_pipeline() -> None:
    # Root variables only hold build choices; everything else comes from the stage's group.
    assert {v["name"] for v in PIPELINE["variables"]} == {"pythonVersion", "nodeVersion"}
    assert PIPELINE["variables"][0]["value"] == "${{ parameters.pythonVersion }}"
    parameters = {p["name"]: p for p in PIPELINE["parameters"]}
    assert parameters["pythonVersion"]["values"] == ["3.11", "3.12"]
    assert parameters["deployThrough"]["values"] == list(ENVIRONMENTS)
    header = PIPELINE_TEXT.split("\nparameters:", 1)[0]
    mapped: set[str] = set()
    for env in ENVIRONMENTS:
        for step in [*_deploy_steps(env), *VALIDATE_STEPS["steps"]]:
            for value in step.get("env", {}).values():
                mapped.update(re.findall(r"\$\((\w+)\)", str(value)))
    produced = {  # set by phase 1 (##vso[task.setvariable]) or predefined
        "functionAppName",
        "functionAppHostName",
        "systemTopicName",
        "storageAccountName",
        "inboundContainerName",
        "deadLetterContainerName",
        "pythonVersion",
    }
    group_entries = mapped - produced
    assert group_entries == {
        "resourceGroup",
        "location",
        "namePrefix",
        "d365BaseUrl",
        "d365AuthMode",
        "d365TenantId",
        "d365ClientId",
        "d365Routes",
        "d365ClientSecret",
        "keyVaultName",
        "vnetEnabled",
    }
    for name in group_entries:
        assert re.search(rf"^#\s+{name}\s", header, re.MULTILINE), f"{name} is not documented"
        assert f"{name}:" not in PIPELINE_TEXT.split("\nstages:", 1)[0].split("\nvariables:", 1)[1]


def test_the_secret_reaches_phase_one_only_through_its_env_mapping() -> None:
    stage_text = (TEMPLATES / "deploy-stage.yml").read_text(encoding="utf-8")
    assert stage_text.count("$(d365ClientSecret)") == 1
    assert "D365_CLIENT_SECRET: $(d365ClientSecret)" in stage_text
    assert "d365ClientSecret" not in PIPELINE_TEXT.split("\nparameters:", 1)[1]


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.sh")))
def test_scripts_are_valid_bash(script: str) -> None:
    result = subprocess.run(
        ["bash", "-n", str(SCRIPTS / script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


# --- the scripts, in pipeline order ------------------------------------------------------------


def _index(calls: list[str], prefix: str, contains: str = "") -> int:
    return next(i for i, call in enumerate(calls) if call.startswith(prefix) and contains in call)


def test_a_run_lints_and_validates_before_it_deploys_and_phase_two_deploys_only_the_subscription(
    workspace: Workspace,
) -> None:
    build = workspace.run("bicep-lint.sh", BICEP_OUT_DIR=str(workspace.root / "arm"))
    assert build.result.returncode == 0, build.result.stderr
    validate = workspace.run("validate.sh", **GROUP_ENV)
    assert validate.result.returncode == 0, validate.result.stdout + validate.result.stderr
    phase1 = workspace.run("deploy-infra.sh", **GROUP_ENV, D365_CLIENT_SECRET=fakes.CLIENT_SECRET)
    assert phase1.result.returncode == 0, phase1.result.stdout + phase1.result.stderr
    phase2 = workspace.run("event-subscription.sh", **PHASE_TWO_ENV)
    assert phase2.result.returncode == 0, phase2.result.stderr

    calls = workspace.all_calls()
    assert [c.split(" --")[0] for c in calls[:4]] == [
        "bicep lint",
        "bicep build",
        "bicep lint",
        "bicep build",
    ]
    assert "infra/main.bicep" in calls[0] and "app/eventsubscription.bicep" in calls[2]
    assert _index(calls, "deployment group validate") < _index(calls, "deployment group what-if")
    first_create = _index(calls, "deployment group create")
    assert max(i for i, c in enumerate(calls) if c.startswith("bicep")) < first_create
    # Phase 1 validates the very parameters it deploys, right before it deploys them.
    assert calls[first_create - 1].startswith("deployment group validate")
    assert "--name d365-phase1-42" in calls[first_create - 1]
    creates = [c for c in calls if c.startswith("deployment group create")]
    assert len(creates) == 2
    assert "/infra/main.bicep" in creates[0]
    assert "--template-file" in creates[1] and creates[1].count(".bicep") == 1
    assert "/infra/app/eventsubscription.bicep" in creates[1]
    assert "main.bicep" not in creates[1]
    assert (
        "--parameters systemTopicName=evgt-fake functionAppName=func-fake "
        "storageAccountName=stfake inboundContainerName=d365-inbound "
        "deadLetterContainerName=d365-eventgrid-deadletter"
    ) in creates[1]
    assert "--name d365-phase2-42" in creates[1]
    key_calls = [c for c in phase2.az_calls if c.startswith("functionapp keys list")]
    assert key_calls and all("systemKeys.blobs_extension != null" in c for c in key_calls)
    assert _index(calls, "functionapp keys list") < _index(calls, "deployment group create", "app/")


def test_phase_one_stops_when_validation_fails(workspace: Workspace) -> None:
    run = workspace.run("deploy-infra.sh", **GROUP_ENV, AZ_FAIL="deployment group validate")

    assert run.result.returncode != 0
    assert not any(call.startswith("deployment group create") for call in run.az_calls)


def test_validate_waits_for_the_first_deployment_when_the_group_is_new(
    workspace: Workspace,
) -> None:
    run = workspace.run("validate.sh", **GROUP_ENV, AZ_GROUP_EXISTS="false")

    assert run.result.returncode == 0
    assert "Resource group rg-fake does not exist yet" in run.result.stdout
    assert [call.split(" --")[0] for call in run.az_calls] == ["group exists"]


def test_phase_one_passes_routes_verbatim_and_the_secret_only_in_a_file(
    workspace: Workspace,
) -> None:
    run = workspace.run("deploy-infra.sh", **GROUP_ENV, D365_CLIENT_SECRET=fakes.CLIENT_SECRET)

    assert run.result.returncode == 0, run.result.stderr
    parameters = json.loads((run.temp / "deploy.parameters.json").read_text(encoding="utf-8"))
    values = {name: entry["value"] for name, entry in parameters["parameters"].items()}
    assert values["d365Routes"] == ROUTES
    assert values["namePrefix"] == "d365fake"
    # Optional entries missing from the group are left to the template's defaults.
    assert "keyVaultName" not in values and "vnetEnabled" not in values
    assert fakes.CLIENT_SECRET not in json.dumps(parameters)
    assert all(fakes.CLIENT_SECRET not in call for call in run.az_calls)
    assert f'"d365ClientSecret": {{"value": "{fakes.CLIENT_SECRET}"}}' in run.az_files
    assert not (run.temp / "deploy.secret.json").exists()
    for name, value in (
        ("functionAppName", "func-fake"),
        ("functionAppHostName", "func-fake.azurewebsites.net"),
        ("systemTopicName", "evgt-fake"),
        ("storageAccountName", "stfake"),
        ("inboundContainerName", "d365-inbound"),
        ("deadLetterContainerName", "d365-eventgrid-deadletter"),
    ):
        assert f"##vso[task.setvariable variable={name}]{value}" in run.result.stdout


def test_phase_one_keeps_the_vault_secret_when_the_variable_is_undefined(
    workspace: Workspace,
) -> None:
    # Azure Pipelines leaves an undefined variable's macro as it is.
    env = {**GROUP_ENV, "D365_CLIENT_SECRET": "$(d365ClientSecret)"}
    run = workspace.run("deploy-infra.sh", **env)

    assert run.result.returncode == 0, run.result.stderr
    assert "d365ClientSecret" not in run.az_files
    deploy = next(call for call in run.az_calls if call.startswith("deployment group create"))
    assert deploy.count("--parameters @") == 1


def test_optional_group_entries_reach_the_template(workspace: Workspace) -> None:
    env = {**GROUP_ENV, "KEY_VAULT_NAME": "kv-d365fake-2", "VNET_ENABLED": "True"}
    run = workspace.run("deploy-infra.sh", **env)

    assert run.result.returncode == 0, run.result.stderr
    parameters = json.loads((run.temp / "deploy.parameters.json").read_text(encoding="utf-8"))
    assert parameters["parameters"]["keyVaultName"] == {"value": "kv-d365fake-2"}
    assert parameters["parameters"]["vnetEnabled"] == {"value": True}


@pytest.mark.parametrize("variable", ["D365_TENANT_ID", "D365_BASE_URL", "D365_ROUTES"])
def test_phase_one_refuses_placeholders(workspace: Workspace, variable: str) -> None:
    env = {**GROUP_ENV, variable: "<set me>"}
    run = workspace.run("deploy-infra.sh", **env)

    assert run.result.returncode == 1
    names = {
        "D365_TENANT_ID": "d365TenantId",
        "D365_BASE_URL": "d365BaseUrl",
        "D365_ROUTES": "d365Routes",
    }
    assert (
        f"##vso[task.logissue type=error]{names[variable]} still holds a placeholder: set it in "
        "the group (docs/deploy.md)"
    ) in run.result.stdout
    assert run.az_calls == []


def test_a_missing_group_entry_is_named(workspace: Workspace) -> None:
    env = {**GROUP_ENV, "RESOURCE_GROUP": "rg-fake", "D365_BASE_URL": "$(d365BaseUrl)"}
    run = workspace.run("validate.sh", **env)

    assert run.result.returncode == 1
    assert "d365BaseUrl is not set in the variable group" in run.result.stdout
    assert run.az_calls == []


def test_certificate_mode_is_refused_with_the_reason(workspace: Workspace) -> None:
    run = workspace.run("deploy-infra.sh", **{**GROUP_ENV, "D365_AUTH_MODE": "certificate"})

    assert run.result.returncode == 1
    assert "d365AuthMode is 'certificate': use one of secret, managedIdentity" in run.result.stdout
    assert run.az_calls == []


def test_phase_one_needs_no_app_registration_with_managed_identity(workspace: Workspace) -> None:
    env = {
        **GROUP_ENV,
        "D365_AUTH_MODE": "managedIdentity",
        "D365_CLIENT_ID": "$(d365ClientId)",
        "D365_TENANT_ID": "$(d365TenantId)",
    }
    run = workspace.run("deploy-infra.sh", **env)

    assert run.result.returncode == 0, run.result.stdout


def test_azd_hook_runs_phase_two_from_the_azd_environment(workspace: Workspace) -> None:
    env = {
        "AZURE_RESOURCE_GROUP": "rg-fake",
        "functionAppName": "func-fake",
        "functionAppHostName": "127.0.0.1:9",
        "systemTopicName": "evgt-fake",
        "storageAccountName": "stfake",
        "inboundContainerName": "d365-inbound",
        "deadLetterContainerName": "d365-eventgrid-deadletter",
    }
    run = workspace.run("azd-postdeploy.sh", **env)

    assert run.result.returncode == 0, run.result.stderr
    (create,) = [call for call in run.az_calls if call.startswith("deployment group create")]
    assert "app/eventsubscription.bicep" in create and "systemTopicName=evgt-fake" in create


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
        "smoke-test.sh",
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
