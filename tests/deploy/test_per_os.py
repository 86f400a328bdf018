"""azure.yaml's hooks and .vscode/tasks.json work on Windows as on Linux and macOS: one entry per
OS, as Microsoft's azd samples and the Azure Functions extension write them, and every command
installs what the next one needs."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
AZURE_YAML = yaml.safe_load((REPO_ROOT / "azure.yaml").read_text(encoding="utf-8"))
TASKS = {
    task["label"]: task
    for task in json.loads((REPO_ROOT / ".vscode" / "tasks.json").read_text(encoding="utf-8"))[
        "tasks"
    ]
}
VENV = "${config:azureFunctions.pythonVenv}"


def test_every_azd_hook_has_a_posix_and_a_windows_entry() -> None:
    hooks = AZURE_YAML["hooks"]
    assert hooks
    for name, hook in hooks.items():
        assert set(hook) == {"posix", "windows"}, name
        assert hook["posix"]["shell"] == "sh"
        assert hook["windows"]["shell"] == "pwsh"
        for entry in hook.values():
            assert entry["continueOnError"] is False
            interpreter, script, *_ = shlex.split(entry["run"])
            assert interpreter in {"python", "python3"}
            assert (REPO_ROOT / script).is_file(), script
        # The same script and arguments on every OS: no second implementation to drift.
        assert shlex.split(hook["posix"]["run"])[1:] == shlex.split(hook["windows"]["run"])[1:]


def test_the_postdeploy_hook_runs_phase_two_from_azd_s_values() -> None:
    run = AZURE_YAML["hooks"]["postdeploy"]["posix"]["run"]
    assert shlex.split(run)[1:] == ["./scripts/deploy/event_subscription.py", "--azd"]


def test_venv_commands_have_a_command_per_os() -> None:
    for label, task in TASKS.items():
        if VENV not in json.dumps(task):
            continue
        assert "command" not in task, f"{label}: one command for every OS"
        for os_name in ("linux", "osx"):
            assert task[os_name]["command"].startswith(f"{VENV}/bin/python -m "), label
        windows = task["windows"]["command"]
        assert windows.startswith(f"{VENV}\\Scripts\\python -m "), label
        # Everything after the interpreter is the same on every OS.
        tail = task["linux"]["command"].split(" -m ", 1)[1]
        assert windows.split(" -m ", 1)[1] == tail == task["osx"]["command"].split(" -m ", 1)[1]


def test_host_start_installs_what_the_local_services_need_first() -> None:
    host = TASKS["func: host start"]
    assert host["dependsOrder"] == "sequence"
    order = host["dependsOn"]
    assert order[-1] == "services: Azurite + D365 emulator"
    pip = TASKS["pip install (functions)"]["linux"]["command"]
    # devtools.run_local needs the dev packages (requirements-dev.txt includes requirements.txt).
    assert pip.endswith("-m pip install -r requirements-dev.txt")
    requirements_dev = (REPO_ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert re.search(r"^-r requirements\.txt$", requirements_dev, re.MULTILINE)
    # Azurite comes from node_modules (devtools/azurite.py).
    npm = next(label for label in order if TASKS[label].get("command", "").startswith("npm ci"))
    assert order.index("pip install (functions)") < order.index(npm) < len(order) - 1
