"""Write the ARM parameters file of infra/main.bicep from the pipeline's environment.

Usage::

    python scripts/deploy/parameters.py OUTPUT_FILE

The values come from the stage's variable group (docs/deploy.md, "Variables"), mapped to
environment variables by azure-pipelines.yml. A value still holding a ``<placeholder>``, or an
empty required one, stops the run with an error that names the variable group entry; nothing
is written then. The client secret never goes in this file (see deploy-infra.sh).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Parameter:
    """One Bicep parameter, the environment variable holding it and its group entry."""

    name: str
    env: str
    variable: str
    required: bool = True


PARAMETERS = (
    Parameter("namePrefix", "NAME_PREFIX", "namePrefix"),
    Parameter("location", "LOCATION", "location"),
    Parameter("pythonVersion", "PYTHON_VERSION", "pythonVersion"),
    Parameter("d365BaseUrl", "D365_BASE_URL", "d365BaseUrl"),
    Parameter("d365AuthMode", "D365_AUTH_MODE", "d365AuthMode"),
    Parameter("d365TenantId", "D365_TENANT_ID", "d365TenantId"),
    Parameter("d365ClientId", "D365_CLIENT_ID", "d365ClientId"),
    Parameter("d365Routes", "D365_ROUTES", "d365Routes"),
    Parameter("keyVaultName", "KEY_VAULT_NAME", "keyVaultName", required=False),
    Parameter("vnetEnabled", "VNET_ENABLED", "vnetEnabled", required=False),
)
AUTH_MODES = ("secret", "managedIdentity")
# Only the secret mode names an app registration; a managed identity needs neither.
APP_REGISTRATION = frozenset({"D365_TENANT_ID", "D365_CLIENT_ID"})


class ParameterError(ValueError):
    """A variable is missing, still a placeholder, or not an accepted value."""


def _unset(value: str | None) -> bool:
    # Azure Pipelines passes an undefined variable on as its macro text, "$(name)".
    return not value or value.startswith("$(")


def build_parameters(environ: Mapping[str, str]) -> dict[str, object]:
    """The parameters document for ``az deployment group``.

    :raises ParameterError: every problem found, one per line.
    """
    problems: list[str] = []
    auth_mode = environ.get("D365_AUTH_MODE", "")
    if auth_mode not in AUTH_MODES:
        problems.append(
            f"d365AuthMode is {auth_mode!r}: use one of {', '.join(AUTH_MODES)} "
            "(certificate mode is not deployed: docs/deploy.md, 'Credentials')"
        )
    values: dict[str, object] = {}
    for parameter in PARAMETERS:
        value = environ.get(parameter.env)
        needed = parameter.required and not (
            auth_mode == "managedIdentity" and parameter.env in APP_REGISTRATION
        )
        if _unset(value):
            if needed:
                problems.append(f"{parameter.variable} is not set in the variable group")
            continue
        assert value is not None
        if "<" in value and ">" in value:
            problems.append(f"{parameter.variable} still holds a placeholder: set it in the group")
            continue
        values[parameter.name] = value
    if "vnetEnabled" in values:
        values["vnetEnabled"] = str(values["vnetEnabled"]).lower() == "true"
    if problems:
        raise ParameterError("\n".join(problems))
    return {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {name: {"value": value} for name, value in values.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write the file, or print each problem as an Azure Pipelines error and return 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: parameters.py OUTPUT_FILE\n")
        return 2
    try:
        document = build_parameters(os.environ)
    except ParameterError as error:
        for line in str(error).splitlines():
            sys.stdout.write(f"##vso[task.logissue type=error]{line} (docs/deploy.md)\n")
        return 1
    Path(args[0]).write_text(json.dumps(document, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
