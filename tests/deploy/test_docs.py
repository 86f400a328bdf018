"""docs/deploy.md: its commands parse, set what they use, and its routes and host.json table
match what the app and host.json really take; the traps the first-deployment review found
stay out of it (issue 19). docs/connector.md's commands likewise."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from shared.config.routes import ImportRoutes

REPO_ROOT = Path(__file__).resolve().parents[2]
GUIDE = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
CONNECTOR_GUIDE = (REPO_ROOT / "docs" / "connector.md").read_text(encoding="utf-8")
HOST = json.loads((REPO_ROOT / "host.json").read_text(encoding="utf-8"))
PREFLIGHT = (REPO_ROOT / "scripts" / "deploy" / "preflight.sh").read_text(encoding="utf-8")
# Variables a shell or the CLI provides, not the reader.
PROVIDED = {"HOME", "PATH"}
# What `source dist/phase1.env` sets: phase 1's outputs (scripts/deploy/phase1.py).
PHASE_ONE_NAMES = set(
    re.findall(
        r'^    "([A-Z_]+)": "\w+",$',
        (REPO_ROOT / "scripts" / "deploy" / "phase1.py").read_text(encoding="utf-8"),
        re.MULTILINE,
    )
)


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
    if "source dist/phase1.env" in block:
        assigned |= PHASE_ONE_NAMES
    used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", block))
    assert used - assigned - PROVIDED == set()


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=_short)
def test_route_examples_are_valid_routes(block: str) -> None:
    routes = json.loads(block)
    table = ImportRoutes.from_json(json.dumps(routes))
    assert len(table) == len(routes)


def test_route_examples_resolve_as_described() -> None:
    table = ImportRoutes.from_json(JSON_BLOCKS[0])
    match = table.resolve("customers/USMF/customers-2026-11-28.xml")
    assert (match.route.name, match.company) == ("customers", "USMF")


def _leaf_keys(node: object, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix]
    return [key for name, value in node.items() for key in _leaf_keys(value, name)]


def _section(title: str) -> str:
    """The text of the ``##`` section whose title starts with ``title`` (number excluded)."""
    match = re.search(rf"^## (?:\d+\. )?{re.escape(title)}.*?$(.*?)(?=^## |\Z)", GUIDE, re.M | re.S)
    assert match, title
    return match.group(1)


def test_every_host_json_choice_is_explained() -> None:
    section = _section("host.json")
    missing = [key for key in _leaf_keys(HOST) if key not in section]
    assert missing == []


def test_the_guide_starts_with_before_you_start_and_its_preflight() -> None:
    titles = re.findall(r"^## (.+)$", GUIDE, re.MULTILINE)
    assert titles[0] == "Before you start"
    section = _section("Before you start")
    assert "bash scripts/deploy/preflight.sh" in section
    # The rights of each step, and what to do without them.
    for step in (
        "register the resource providers",
        "create the resource group",
        "give the pipeline's service connection its roles",
        '"App registration (automatic)"',
        "Storage Queue Data Contributor",
        "up to 10 minutes",
    ):
        assert step in section, step


def _about(minutes: int) -> str:
    return f"**about {minutes // 60} h {minutes % 60} min**"


def test_the_guide_ends_with_the_time_of_each_part() -> None:
    titles = re.findall(r"^## (.+)$", GUIDE, re.MULTILINE)
    assert titles[-1].endswith("Time per part")
    rows = re.findall(
        r"^\| (.+?) \| (\d+) min \| (?:(\d+) min|\(none\)) \|$",
        _section(titles[-1].split(". ", 1)[1]),
        re.MULTILINE,
    )
    required = [row for row in rows if not row[0].startswith("(optional)")]
    assert len(required) >= 5 and len(rows) > len(required)
    for chosen, label in ((required, "total"), (rows, "with sign-in")):
        pipeline = sum(int(minutes) for _, minutes, _ in chosen)
        azd = sum(int(minutes or 0) for _, _, minutes in chosen)
        # An afternoon, even with the optional parts.
        assert pipeline <= 4 * 60
        assert f"| **{label}** | {_about(pipeline)} | {_about(azd)} |" in GUIDE


def test_the_guide_registers_the_providers_preflight_checks() -> None:
    checked = set(re.findall(r"\bMicrosoft\.[A-Za-z]+\b", PREFLIGHT.split("registered=()")[0]))
    (block,) = [b for b in BASH_BLOCKS if "az provider register" in b]
    assert set(re.findall(r"\bMicrosoft\.[A-Za-z]+\b", block)) == checked
    assert "Microsoft.App" in checked


@pytest.mark.parametrize("name", ["deploy.md", "connector.md", "auth.md"])
def test_one_resource_group_name_throughout(name: str) -> None:
    text = (REPO_ROOT / "docs" / name).read_text(encoding="utf-8")
    names = set(re.findall(r'^(?:AZURE_)?RESOURCE_GROUP="([^"$][^"]*)"', text, re.MULTILINE))
    assert names <= {"rg-d365-integration-dev"}
    if name == "deploy.md":
        assert names


