"""Write the ARM parameters files of infra/main.bicep from the pipeline's environment.

Usage::

    python scripts/deploy/parameters.py OUTPUT_FILE [--secure SECURE_FILE [--keep-vault-secret]]
    az pipelines variable-group list ... --output json | python scripts/deploy/parameters.py \
        --check-group NAME --resource-group RG --location REGION     # preflight.sh

The values come from the stage's variable group (docs/deploy.md, "Variables"), mapped to
environment variables by the pipeline (or exported by hand). A value still holding a
``<placeholder>``, an empty required one, or a bad one stops the run with an error that names
the variable group entry; nothing is written then. The secure values (the client secret, the
alert webhook) never go in OUTPUT_FILE: only in SECURE_FILE, readable by this user alone, which
deploy-infra.sh deletes after the deployment. ``--keep-vault-secret`` leaves the client secret
out of it: the vault already holds one, and a rotation must not be undone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Parameter:
    """One variable group entry, the environment variable holding it and its Bicep parameter
    (None: checked here, used by the scripts, not a template parameter)."""

    name: str | None
    env: str
    variable: str
    required: bool = True
    secure: bool = False


def _optional(name: str, env: str) -> Parameter:
    """An optional entry named as its Bicep parameter; left out, the template's default holds."""
    return Parameter(name, env, name, required=False)


PARAMETERS = (
    Parameter(None, "RESOURCE_GROUP", "resourceGroup"),
    Parameter("namePrefix", "NAME_PREFIX", "namePrefix"),
    Parameter("location", "LOCATION", "location"),
    Parameter("pythonVersion", "PYTHON_VERSION", "pythonVersion"),
    Parameter("d365BaseUrl", "D365_BASE_URL", "d365BaseUrl"),
    Parameter("d365AuthMode", "D365_AUTH_MODE", "d365AuthMode"),
    Parameter("d365TenantId", "D365_TENANT_ID", "d365TenantId"),
    Parameter("d365ClientId", "D365_CLIENT_ID", "d365ClientId"),
    Parameter("d365Routes", "D365_ROUTES", "d365Routes"),
    _optional("keyVaultName", "KEY_VAULT_NAME"),
    _optional("vnetEnabled", "VNET_ENABLED"),
    _optional("d365ClientSecretExpires", "D365_CLIENT_SECRET_EXPIRES"),
    _optional("alertEmail", "ALERT_EMAIL"),
    _optional("httpAuth", "HTTP_AUTH"),
    _optional("signinClientId", "SIGNIN_CLIENT_ID"),
    _optional("signinTenantId", "SIGNIN_TENANT_ID"),
    _optional("exportRoutes", "EXPORT_ROUTES"),
    _optional("packageExportRoutes", "PACKAGE_EXPORT_ROUTES"),
    _optional("exportSchedule", "EXPORT_SCHEDULE"),
    _optional("retentionRecordsDays", "RETENTION_RECORDS_DAYS"),
    _optional("retentionExportsDays", "RETENTION_EXPORTS_DAYS"),
    _optional("retentionAuditDays", "RETENTION_AUDIT_DAYS"),
    _optional("archiveRetentionDays", "ARCHIVE_RETENTION_DAYS"),
    _optional("errorsRetentionDays", "ERRORS_RETENTION_DAYS"),
    _optional("exportsRetentionDays", "EXPORTS_RETENTION_DAYS"),
    _optional("d365Budget", "D365_BUDGET"),
    _optional("d365MaxConcurrency", "D365_MAX_CONCURRENCY"),
    _optional("d365MaxRequestsPer5Min", "D365_MAX_REQUESTS_PER_5MIN"),
    Parameter("d365ClientSecret", "D365_CLIENT_SECRET", "d365ClientSecret", False, secure=True),
    Parameter("alertWebhookUrl", "ALERT_WEBHOOK_URL", "alertWebhookUrl", False, secure=True),
)
AUTH_MODES = ("secret", "managedIdentity")
HTTP_AUTH_MODES = ("key", "entra")
BUDGET_MODES = ("shared", "off")
_GUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
# Only the secret mode names an app registration; a managed identity needs neither.
APP_REGISTRATION = frozenset({"D365_TENANT_ID", "D365_CLIENT_ID"})
_SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PLACEHOLDER = re.compile(r"<[\w -]+>")
# Whole numbers the template takes as int, with the bounds its @minValue/@maxValue (or the
# app's settings) give them.
_INTEGERS = {
    "archiveRetentionDays": (0, None),
    "errorsRetentionDays": (0, None),
    "exportsRetentionDays": (0, None),
    "d365MaxConcurrency": (1, 1000),
    "d365MaxRequestsPer5Min": (1, 1_000_000),
}
_RETENTION_DAYS = frozenset({"retentionRecordsDays", "retentionExportsDays", "retentionAuditDays"})


