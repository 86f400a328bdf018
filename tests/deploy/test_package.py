"""scripts/build_package.py: the zip's layout, the same bytes from two builds, and (through
scripts/check_package.py, the pipeline's gate) that the packaged app indexes in a fresh
interpreter that sees nothing but the package."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "build_package.py"
SITE_PACKAGES = ".python_packages/lib/site-packages"
RUNNING_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
FORBIDDEN_TOP_LEVEL = {
    "tests",
    "devtools",
    "bench",
    "samples",
    "infra",
    "docs",
    "scripts",
    ".venv",
    "node_modules",
    ".git",
    ".ci",
    "dist",
    "azure-pipelines.yml",
    "Makefile",
    "pyproject.toml",
    "package.json",
    "package-lock.json",
    "requirements-dev.txt",
    ".funcignore",
    ".gitignore",
}
CACHE_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
REQUIRED_AT_ROOT = (
    "function_app.py",
    "host.json",
    "requirements.txt",
    "enqueue_blob/__init__.py",
    "poll_status/__init__.py",
    "http_status/__init__.py",
    "export_jobs/__init__.py",
    "retention/__init__.py",
    "shared/__init__.py",
    f"{SITE_PACKAGES}/azure/functions/__init__.py",
    f"{SITE_PACKAGES}/azurefunctions/extensions/bindings/blob/__init__.py",
)

CHECK_SCRIPT = REPO_ROOT / "scripts" / "check_package.py"


@dataclass(frozen=True)
class BuiltPackage:
    """The zip built once for this module and what the script printed."""

    path: Path
    stdout: str
    second: Path  # the same build again, from scratch

    def names(self) -> list[str]:
        """Entry names in archive order."""
        with zipfile.ZipFile(self.path) as archive:
            return archive.namelist()


def _build(output: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--output", str(output), "--python-version", RUNNING_VERSION],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> BuiltPackage:
    """The package for the running Python (manylinux2014 wheels, as for Azure), built twice."""
    folder = tmp_path_factory.mktemp("package")
    stdout = _build(folder / "app.zip")
    _build(folder / "again.zip")
    return BuiltPackage(folder / "app.zip", stdout, folder / "again.zip")


@pytest.fixture(scope="module")
def unpacked(package: BuiltPackage, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package extracted to a folder outside the repository."""
    root = tmp_path_factory.mktemp("wwwroot")
    with zipfile.ZipFile(package.path) as archive:
        archive.extractall(root)
    return root


@pytest.fixture(scope="module")
def indexed(unpacked: Path) -> dict:
    """What a fresh interpreter sees when it imports the packaged function_app (the gate's own
    code, as the pipeline runs it)."""
    spec = importlib.util.spec_from_file_location("check_package", CHECK_SCRIPT)
    assert spec and spec.loader
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    return check.index_package(unpacked, python=getattr(sys, "_base_executable", sys.executable))


def test_two_builds_write_the_same_bytes(package: BuiltPackage) -> None:
    digests = {
        hashlib.sha256(path.read_bytes()).hexdigest() for path in (package.path, package.second)
    }
    assert len(digests) == 1


def test_no_console_scripts_with_the_build_machine_s_interpreter(package: BuiltPackage) -> None:
    with zipfile.ZipFile(package.path) as archive:
        names = archive.namelist()
        records = [archive.read(n).decode() for n in names if n.endswith(".dist-info/RECORD")]
    assert [n for n in names if n.startswith(f"{SITE_PACKAGES}/bin/")] == []
    assert [line for record in records for line in record.splitlines() if "/bin/" in line] == []


