"""Build the deployment zip of the function app.

Usage::

    python scripts/build_package.py [--output dist/app.zip] [--python-version 3.12]
                                    [--platform manylinux2014_x86_64 ...]

The zip holds the app's own code (``function_app.py``, ``host.json``, ``requirements.txt``
and the function and ``shared`` packages) with ``function_app.py`` and ``host.json`` at its
root, and the pinned dependencies under ``.python_packages/lib/site-packages``, where the
Functions Python worker finds them. Flex Consumption runs it as it is (no remote build).

The dependencies are always binary wheels for the target, whatever machine builds: pip's
``--platform manylinux2014_x86_64 --only-binary=:all: --python-version <x> --implementation
cp``. A laptop and the pipeline agent therefore pick the same wheels and, with the same pip,
write the same bytes (tests/deploy/test_package.py builds twice and compares the hashes).

The archive is deterministic: entries sorted by path, fixed timestamps and permissions, no
bytecode (the build machine's ``.pyc`` files would be stale or for another Python), and no
console scripts (``bin/``: pip writes the build interpreter's path into them, and the
worker never runs them). ``scripts/check_package.py`` then imports the app from the zip alone.
"""

from __future__ import annotations

import argparse
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_FILES = ("function_app.py", "host.json", "requirements.txt")
APP_PACKAGES = ("enqueue_blob", "poll_status", "http_status", "export_jobs", "retention", "shared")
SITE_PACKAGES = PurePosixPath(".python_packages/lib/site-packages")
DEFAULT_OUTPUT = Path("dist/app.zip")
DEFAULT_PYTHON_VERSION = "3.12"
# manylinux2014 (glibc 2.17) wheels run on the Functions Linux images; pip also accepts
# manylinux2010/manylinux1 wheels for it.
DEFAULT_PLATFORMS = ("manylinux2014_x86_64",)

_SKIPPED_PARTS = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
# The earliest time a zip entry can hold: the same bytes whenever and wherever it is built.
_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
_UNIX_SYSTEM = 3


@dataclass(frozen=True)
class PackageSummary:
    """What was built: the zip, how many files it holds and its size in bytes."""

    path: Path
    file_count: int
    size_bytes: int


def _is_skipped(relative: PurePosixPath) -> bool:
    return bool(_SKIPPED_PARTS.intersection(relative.parts)) or relative.suffix in _SKIPPED_SUFFIXES


def app_files(root: Path) -> list[PurePosixPath]:
    """The app's own files under ``root``, relative and sorted; caches left out.

    :raises FileNotFoundError: a required file or package is missing.
    """
    files = []
    for name in APP_FILES:
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name} is missing: the package needs it at its root")
        files.append(PurePosixPath(name))
    for package in APP_PACKAGES:
        folder = root / package
        if not (folder / "__init__.py").is_file():
            raise FileNotFoundError(f"{folder} is not a Python package (no __init__.py)")
        for path in folder.rglob("*"):
            relative = PurePosixPath(path.relative_to(root).as_posix())
            if path.is_file() and not _is_skipped(relative):
                files.append(relative)
    return sorted(files)


def stage_app(root: Path, stage: Path) -> None:
    """Copy the app's own files from ``root`` into the ``stage`` folder."""
    for relative in app_files(root):
        target = stage / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, target)


def pip_install_command(
    requirements: Path,
    target: Path,
    *,
    python_version: str,
    platforms: Iterable[str] = DEFAULT_PLATFORMS,
) -> list[str]:
    """The pip command that vendors ``requirements`` into ``target`` for ``python_version``.

    Always for the target platform and Python, never for the running interpreter: the same
    wheels on every build machine.
    """
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
        "--requirement",
        str(requirements),
    ]
    for platform in platforms:
        command += ["--platform", platform]
    command += ["--only-binary=:all:", "--python-version", python_version]
    command += ["--implementation", "cp"]
    return command


def vendor_dependencies(
    requirements: Path,
    target: Path,
    *,
    python_version: str,
    platforms: Iterable[str] = DEFAULT_PLATFORMS,
) -> None:
    """Install the pinned requirements into ``target``.

    :raises subprocess.CalledProcessError: pip failed (its own output says why).
    """
    command = pip_install_command(
        requirements, target, python_version=python_version, platforms=platforms
    )
    subprocess.run(command, check=True)  # noqa: S603 - a fixed pip command line, no shell
    drop_console_scripts(target)


def drop_console_scripts(target: Path) -> None:
    """Remove ``target/bin`` and its lines in every ``RECORD``.

    pip writes the build interpreter's path into console scripts' first line, which would make
    the bytes depend on the machine; nothing in the package runs them.
    """
    shutil.rmtree(target / "bin", ignore_errors=True)
    for record in target.glob("*.dist-info/RECORD"):
        lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not line.startswith("../../bin/")]
        if kept != lines:
            record.write_text("".join(kept), encoding="utf-8")


def write_zip(stage: Path, output: Path) -> PackageSummary:
    """Zip every file under ``stage`` into ``output``, deterministically.

    Entries are sorted by path, stamped 1980-01-01 and given mode 644 (755 if executable).
    """
    files = sorted(
        (
            PurePosixPath(path.relative_to(stage).as_posix())
            for path in stage.rglob("*")
            if path.is_file()
        ),
        key=str,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in files:
            source = stage / relative
            info = zipfile.ZipInfo(str(relative), date_time=_ZIP_TIMESTAMP)
            info.create_system = _UNIX_SYSTEM
            mode = 0o755 if source.stat().st_mode & 0o111 else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with source.open("rb") as src, archive.open(info, "w") as dst:
                shutil.copyfileobj(src, dst)
    return PackageSummary(output, len(files), output.stat().st_size)


def build_package(
    root: Path,
    output: Path,
    *,
    python_version: str = DEFAULT_PYTHON_VERSION,
    platforms: Iterable[str] = DEFAULT_PLATFORMS,
) -> PackageSummary:
    """Stage the app from ``root``, vendor its dependencies and write the zip to ``output``."""
    with tempfile.TemporaryDirectory(prefix="app-package-") as folder:
        stage = Path(folder)
        stage_app(root, stage)
        vendor_dependencies(
            root / "requirements.txt",
            stage / SITE_PACKAGES,
            python_version=python_version,
            platforms=platforms,
        )
        return write_zip(stage, output)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"default {DEFAULT_OUTPUT}"
    )
    parser.add_argument(
        "--python-version",
        default=DEFAULT_PYTHON_VERSION,
        help=f"Python of the Functions runtime, default {DEFAULT_PYTHON_VERSION}",
    )
    parser.add_argument(
        "--platform",
        action="append",
        dest="platforms",
        help="wheel platform when cross-building; repeatable; default "
        + " ".join(DEFAULT_PLATFORMS),
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the package and print where it is, its file count and its size."""
    args = _parse_args(argv)
    summary = build_package(
        REPO_ROOT,
        args.output.resolve(),
        python_version=args.python_version,
        platforms=args.platforms or DEFAULT_PLATFORMS,
    )
    size_mib = summary.size_bytes / (1024 * 1024)
    print(  # noqa: T201 - the CLI's result line
        f"{summary.path}: {summary.file_count} files, {summary.size_bytes} bytes "
        f"({size_mib:.1f} MiB), Python {args.python_version}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
