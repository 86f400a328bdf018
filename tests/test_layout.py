"""The house rules of ``shared/`` that a linter cannot see: rooms of at most 400 lines, each
opening with one sentence that says its one job."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted((ROOT / "shared").rglob("*.py"))
MAX_LINES = 400


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_module_of_shared_is_over_400_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{_name(path)} has {lines} lines: split it by job"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_each_module_opens_with_one_sentence_of_one_job(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring, f"{_name(path)} has no module docstring saying its job"
    first = re.split(r"(?<=[.:])\s", " ".join(docstring.split()), maxsplit=1)[0]
    assert not re.search(r"\band\b", first), f"{_name(path)}: {first!r} holds two jobs ('and')"
