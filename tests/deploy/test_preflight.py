"""scripts/deploy/preflight.sh against a stand-in Azure CLI that answers from a table: it reports
every missing thing with its fix, exits non-zero then, and only reads."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFLIGHT = REPO_ROOT / "scripts" / "deploy" / "preflight.sh"
SUBSCRIPTION = "11111111-1111-1111-1111-111111111111"
TENANT = "22222222-2222-2222-2222-222222222222"
OTHER_TENANT = "33333333-3333-3333-3333-333333333333"
CLIENT_ID = "44444444-4444-4444-4444-444444444444"
CONNECTION_APP_ID = "55555555-5555-5555-5555-555555555555"
SIGNIN_ID = "77777777-7777-7777-7777-777777777777"
SIGNIN_SP = "88888888-8888-8888-8888-888888888888"
ME = "66666666-6666-6666-6666-666666666666"
READER_ROLE = "c28f0973-c856-4a41-b854-2c006a858bdd"
GROUP_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-d365-dev"
# The stand-in: the first entry whose prefix starts the command line answers it.
AZ_STUB = f"""#!{sys.executable}
import json, os, sys
line = " ".join(sys.argv[1:])
with open(os.environ["AZ_LOG"], "a", encoding="utf-8") as log:
    log.write(line + "\\n")
for prefix, stdout, code, stderr in json.load(open(os.environ["AZ_ANSWERS"], encoding="utf-8")):
    if line.startswith(prefix):
        sys.stdout.write(stdout)
        sys.stderr.write(stderr)
        sys.exit(code)
