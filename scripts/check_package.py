"""Gate on the deployment zip: import ``function_app`` from it alone, as the worker would.

Usage::

    python scripts/check_package.py dist/app.zip [--python PATH]

The zip is unpacked to a temporary folder and a fresh interpreter (``-I -S``: no user site, no
site-packages of its own, no ``PYTHON*`` variables) imports ``function_app`` with nothing on
its path but the package root and ``.python_packages/lib/site-packages``, where the Functions
Python worker looks. It fails when the import fails, when a module came from anywhere else,
or when ``app.get_functions()`` does. On success it prints one JSON line: the functions with
their bindings and the imported modules with their files.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

SITE_PACKAGES = ".python_packages/lib/site-packages"
# Runs in the fresh interpreter; argv[1] is the unpacked package.
_INDEXER = """
import json, sys
root = sys.argv[1]
sys.path[:0] = [root, root + "/.python_packages/lib/site-packages"]
import function_app
functions = {
    fn.get_function_name(): json.loads(fn.get_function_json())["bindings"]
    for fn in function_app.app.get_functions()
}
modules = {
    name: getattr(module, "__file__", None) or ""
    for name, module in sys.modules.items()
}
print(json.dumps({"functions": functions, "modules": modules, "path": sys.path}))
"""


class PackageCheckError(RuntimeError):
    """The packaged app does not import, or imported something from outside the package."""


def _stdlib_prefixes(python: str) -> tuple[str, ...]:
    """Where the interpreter's own standard library lives (allowed outside the package)."""
    script = "import sys, sysconfig; print(sysconfig.get_paths()['stdlib']); print(sys.base_prefix)"
    result = subprocess.run(  # noqa: S603 - a fixed command line, no shell
        [python, "-I", "-S", "-c", script], capture_output=True, text=True, check=True
    )
    return tuple(line for line in result.stdout.splitlines() if line)


def index_package(root: Path, *, python: str) -> dict[str, object]:
    """Import the unpacked package at ``root`` in a fresh interpreter and report what it saw.

    :raises PackageCheckError: the import failed (its traceback is in the message), or a
        module outside the standard library came from outside ``root``.
    """
    result = subprocess.run(  # noqa: S603 - a fixed command line, no shell
        [python, "-I", "-S", "-c", _INDEXER, str(root)],
        cwd=root,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise PackageCheckError(f"function_app does not import from the package:\n{result.stderr}")
    report = json.loads(result.stdout)
    stdlib = _stdlib_prefixes(python)
    resolved_root = root.resolve()
    outside = sorted(
        name
        for name, file in report["modules"].items()
        if file
        and not Path(file).resolve().is_relative_to(resolved_root)
        and not file.startswith(stdlib)
    )
    if outside:
        raise PackageCheckError(f"modules imported from outside the package: {outside}")
    return report


def check_zip(package: Path, *, python: str) -> dict[str, object]:
    """Unpack ``package`` to a temporary folder and :func:`index_package` it."""
    with tempfile.TemporaryDirectory(prefix="wwwroot-") as folder:
        with zipfile.ZipFile(package) as archive:
            archive.extractall(folder)
        return index_package(Path(folder), python=python)


def main(argv: Sequence[str] | None = None) -> int:
    """Check the zip; print the report, or the reason on stderr and return 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument(
        "--python",
        default=getattr(sys, "_base_executable", sys.executable),
        help="interpreter of the check (default: this one's base interpreter, not a venv's)",
    )
    args = parser.parse_args(argv)
    try:
        report = check_zip(args.package, python=args.python)
    except PackageCheckError as error:
        sys.stderr.write(f"{error}\n")
        return 1
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