class ParameterError(ValueError):
    """A variable is missing, still a placeholder, or not an accepted value."""


@dataclass(frozen=True)
class Documents:
    """The two parameters documents: public values, and the secure ones (empty: none)."""

    public: dict[str, object]
    secure: dict[str, object]


def _unset(value: str | None) -> bool:
    # Azure Pipelines passes an undefined variable on as its macro text, "$(name)".
    return not value or value.startswith("$(")


def parse_expiry(text: str, now: datetime | None = None) -> str:
    """The secret's expiry as Bicep's dateTimeToEpoch takes it: ``YYYY-MM-DDTHH:MM:SSZ``.

    :param text: an ISO 8601 date (``2027-06-30``, midnight UTC) or date and time with an
        offset (``2027-06-30T00:00:00Z``).
    :raises ParameterError: when it is no such date, has no offset, or is not in the future.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ParameterError(
            f"d365ClientSecretExpires is {text!r}: use an ISO 8601 date, e.g. 2027-06-30 or "
            "2027-06-30T00:00:00Z (the credential's endDateTime)"
        ) from None
    if "T" not in text:
        moment = moment.replace(tzinfo=UTC)
    if moment.tzinfo is None:
        raise ParameterError(
            f"d365ClientSecretExpires is {text!r}: add the offset, e.g. {text.strip()}Z (UTC)"
        )
    moment = moment.astimezone(UTC)
    if moment <= (now or datetime.now(UTC)):
        raise ParameterError(
            f"d365ClientSecretExpires is {text!r}, which has passed: create a new client secret "
            "(docs/deploy.md, 'Rotating the client secret') and give its end date"
        )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _integer(variable: str, value: str, low: int, high: int | None) -> int:
    within = f"{low} to {high}" if high is not None else f"{low} or more"
    if not re.fullmatch(r"\d+", value.strip()) or not (
        low <= int(value) and (high is None or int(value) <= high)
    ):
        raise ParameterError(f"{variable} is {value!r}: give a whole number, {within}")
    return int(value)


def _route_list(variable: str, value: str) -> str:
    """A JSON array of objects, as the template's json() and the app read it; passed verbatim.
    Each route names its container: the lifecycle rule of exportsRetentionDays reads it while
    deploying, so one without fails the deployment (the app would refuse it anyway)."""
    try:
        routes = json.loads(value)
    except ValueError as error:
        raise ParameterError(
            f"{variable} is not JSON ({error}): one JSON array, on one line"
        ) from None
    if not isinstance(routes, list) or not all(isinstance(route, dict) for route in routes):
        raise ParameterError(f"{variable} must be a JSON array of route objects (README)")
    unnamed = [
        str(route.get("name", index))
        for index, route in enumerate(routes)
        if not isinstance(route.get("container"), str) or not route["container"]
    ]
    if unnamed:
        raise ParameterError(
            f"{variable}: the routes {', '.join(unnamed)} name no container (README)"
        )
    return value


def _checked(parameter: Parameter, value: str) -> object:
    """The value as the template takes it; raises ParameterError when it is not accepted."""
    name = parameter.name or ""
    if name == "vnetEnabled":
        return value.lower() == "true"
    if name == "d365ClientSecretExpires":
        return parse_expiry(value)
    if name in _INTEGERS:
        return _integer(name, value, *_INTEGERS[name])
    if name in _RETENTION_DAYS and value != "never":
        _integer(name, value, 1, 36500)
    if name in ("exportRoutes", "packageExportRoutes"):
        return _route_list(name, value)
    if name == "exportSchedule" and len(value.split()) != 6:
        raise ParameterError(
            f"exportSchedule is {value!r}: an NCRONTAB of six fields, seconds first "
            "(e.g. 0 */5 * * * *)"
        )
    if name == "alertEmail" and not _EMAIL.fullmatch(value):
        raise ParameterError(f"alertEmail is {value!r}: give one e-mail address")
    if name == "httpAuth" and value not in HTTP_AUTH_MODES:
        raise ParameterError(f"httpAuth is {value!r}: use key or entra (docs/auth.md)")
    if name == "d365Budget" and value not in BUDGET_MODES:
        raise ParameterError(f"d365Budget is {value!r}: use shared or off (README)")
    if name in ("signinClientId", "signinTenantId") and not _GUID.fullmatch(value):
        what = "application (client) id" if name == "signinClientId" else "tenant id"
        raise ParameterError(
            f"{name} is {value!r}: give the app registration's {what}, a GUID (docs/auth.md)"
        )
    if name == "alertWebhookUrl" and not value.startswith("https://"):
        raise ParameterError("alertWebhookUrl must be an https:// URL (its value is not shown)")
    return value


def build_documents(environ: Mapping[str, str]) -> Documents:
    """The parameters documents for ``az deployment group``.

    :raises ParameterError: every problem found, one per line.
    """
    problems: list[str] = []
    auth_mode = environ.get("D365_AUTH_MODE", "")
    if auth_mode not in AUTH_MODES:
        problems.append(
            f"d365AuthMode is {auth_mode!r}: use one of {', '.join(AUTH_MODES)} "
            "(certificate mode is not deployed: docs/deploy.md, 'Credentials')"
        )
    public: dict[str, object] = {}
    secure: dict[str, object] = {}
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
        # A secret may hold < and >; only one that is all placeholder ("<client-secret>") is.
        placeholder = (
            _PLACEHOLDER.fullmatch(value) if parameter.secure else "<" in value and ">" in value
        )
        if placeholder:
            problems.append(f"{parameter.variable} still holds a placeholder: set it in the group")
            continue
        try:
            checked = _checked(parameter, value)
        except ParameterError as error:
            problems.append(str(error))
            continue
        if parameter.name is not None:
            (secure if parameter.secure else public)[parameter.name] = checked
    if "d365ClientSecret" in secure and _unset(environ.get("D365_CLIENT_SECRET_EXPIRES")):
        problems.append(
            "d365ClientSecretExpires is not set: the client secret is written to Key Vault only "
            "with its expiry date, so that Key Vault warns 30 days before it. Set it to the "
            "credential's end date (az ad app credential list --id <d365ClientId> --query "
            '"[].{name: displayName, end: endDateTime}"), or remove d365ClientSecret from the '
            "group once the vault holds it"
        )
    if public.get("httpAuth") == "entra" and "signinClientId" not in public:
        problems.append(
            "signinClientId is not set: httpAuth entra needs the client id of the app "
            "registration that holds the app roles (docs/auth.md, 'The app registration')"
        )
    if problems:
        raise ParameterError("\n".join(problems))
    return Documents(public, secure)


def check_group(
    groups: Sequence[Mapping[str, Any]], name: str, *, resource_group: str, location: str
) -> list[tuple[str, str, str]]:
    """What a variable group as ``az pipelines variable-group list`` shows it lacks for a
    deployment: ``(kind, what, fix)`` with kind ok, note or missing. Values of secret entries are
    never shown by az, nor read here."""
    found = [group for group in groups if group.get("name") == name]
    if not found:
        return [("missing", f"variable group {name}", "Pipelines > Library (section 4.2)")]
    group = found[0]
    if group.get("type") == "AzureKeyVault":
        return [
            (
                "missing",
                f"{name} is linked to a Key Vault: such a group holds only that vault's secrets",
                "a plain group with the entries of section 4.2 (d365ClientSecret padlocked)",
            )
        ]
    variables: Mapping[str, Mapping[str, Any]] = group.get("variables") or {}
    values = {key: str(entry.get("value") or "") for key, entry in variables.items()}
    auth_mode = values.get("d365AuthMode", "secret")
    report: list[tuple[str, str, str]] = []
    lacking = [
        parameter.variable
        for parameter in PARAMETERS
        if parameter.required
        and not (auth_mode == "managedIdentity" and parameter.env in APP_REGISTRATION)
        and parameter.variable != "pythonVersion"
        and not values.get(parameter.variable)
    ]
    if lacking:
        report.append(("missing", f"entries of {name}: {', '.join(lacking)}", "section 4.2"))
    placeholders = [key for key, value in values.items() if "<" in value and ">" in value]
    if placeholders:
        report.append(("missing", f"placeholders in {name}: {', '.join(placeholders)}", "set them"))
    if values.get("resourceGroup", resource_group) != resource_group:
        report.append(
            ("missing", f"{name}: resourceGroup is {values['resourceGroup']!r}", resource_group)
        )
    wanted = values.get("location", location).replace(" ", "").lower()
    if wanted != location:
        report.append(
            (
                "missing",
                f"{name}: location is {values['location']!r}, the group is in {location}",
                f"set location to {location}",
            )
        )
    if values.get("httpAuth") == "entra" and not values.get("signinClientId"):
        report.append(
            ("missing", f"{name}: signinClientId (httpAuth is entra)", "docs/auth.md, section 1")
        )
    secret = variables.get("d365ClientSecret")
    if auth_mode == "secret" and secret is None:
        report.append(
            (
                "note",
                f"{name} has no d365ClientSecret: the first deployment needs it (and "
                "d365ClientSecretExpires); later ones do not",
                "",
            )
        )
    elif secret is not None and not secret.get("isSecret"):
        report.append(("missing", f"{name}: d365ClientSecret is not secret", "padlock it"))
    elif secret is not None and not values.get("d365ClientSecretExpires"):
        report.append(
            ("missing", f"{name}: d365ClientSecretExpires", "the secret's end date (section 4.2)")
        )
    if not report:
        report.append(("ok", f"variable group {name} has every entry", ""))
    return report


def _document(values: Mapping[str, object]) -> dict[str, object]:
    return {
        "$schema": _SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": {name: {"value": value} for name, value in values.items()},
    }


def _write_private(path: Path, document: Mapping[str, object]) -> None:
    """Write ``path`` readable by this user only, from its creation on."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(document, file)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the file(s), or print each problem as an Azure Pipelines error and return 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, nargs="?")
    parser.add_argument("--secure", type=Path, help="where the secure values go (if any)")
    parser.add_argument(
        "--keep-vault-secret",
        action="store_true",
        help="leave the client secret out: the vault already holds one",
    )
    parser.add_argument("--check-group", metavar="NAME", help="report on a variable group")
    parser.add_argument("--resource-group", default="")
    parser.add_argument("--location", default="")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.check_group:
        report = check_group(
            json.load(sys.stdin),
            args.check_group,
            resource_group=args.resource_group,
            location=args.location,
        )
        sys.stdout.writelines(f"{kind}|{what}|{fix}\n" for kind, what, fix in report)
        return 0
    if args.output is None:
        parser.error("OUTPUT_FILE is required")
    try:
        documents = build_documents(os.environ)
    except ParameterError as error:
        for line in str(error).splitlines():
            sys.stdout.write(f"##vso[task.logissue type=error]{line} (docs/deploy.md)\n")
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(_document(documents.public), indent=2), encoding="utf-8")
    if args.secure is not None:
        secure = dict(documents.secure)
        if args.keep_vault_secret:
            secure.pop("d365ClientSecret", None)
        args.secure.unlink(missing_ok=True)
        if secure:
            _write_private(args.secure, _document(secure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