sys.stderr.write("stand-in az has no answer for: " + line + "\\n")
sys.exit(2)
"""
GOOD_GROUP = {
    "name": "d365-integration-dev",
    "type": "Vsts",
    "variables": {
        "resourceGroup": {"value": "rg-d365-dev"},
        "location": {"value": "westeurope"},
        "namePrefix": {"value": "d365dev"},
        "d365BaseUrl": {"value": "https://contoso-dev.sandbox.operations.dynamics.com"},
        "d365AuthMode": {"value": "secret"},
        "d365TenantId": {"value": TENANT},
        "d365ClientId": {"value": CLIENT_ID},
        "d365Routes": {"value": "[]"},
        "d365ClientSecret": {"value": None, "isSecret": True},
        "d365ClientSecretExpires": {"value": "2027-06-30"},
    },
}
PROVIDERS = (
    "Microsoft.Web",
    "Microsoft.Storage",
    "Microsoft.EventGrid",
    "Microsoft.KeyVault",
    "Microsoft.Insights",
    "Microsoft.OperationalInsights",
    "Microsoft.ManagedIdentity",
    "Microsoft.Network",
    "Microsoft.App",
)
# Every verb preflight may use: it only reads.
READ_ONLY = {"show", "list", "list-flexconsumption-locations"}


def _answers(**changes: tuple[str, int, str]) -> list[tuple[str, str, int, str]]:
    """A subscription where everything is in place; ``changes`` replace answers by prefix."""
    answers = {
        "account show": (f"{SUBSCRIPTION}\t{TENANT}\tsomeone@contoso.com\tuser\n", 0, ""),
        **{f"provider show --namespace {n} ": ("Registered\n", 0, "") for n in PROVIDERS},
        "functionapp list-flexconsumption-locations": ("northeurope\nwesteurope\n", 0, ""),
        "group show": ("westeurope\n", 0, ""),
        "ad signed-in-user show": (f"{ME}\n", 0, ""),
        f"role assignment list --assignee {CONNECTION_APP_ID}": (
            "Contributor\nRole Based Access Control Administrator\n",
            0,
            "",
        ),
        "role assignment list": ("Owner\n", 0, ""),
        # The sign-in registration (HTTP_AUTH=entra), before the F&O one's answers.
        f"ad app show --id {SIGNIN_ID}": ("Integration.Reader\nIntegration.Operator\n", 0, ""),
        f"ad app owner list --id {SIGNIN_ID}": (f"{ME}\n", 0, ""),
        f"ad sp show --id {SIGNIN_ID}": (f"{SIGNIN_SP}\tTrue\n", 0, ""),
        "rest --method get --url https://graph.microsoft.com/v1.0/servicePrincipals(": (
            f"{READER_ROLE}\n",
            0,
            "",
        ),
        "rest --method get --url https://graph.microsoft.com/v1.0/me/memberOf": (
            "Application Developer\n",
            0,
            "",
        ),
        "ad sp show": ("d365-recurring-integrations\n", 0, ""),
        "ad app credential list": ("2027-06-30T10:00:00Z\n", 0, ""),
        "devops service-endpoint list": (f"{CONNECTION_APP_ID}\n", 0, ""),
        "pipelines variable-group list": (json.dumps([GOOD_GROUP]), 0, ""),
    }
    answers.update(changes)
    return [(prefix, *answer) for prefix, answer in answers.items()]


@dataclass
class Preflight:
    """One run: its exit code, output, and the az calls it made."""

    code: int
    output: str
    calls: list[str]


@pytest.fixture
def run_preflight(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "az").write_text(AZ_STUB, encoding="utf-8")
    (bin_dir / "az").chmod(0o755)

    def run(answers: list[tuple[str, str, int, str]], **env: str) -> Preflight:
        log = tmp_path / "az.log"
        log.write_text("", encoding="utf-8")
        table = tmp_path / "answers.json"
        table.write_text(json.dumps(answers), encoding="utf-8")
        environ = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "AZ_LOG": str(log),
            "AZ_ANSWERS": str(table),
            "RESOURCE_GROUP": "rg-d365-dev",
            "LOCATION": "West Europe",
            "D365_TENANT_ID": TENANT,
            "D365_CLIENT_ID": CLIENT_ID,
            "DEVOPS_ORG": "https://dev.azure.com/contoso",
            "DEVOPS_PROJECT": "integration",
            **env,
        }
        result = subprocess.run(
            ["bash", str(PREFLIGHT)],
            env=environ,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        calls = log.read_text(encoding="utf-8").splitlines()
        return Preflight(result.returncode, result.stdout + result.stderr, calls)

    return run


def _missing(output: str) -> list[str]:
    return [line[len("MISSING  ") :] for line in output.splitlines() if line.startswith("MISSING")]


def _fix_after(output: str, missing: str) -> str:
    lines = output.splitlines()
    index = next(
        i for i, line in enumerate(lines) if line.startswith("MISSING") and missing in line
    )
    assert lines[index + 1].startswith("         fix: ")
    return lines[index + 1].removeprefix("         fix: ")


def test_nothing_missing_exits_zero_after_reading_only(run_preflight) -> None:
    run = run_preflight(_answers(), VNET_ENABLED="true")

    assert run.code == 0, run.output
    assert _missing(run.output) == []
    assert "Nothing missing." in run.output
    for text in (
        "ok       signed in as someone@contoso.com",
        "ok       Flex Consumption is offered in westeurope",
        "ok       resource group rg-d365-dev is in westeurope",
        "ok       service connection sc-d365-integration-dev may deploy to rg-d365-dev",
        "ok       variable group d365-integration-dev has every entry",
        "Microsoft.App",
    ):
        assert text in run.output
    verbs = {call.split(" --")[0].split()[-1] for call in run.calls}
    assert verbs <= READ_ONLY, verbs


def test_every_missing_thing_is_printed_with_its_fix(run_preflight) -> None:
    linked = {**GOOD_GROUP, "type": "AzureKeyVault"}
    answers = _answers(
        **{
            "provider show --namespace Microsoft.App ": ("NotRegistered\n", 0, ""),
            "functionapp list-flexconsumption-locations": ("northeurope\neastus\n", 0, ""),
            "group show": ("northeurope\n", 0, ""),
            "role assignment list": ("Contributor\n", 0, ""),
            "devops service-endpoint list": ("\n", 0, ""),
            "pipelines variable-group list": (json.dumps([linked]), 0, ""),
        }
    )
    run = run_preflight(answers, VNET_ENABLED="true")

    assert run.code == 1
    missing = _missing(run.output)
    assert len(missing) == 6, run.output
    assert f"{len(missing)} missing. Fix them, then run this again." in run.output
    assert _fix_after(run.output, "Microsoft.App is NotRegistered") == (
        f"someone with Owner or Contributor on the subscription runs: az provider register "
        f"--namespace Microsoft.App --subscription {SUBSCRIPTION}"
    )
    assert "northeurope eastus" in _fix_after(run.output, "Flex Consumption in westeurope")
    assert "resource group rg-d365-dev is in 'northeurope'" in next(
        m for m in missing if m.startswith("location is 'West Europe'")
    )
    assert "(you have: Contributor)" in next(m for m in missing if "assign roles" in m)
    assert "automatic needs the right to create app registrations" in _fix_after(
        run.output, "service connection sc-d365-integration-dev"
    )
    assert "holds only that vault's secrets" in missing[-1]


def test_a_missing_group_and_missing_entries_are_named(run_preflight) -> None:
    group = {**GOOD_GROUP, "variables": dict(GOOD_GROUP["variables"])}
    for entry in ("resourceGroup", "d365Routes"):
        del group["variables"][entry]
    group["variables"]["d365ClientSecret"] = {"value": "visible", "isSecret": False}
    not_found = "ERROR: (ResourceGroupNotFound) Resource group 'rg-d365-dev' could not be found."
    answers = _answers(
        **{
            "group show": ("", 3, not_found),
            "pipelines variable-group list": (json.dumps([group]), 0, ""),
        }
    )
    run = run_preflight(answers, DEPLOY_PATH="azd")

    assert run.code == 1
    assert "az group create --name rg-d365-dev --location westeurope" in _fix_after(
        run.output, "resource group rg-d365-dev does not exist"
    )
    # No rights are asked for on a group that is not there; azd needs no DevOps checks.
    assert not any(call.startswith("role assignment") for call in run.calls)
    assert not any(call.startswith(("devops", "pipelines")) for call in run.calls)


def test_the_variable_group_report_names_entries_and_a_visible_secret(run_preflight) -> None:
    group = {**GOOD_GROUP, "variables": dict(GOOD_GROUP["variables"])}
    for entry in ("resourceGroup", "d365Routes"):
        del group["variables"][entry]
    group["variables"]["d365ClientSecret"] = {"value": "visible", "isSecret": False}
    run = run_preflight(_answers(**{"pipelines variable-group list": (json.dumps([group]), 0, "")}))

    assert run.code == 1
    assert _missing(run.output) == [
        "entries of d365-integration-dev: resourceGroup, d365Routes",
        "d365-integration-dev: d365ClientSecret is not secret",
    ]
    assert "visible" not in run.output


def test_the_f_and_o_tenant_may_differ_and_is_then_explained(run_preflight) -> None:
    run = run_preflight(_answers(), D365_TENANT_ID=OTHER_TENANT)

    assert run.code == 0, run.output
    (note,) = [line for line in run.output.splitlines() if "F&O tenant" in line]
    assert note.startswith("note ")
    assert f"az login --tenant {OTHER_TENANT} --allow-no-subscriptions" in note
    # The registration lives in the other tenant: not looked for in this one.
    assert not any(call.startswith("ad sp show") for call in run.calls)


def test_an_app_registration_the_tenant_does_not_have_is_missing(run_preflight) -> None:
    error = f"ERROR: Service principal '{CLIENT_ID}' doesn't exist"
    run = run_preflight(_answers(**{"ad sp show": ("", 3, error)}))

    assert run.code == 1
    (missing,) = _missing(run.output)
    assert error in missing
    assert "reuse the registration F&O already knows" in _fix_after(run.output, CLIENT_ID)


def test_not_signed_in_stops_at_once_with_az_s_error(run_preflight) -> None:
    error = "ERROR: Please run 'az login' to setup account."
    run = run_preflight(_answers(**{"account show": ("", 1, error)}))

    assert run.code == 1
    assert run.calls == ["account show --query [id, tenantId, user.name, user.type] --output tsv"]
    assert f"signed in to Azure ({error})" in run.output
    assert "fix: az login" in run.output


def test_without_the_devops_extension_its_install_is_the_fix(run_preflight) -> None:
    error = "ERROR: 'devops' is misspelled or not recognized by the system."
    run = run_preflight(
        _answers(
            **{
                "devops service-endpoint list": ("", 2, error),
                "pipelines variable-group list": ("", 2, error),
            }
        )
    )

    assert run.code == 1
    assert "az extension add --name azure-devops" in _fix_after(
        run.output, "azure-devops extension"
    )


def test_usage_without_a_group(run_preflight) -> None:
    run = run_preflight(_answers(), RESOURCE_GROUP="")

    assert run.code == 2
    assert "usage: RESOURCE_GROUP=<group> LOCATION=<region>" in run.output
    assert run.calls == []


def _read_only(calls: list[str]) -> bool:
    verbs = {call.split(" --")[0].split()[-1] for call in calls}
    rests = [call for call in calls if call.startswith("rest ")]
    return verbs <= READ_ONLY | {"rest"} and all("--method get " in call for call in rests)


def test_with_entra_sign_in_the_registration_and_the_smoke_test_s_role_are_checked(
    run_preflight,
) -> None:
    run = run_preflight(_answers(), HTTP_AUTH="entra", SIGNIN_CLIENT_ID=SIGNIN_ID)

    assert run.code == 0, run.output
    for text in (
        f"ok       sign-in registration {SIGNIN_ID} holds Integration.Reader and Integration.",
        "ok       service connection sc-d365-integration-dev holds an app role of the sign-in",
    ):
        assert text in run.output
    (roles,) = [call for call in run.calls if "appRoleAssignments" in call]
    assert f"servicePrincipals(appId='{CONNECTION_APP_ID}')/appRoleAssignments" in roles
    assert f"resourceId=='{SIGNIN_SP}'" in roles
    assert _read_only(run.calls), run.calls


def test_with_entra_sign_in_what_the_smoke_test_and_signin_app_need_is_named(
    run_preflight,
) -> None:
    answers = _answers(
        **{
            f"ad app show --id {SIGNIN_ID}": ("Integration.Reader\n", 0, ""),
            f"ad app owner list --id {SIGNIN_ID}": (
                "99999999-9999-9999-9999-999999999999\n",
                0,
                "",
            ),
            f"ad sp show --id {SIGNIN_ID}": (f"{SIGNIN_SP}\tFalse\n", 0, ""),
            "rest --method get --url https://graph.microsoft.com/v1.0/servicePrincipals(": (
                "",
                0,
                "",
            ),
        }
    )
    run = run_preflight(answers, HTTP_AUTH="entra", SIGNIN_CLIENT_ID=SIGNIN_ID)

    assert run.code == 1
    missing = _missing(run.output)
    assert missing == [
        f"the app roles Integration.Reader and Integration.Operator on {SIGNIN_ID}",
        f"assignment required on {SIGNIN_ID}'s service principal (without it anyone in the "
        "tenant gets a token for the app)",
        f"the app role Integration.Reader on {SIGNIN_ID} for sc-d365-integration-dev (the smoke "
        "test reads /api/health with its token)",
    ]
    assert f"you do not own registration {SIGNIN_ID}" in run.output
    assert "signin-app.sh again" in _fix_after(run.output, "the app roles Integration.Reader")


def test_with_entra_sign_in_before_the_registration_exists_its_right_is_looked_at(
    run_preflight,
) -> None:
    made = run_preflight(_answers(), HTTP_AUTH="entra", DEPLOY_PATH="azd")
    answers = _answers(
        **{"rest --method get --url https://graph.microsoft.com/v1.0/me/memberOf": ("", 0, "")}
    )
    none = run_preflight(answers, HTTP_AUTH="entra", DEPLOY_PATH="azd")

    assert made.code == none.code == 0, made.output + none.output
    assert "ok       you may create the sign-in app registration" in made.output
    assert "you hold no Entra role for that" in none.output
    assert _read_only(made.calls)


def test_a_group_with_entra_sign_in_needs_the_registration_s_client_id(run_preflight) -> None:
    group = {**GOOD_GROUP, "variables": {**GOOD_GROUP["variables"], "httpAuth": {"value": "entra"}}}
    run = run_preflight(_answers(**{"pipelines variable-group list": (json.dumps([group]), 0, "")}))

    assert run.code == 1
    assert _missing(run.output) == ["d365-integration-dev: signinClientId (httpAuth is entra)"]


def test_a_sign_in_registration_in_another_tenant_is_missing_for_the_pipeline(
    run_preflight,
) -> None:
    # The service connection's identity exists in the subscription's tenant only: it can get no
    # token for a single-tenant registration of another tenant, so the smoke test never passes.
    pipeline = run_preflight(
        _answers(), HTTP_AUTH="entra", SIGNIN_CLIENT_ID=SIGNIN_ID, SIGNIN_TENANT_ID=OTHER_TENANT
    )
    azd = run_preflight(
        _answers(),
        HTTP_AUTH="entra",
        SIGNIN_CLIENT_ID=SIGNIN_ID,
        SIGNIN_TENANT_ID=OTHER_TENANT,
        DEPLOY_PATH="azd",
    )

    assert pipeline.code == 1
    assert _missing(pipeline.output) == [
        f"the sign-in registration in this subscription's tenant {TENANT}, not in "
        f"{OTHER_TENANT}: the pipeline's smoke test gets its token as the service connection, "
        f"whose identity exists in {TENANT} only"
    ]
    assert "leave signinTenantId empty" in _fix_after(pipeline.output, "the sign-in registration")
    assert azd.code == 0, azd.output
    assert f"the sign-in registration is in tenant {OTHER_TENANT}" in azd.output


@pytest.mark.parametrize(
    "script", sorted((REPO_ROOT / "scripts" / "deploy").glob("*.sh")), ids=lambda path: path.name
)
def test_the_scripts_need_no_bash_4(script: Path) -> None:
    # macOS's own bash is 3.2: ${name,,} and ${name^^} are a "bad substitution" there, which
    # stops preflight half-way through its report (the scripts already write empty arrays the
    # 3.2 way, ${a[@]+"${a[@]}"}).
    text = script.read_text(encoding="utf-8")
    assert re.findall(r"\$\{\w+(?:,,?|\^\^?)\}", text) == []