def test_no_credential_reset_replaces_the_registration_s_secrets() -> None:
    resets = [b for b in BASH_BLOCKS if "az ad app credential reset" in b]
    assert resets
    for block in resets:
        for command in block.split("az ad app credential reset")[1:]:
            assert "--append" in command.split(")")[0], command


def test_the_tenant_is_the_f_and_o_environment_s() -> None:
    # The subscription's tenant (az account show) may not be F&O's.
    assert "az account show --query tenantId" not in GUIDE
    assert 'az login --tenant "$D365_TENANT_ID" --allow-no-subscriptions' in GUIDE


def test_every_path_runs_phase_two_with_the_waiting_script() -> None:
    for block in BASH_BLOCKS:
        assert "eventsubscription.bicep" not in block, "phase 2 by hand skips the wait"
    (by_hand,) = [b for b in BASH_BLOCKS if "deploy-infra.sh" in b and "config-zip" in b]
    assert by_hand.index("config-zip") < by_hand.index("scripts/deploy/event_subscription.py")
    # No step writes to a folder a fresh clone lacks before a script made it.
    assert "parameters.py dist/" not in GUIDE


def test_routes_use_the_entity_name_the_data_project_shows() -> None:
    assert '"entity": "CustomersV3"' not in GUIDE
    assert '"entity": "Customers V3"' in GUIDE
    assert "exactly as the data project shows" in GUIDE
    assert "non-production" in GUIDE and "small file of your own" in GUIDE
    # Not an option Microsoft documents: the guide says to look for it, never to set it.
    assert "Use company from message" not in GUIDE
    assert "Microsoft does not document it" in GUIDE


def test_the_traps_are_named_with_their_fix() -> None:
    traps = _section("Traps and their fixes")
    for text in (
        "up to 10 minutes",
        "configreferences/appsettings/refresh",
        "upload them again",
        "InvalidResourceGroupLocation",
        "manual or managed-identity option",
        "only the vault's secrets",
        "build validation branch policy",
        "each deployment writes every app setting",
        "holds no app role of the sign-in registration",
    ):
        assert text in traps, text


def test_alerts_are_deployed_not_built_by_hand() -> None:
    assert "az monitor scheduled-query create" not in GUIDE
    assert "az monitor metrics alert create" not in GUIDE
    assert "`alertEmail`" in _section("Day two")


def test_every_app_setting_the_template_writes_is_in_the_credentials_section() -> None:
    from tests.deploy.bicep import BicepFile, object_literals, top_level_keys

    function = BicepFile(REPO_ROOT / "infra" / "app" / "function.bicep")
    written = {
        key
        for name in ("monitoringSettings", "integrationSettings")
        for body in object_literals(function.variable(name))
        for key in top_level_keys(body)
    }
    section = _section("Credentials")
    assert sorted(key for key in written if f"`{key}" not in section) == []


# A stand-in azd: records each call, one JSON array a line.
_AZD = """#!{python}
import json, os, sys
with open(os.environ["AZD_CALLS"], "a", encoding="utf-8") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def _substituted_as_azd_does(values: dict[str, str]) -> str:
    """infra/main.parameters.json with each ``${NAME}`` or ``${NAME=default}`` replaced by the
    value as it stands: azd substitutes a string parameter's value into the file's JSON text,
    unescaped (its bicep_provider.go, loadParameters), then parses that text."""
    text = (REPO_ROOT / "infra" / "main.parameters.json").read_text(encoding="utf-8")
    return re.sub(
        r"\$\{(\w+)(?:=([^}]*))?\}",
        lambda match: values.get(match.group(1)) or match.group(2) or "",
        text,
    )


def test_the_azd_block_gives_azd_a_parameters_file_it_can_read(tmp_path: Path) -> None:
    import sys

    block = next(block for block in BASH_BLOCKS if "azd env new" in block)
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    azd = stand_ins / "azd"
    azd.write_text(_AZD.format(python=sys.executable), encoding="utf-8")
    azd.chmod(0o755)
    (stand_ins / "python").symlink_to(sys.executable)
    calls = tmp_path / "calls"
    subprocess.run(
        ["bash", "-c", block],
        env={"PATH": f"{stand_ins}:/usr/bin:/bin", "AZD_CALLS": str(calls)},
        # Its last grep finds nothing in the stand-in's empty get-values.
        check=False,
        capture_output=True,
    )
    values: dict[str, str] = {}
    at_up: dict[str, str] | None = None
    for line in calls.read_text(encoding="utf-8").splitlines():
        call = json.loads(line)
        if call[:2] == ["env", "set"]:
            values[call[2]] = call[3]
        elif call[:1] == ["up"]:
            at_up = dict(values)
    assert at_up is not None
    # JSON quotes substituted as they stand end the string early: azd stops with "error
    # unmarshalling Bicep template parameters" before anything is deployed.
    parameters = json.loads(_substituted_as_azd_does(at_up))["parameters"]
    routes = json.loads(parameters["d365Routes"]["value"])
    assert [route["name"] for route in routes] == ["customers"]