def test_the_gate_script_passes_the_package_and_prints_its_functions(package: BuiltPackage) -> None:
    result = subprocess.run(
        [sys.executable, str(CHECK_SCRIPT), str(package.path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "enqueue_blob" in json.loads(result.stdout)["functions"]


def test_the_gate_script_fails_a_package_missing_a_dependency(
    package: BuiltPackage, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(package.path) as source, zipfile.ZipFile(broken, "w") as target:
        for info in source.infolist():
            if not info.filename.startswith(f"{SITE_PACKAGES}/requests/"):
                target.writestr(info, source.read(info))
    result = subprocess.run(
        [sys.executable, str(CHECK_SCRIPT), str(broken)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    assert "function_app does not import from the package" in result.stderr
    assert "No module named 'requests'" in result.stderr


def test_required_files_are_at_the_zip_root(package: BuiltPackage) -> None:
    names = set(package.names())
    assert [name for name in REQUIRED_AT_ROOT if name not in names] == []


def test_the_console_assets_are_in_the_package(package: BuiltPackage) -> None:
    names = set(package.names())
    for asset in ("index.html", "console.css", "console.js"):
        assert f"shared/views/console_assets/{asset}" in names


def test_development_files_and_caches_are_left_out(package: BuiltPackage) -> None:
    names = package.names()
    assert {PurePosixPath(name).parts[0] for name in names} & FORBIDDEN_TOP_LEVEL == set()
    assert [name for name in names if CACHE_PARTS & set(PurePosixPath(name).parts)] == []
    assert [name for name in names if name.endswith((".pyc", ".pyo"))] == []
    assert [name for name in names if "local.settings" in name] == []
    app_names = [name for name in names if not name.startswith(".python_packages/")]
    tops = {PurePosixPath(name).parts[0] for name in app_names}
    assert tops == {
        "function_app.py",
        "host.json",
        "requirements.txt",
        "enqueue_blob",
        "poll_status",
        "http_status",
        "export_jobs",
        "retention",
        "shared",
    }


def test_entries_are_sorted_and_stamped_alike(package: BuiltPackage) -> None:
    with zipfile.ZipFile(package.path) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} <= {0o100644, 0o100755}


def test_the_script_prints_file_count_and_size(package: BuiltPackage) -> None:
    match = re.search(r"(\d+) files, (\d+) bytes \(([\d.]+) MiB\)", package.stdout)
    assert match, package.stdout
    assert int(match.group(1)) == len(package.names())
    assert int(match.group(2)) == package.path.stat().st_size
    assert str(package.path) in package.stdout


def test_the_packaged_app_indexes_in_a_fresh_interpreter(indexed: dict, unpacked: Path) -> None:
    # Everything imported came from the unpacked package, nothing from the repo or a venv.
    ours = ("azure", "azurefunctions", "function_app", "shared")
    outside = {
        name: file
        for name, file in indexed["modules"].items()
        if name.split(".")[0] in ours
        and file
        and not Path(file).resolve().is_relative_to(unpacked.resolve())
    }
    assert outside == {}
    assert not any(str(REPO_ROOT) in entry for entry in indexed["path"])
    assert not any(
        "site-packages" in entry and str(unpacked) not in entry for entry in indexed["path"]
    )

    functions = indexed["functions"]
    assert {"enqueue_blob", "poll_status", "http_status", "health"} <= set(functions)
    blob = functions["enqueue_blob"][0]
    assert (blob["type"], blob["source"], blob["connection"], blob["path"]) == (
        "blobTrigger",
        "EventGrid",
        "IntegrationStorage",
        "%INBOUND_CONTAINER%/{name}",
    )
    timer = functions["poll_status"][0]
    assert (timer["type"], timer["schedule"], timer["runOnStartup"]) == (
        "timerTrigger",
        "%POLL_SCHEDULE%",
        False,
    )
    timer = functions["export_jobs"][0]
    assert (timer["type"], timer["schedule"], timer["runOnStartup"]) == (
        "timerTrigger",
        "%EXPORT_SCHEDULE%",
        False,
    )
    timer = functions["retention"][0]
    assert (timer["type"], timer["schedule"], timer["runOnStartup"]) == (
        "timerTrigger",
        "%RETENTION_SCHEDULE%",
        False,
    )
    for name, route in (("http_status", "messages/{message_id?}"), ("health", "health")):
        trigger = functions[name][0]
        assert (trigger["type"], trigger["route"], trigger["authLevel"]) == (
            "httpTrigger",
            route,
            "FUNCTION",
        )
        assert trigger["methods"] == ["GET"]


def test_zip_bytes_do_not_depend_on_file_order_or_times(script: ModuleType, tmp_path: Path) -> None:
    orders = (("b.py", "a/c.py", "a/b.txt"), ("a/b.txt", "b.py", "a/c.py"))
    outputs = []
    for build, order in enumerate(orders):
        stage = tmp_path / f"stage{build}"
        for number, name in enumerate(order):
            path = stage / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"content of {name}\n", encoding="utf-8")
            stamp = 1_000_000 + 1000 * build + number
            os.utime(path, (stamp, stamp))
        summary = script.write_zip(stage, tmp_path / f"out{build}.zip")
        assert summary.file_count == 3
        outputs.append(summary.path.read_bytes())
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("version", ["3.11", "3.12"])
def test_every_build_asks_pip_for_linux_wheels_of_the_target_python(
    script: ModuleType, version: str
) -> None:
    # The running interpreter's version included: a laptop and the agent get the same wheels.
    command = script.pip_install_command(
        Path("requirements.txt"), Path("stage/site"), python_version=version
    )
    joined = " ".join(command)
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert "--platform manylinux2014_x86_64" in joined
    assert "--only-binary=:all:" in command
    assert f"--python-version {version}" in joined
    assert "--implementation cp" in joined
    assert "--target stage/site" in joined
    assert "--no-compile" in command


def test_a_missing_app_package_is_named(script: ModuleType, tmp_path: Path) -> None:
    for name in ("function_app.py", "host.json", "requirements.txt"):
        (tmp_path / name).write_text("", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="enqueue_blob is not a Python package"):
        script.app_files(tmp_path)
