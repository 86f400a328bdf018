"""docs/deploy.md: its commands parse, set what they use, and its routes and host.json table
match what the app and host.json really take. docs/connector.md's commands likewise."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from shared.routing import RouteTable

REPO_ROOT = Path(__file__).resolve().parents[2]
GUIDE = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
CONNECTOR_GUIDE = (REPO_ROOT / "docs" / "connector.md").read_text(encoding="utf-8")
HOST = json.loads((REPO_ROOT / "host.json").read_text(encoding="utf-8"))
# Variables a shell or the CLI provides, not the reader.
PROVIDED = {"HOME", "PATH"}


def code_blocks(text: str, language: str) -> list[str]:
    """The fenced ``language`` blocks of a markdown ``text``."""
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


BASH_BLOCKS = code_blocks(GUIDE, "bash")
JSON_BLOCKS = code_blocks(GUIDE, "json")
ALL_BASH_BLOCKS = BASH_BLOCKS + code_blocks(CONNECTOR_GUIDE, "bash")


def _short(block: str) -> str:
    return block.strip().splitlines()[0][:40]


def test_the_guide_has_commands_and_route_examples() -> None:
    assert len(BASH_BLOCKS) >= 10
    assert len(JSON_BLOCKS) >= 2


@pytest.mark.parametrize("block", ALL_BASH_BLOCKS, ids=_short)
def test_bash_blocks_parse(block: str) -> None:
    result = subprocess.run(
        ["bash", "-n"], input=block, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("block", ALL_BASH_BLOCKS, ids=_short)
def test_bash_blocks_set_every_variable_they_use(block: str) -> None:
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", block, re.MULTILINE))
    used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", block))
    assert used - assigned - PROVIDED == set()


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=_short)
def test_route_examples_are_valid_routes(block: str) -> None:
    routes = json.loads(block)
    table = RouteTable.from_json(json.dumps(routes))
    assert len(table) == len(routes)


def test_route_examples_resolve_as_described() -> None:
    table = RouteTable.from_json(JSON_BLOCKS[0])
    match = table.resolve("customers/USMF/customers-2026-11-28.xml")
    assert (match.route.name, match.company) == ("customers", "USMF")


def _leaf_keys(node: object, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix]
    return [key for name, value in node.items() for key in _leaf_keys(value, name)]


def test_every_host_json_choice_is_explained() -> None:
    section = GUIDE.split("## 8. host.json", 1)[1].split("\n## ", 1)[0]
    missing = [key for key in _leaf_keys(HOST) if key not in section]
    assert missing == []
