"""Structural checks of the Bicep templates (no Bicep compiler here: see tests/deploy/bicep.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import shared.config
from shared.config import Settings
from tests import fakes
from tests.deploy.bicep import BicepFile, Module, object_literals, top_level_keys

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
MAIN = INFRA / "main.bicep"
PARAMETERS = INFRA / "main.parameters.json"
TEMPLATES = sorted(INFRA.rglob("*.bicep"))

# The settings contract (shared/config/__init__.py): every one must be an app setting in Azure.
CONTRACT_SETTINGS = (
    "D365_BASE_URL",
    "D365_TENANT_ID",
    "D365_CLIENT_ID",
    "D365_CLIENT_SECRET",
    "D365_MANAGED_IDENTITY_CLIENT_ID",
    "D365_AUTHORITY_HOST",
    "D365_ROUTES",
    "D365_HTTP_TIMEOUT",
    "D365_WRITE_TIMEOUT",
    "D365_SAS_HOSTS",
    "INBOUND_CONTAINER",
    "ARCHIVE_CONTAINER",
    "ERRORS_CONTAINER",
    "ARCHIVE_MODE",
    "STATUS_TABLE",
    "POLL_SCHEDULE",
    "POLL_CONCURRENCY",
    "POLL_TICK_BUDGET",
    "POLL_INTERVAL_MIN",
    "POLL_INTERVAL_MAX",
    "MAX_PENDING_AGE",
    "CLAIM_LEASE",
    "MAX_FILE_BYTES",
    "EXPORT_ROUTES",
    "EXPORT_SCHEDULE",
    "EXPORT_MAX_ATTEMPTS",
    "PACKAGE_EXPORT_ROUTES",
    "ZIP_MAX_MEMBERS",
    "ZIP_MAX_MEMBER_BYTES",
    "ZIP_MAX_TOTAL_BYTES",
    "ZIP_MAX_RATIO",
    "ZIP_MAX_MANIFEST_BYTES",
    "IntegrationStorage__blobServiceUri",
    "IntegrationStorage__queueServiceUri",
    "IntegrationStorage__tableServiceUri",
    "IntegrationStorage__credential",
    "IntegrationStorage__clientId",
)
# Certificate mode reads a file that nothing puts on a Flex instance: local use only.
LOCAL_ONLY_SETTINGS = {"D365_CLIENT_CERTIFICATE_PATH", "D365_CLIENT_CERTIFICATE_PASSWORD"}
PLATFORM_SETTINGS = (
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
)
SETTINGS_VARIABLES = (
    "storageSettings",
    "monitoringSettings",
    "secretAuthSettings",
    "managedIdentityAuthSettings",
    "integrationSettings",
)
# Built-in role definition ids, from the Azure built-in roles reference.
KNOWN_ROLES = {
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageBlobDataContributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
}
# (file, resource symbol) -> flag lines that must be there, each under a "Why" comment.
SECURITY_FLAGS = {
    ("app/storage.bicep", "storage"): (
        "allowSharedKeyAccess: false",
        "allowBlobPublicAccess: false",
        "minimumTlsVersion: 'TLS1_2'",
        "supportsHttpsTrafficOnly: true",
        "defaultToOAuthAuthentication: true",
        "allowCrossTenantReplication: false",
        "publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'",
    ),
    ("app/keyvault.bicep", "vault"): (
        "enableRbacAuthorization: true",
        "enableSoftDelete: true",
        "enablePurgeProtection: true",
        "publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'",
    ),
    ("app/monitoring.bicep", "applicationInsights"): ("DisableLocalAuth: true",),
    ("app/function.bicep", "site"): (
        "httpsOnly: true",
        "keyVaultReferenceIdentity: identityId",
        "minTlsVersion: '1.2'",
    ),
}
SECRET_PATTERNS = (
    re.compile(r"AccountKey\s*=", re.IGNORECASE),
    re.compile(r"SharedAccessSignature\s*=", re.IGNORECASE),
    re.compile(r"[?&]sig=", re.IGNORECASE),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"InstrumentationKey\s*=", re.IGNORECASE),
    # A function key written into a URL (the template builds it from listKeys() instead).
    re.compile(r"[?&]code=[A-Za-z0-9]"),
)
# A key-like run: account keys, function keys and client secrets are 32+ characters mixing
# upper case, lower case and digits (GUIDs are lower-case hex with hyphens: not matched).
KEY_LIKE = re.compile(r"[A-Za-z0-9+/_~-]{32,}={0,2}")


def _file(relative: str) -> BicepFile:
    return BicepFile(INFRA / relative)


def _relative(path: Path) -> str:
    return path.relative_to(INFRA).as_posix()


def _unquote(expression: str) -> str:
    assert expression.startswith("'") and expression.endswith("'"), expression
    return expression[1:-1]


def _settings_keys() -> dict[str, str]:
    function = _file("app/function.bicep")
    keys: dict[str, str] = {}
    for name in SETTINGS_VARIABLES:
        for body in object_literals(function.variable(name)):
            keys.update(top_level_keys(body))
    return keys


def _main_module(symbol: str) -> Module:
    return next(module for module in BicepFile(MAIN).modules() if module.symbol == symbol)


def _main_value(function_param: str) -> str | None:
    """The value main.bicep gives a function.bicep param, when it is a literal or a default."""
    main = BicepFile(MAIN)
    expression = _main_module("functionApp").params[function_param]
    param = main.params().get(expression)
    if param is not None:
        expression = param.default or ""
    elif re.fullmatch(r"\w+", expression):
        expression = main.variable(expression)
    if expression.startswith("'"):
        return _unquote(expression)
    return expression if re.fullmatch(r"\d+", expression) else None


@pytest.mark.parametrize("path", TEMPLATES, ids=_relative)
def test_every_declared_param_is_used(path: Path) -> None:
    template = BicepFile(path)
    unused = [name for name in template.params() if template.param_uses(name) == 0]
    assert unused == [], f"{_relative(path)} declares params it never reads: {unused}"


@pytest.mark.parametrize("path", TEMPLATES, ids=_relative)
def test_modules_exist_and_get_exactly_their_params(path: Path) -> None:
    for module in BicepFile(path).modules():
        target = path.parent / module.path
        assert target.is_file(), f"{_relative(path)}: module {module.symbol} -> missing {target}"
        declared = BicepFile(target).params()
        unknown = set(module.params) - set(declared)
        missing = {name for name, param in declared.items() if param.default is None} - set(
            module.params
        )
        assert unknown == set(), f"{module.symbol} passes params {module.path} lacks: {unknown}"
        assert missing == set(), f"{module.symbol} leaves required params unset: {missing}"


def test_every_module_file_is_referenced() -> None:
    referenced = {
        (path.parent / module.path).resolve()
        for path in TEMPLATES
        for module in BicepFile(path).modules()
    }
    # Phase 2 deploys the event subscription template on its own (scripts/deploy).
    standalone = {MAIN, INFRA / "app" / "eventsubscription.bicep"}
    orphans = [
        _relative(path) for path in TEMPLATES if path not in standalone and path not in referenced
    ]
    assert orphans == []


def test_each_resource_type_uses_one_ga_api_version() -> None:
    versions: dict[str, set[str]] = {}
    for path in TEMPLATES:
        for resource in BicepFile(path).resources():
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", resource.api_version), resource
            versions.setdefault(resource.type, set()).add(resource.api_version)
    mixed = {kind: found for kind, found in versions.items() if len(found) > 1}
    assert mixed == {}


def test_app_settings_cover_the_settings_contract() -> None:
    keys = _settings_keys()
    missing = [name for name in (*CONTRACT_SETTINGS, *PLATFORM_SETTINGS) if name not in keys]
    assert missing == [], f"function.bicep lacks app settings: {missing}"


def test_every_setting_documented_by_the_app_is_in_the_template() -> None:
    documented = set(re.findall(r"``([A-Z][A-Z0-9]*_[A-Z0-9_]+)``", shared.config.__doc__ or ""))
    assert documented, "shared/config/__init__.py documents its settings in its docstring"
    assert documented - set(_settings_keys()) == LOCAL_ONLY_SETTINGS


def test_all_settings_reach_the_site() -> None:
    function = _file("app/function.bicep")
    assert re.sub(r"\s+", " ", function.variable("appSettings")) == (
        "union(storageSettings, monitoringSettings, authSettings, integrationSettings)"
    )
    auth = function.variable("authSettings")
    assert auth == ("d365AuthMode == 'secret' ? secretAuthSettings : managedIdentityAuthSettings")
    site = next(res for res in function.resources() if res.symbol == "site")
    assert "for setting in items(appSettings)" in site.body


def test_flex_has_no_worker_runtime_setting_and_runs_python() -> None:
    for path in TEMPLATES:
        assert "FUNCTIONS_WORKER_RUNTIME" not in BicepFile(path).code, _relative(path)
    site = next(res for res in _file("app/function.bicep").resources() if res.symbol == "site")
    assert "name: 'python'" in site.body
    assert "version: pythonVersion" in site.body
    assert BicepFile(MAIN).params()["pythonVersion"].default == "'3.12'"


def test_storage_connections_are_identity_based() -> None:
    keys = _settings_keys()
    for connection in ("AzureWebJobsStorage", "IntegrationStorage"):
        assert keys[f"{connection}__credential"] == "'managedidentity'"
        assert keys[f"{connection}__clientId"] == "identityClientId"
        assert connection not in keys, f"{connection} as a connection string"
    for path in TEMPLATES:
        assert "listKeys" not in BicepFile(path).code or path.name == "eventsubscription.bicep"
    assert keys["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "'ClientId=${identityClientId};Authorization=AAD'"
    )


def test_client_secret_is_a_key_vault_reference_read_with_the_identity() -> None:
    function = _file("app/function.bicep")
    keys = _settings_keys()
    assert keys["D365_CLIENT_SECRET"] == "clientSecretReference"
    assert function.variable("clientSecretReference") == (
        "'@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${clientSecretName}/)'"
    )
    assert not LOCAL_ONLY_SETTINGS & set(keys)


def test_certificate_mode_is_not_offered_by_the_template() -> None:
    main = BicepFile(MAIN)
    assert main.params()["d365AuthMode"].decorators[-1] == "@allowed(['secret', 'managedIdentity'])"
    for path in TEMPLATES:
        assert "CERTIFICATE" not in BicepFile(path).code, _relative(path)


@pytest.mark.parametrize("path", TEMPLATES, ids=_relative)
def test_role_definition_ids_are_the_built_in_roles(path: Path) -> None:
    template = BicepFile(path)
    if "roleDefinitionIds" not in template.code:
        return
    roles = {
        name: _unquote(value)
        for name, value in top_level_keys(template.variable("roleDefinitionIds")[1:-1]).items()
    }
    assert {name: KNOWN_ROLES.get(name) for name in roles} == roles
    # Every GUID literal of the file is in the named table: no anonymous role ids.
    guids = set(re.findall(r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}", template.source))
    assert guids <= set(roles.values())


@pytest.mark.parametrize("path", TEMPLATES, ids=_relative)
def test_role_assignments_are_named_from_scope_principal_and_role(path: Path) -> None:
    for resource in BicepFile(path).resources():
        if resource.type != "Microsoft.Authorization/roleAssignments":
            continue
        body = top_level_keys(resource.body)
        name = re.fullmatch(r"guid\((\w+)\.id, (\w+(?:\.\w+)*), (\S+)\)", body["name"])
        assert name, f"{resource.symbol}: name {body['name']} is not guid(scope, principal, role)"
        scope, principal, role = name.groups()
        assert body["scope"] == scope
        assert role.startswith("roleDefinitionIds.") or role == "roleId"
        properties = top_level_keys(body["properties"].strip()[1:-1])
        assert properties["principalType"] == "'ServicePrincipal'"
        # The very principal the assignment grants: a name derived from anything else (a
        # resource id) stays when the principal changes, and ARM refuses to repoint it
        # (RoleAssignmentUpdateNotPermitted) when e.g. the Event Grid topic is recreated.
        assert properties["principalId"] == principal, f"{resource.symbol}: {body['name']}"


def test_the_dead_letter_role_follows_the_topic_identity() -> None:
    eventgrid = _file("app/eventgrid.bicep")
    (module,) = [m for m in eventgrid.modules() if m.path == "deadletter-writer.bicep"]
    assert module.params["principalId"] == "systemTopic.identity.principalId"
    (assignment,) = [
        r
        for r in _file("app/deadletter-writer.bicep").resources()
        if r.type == "Microsoft.Authorization/roleAssignments"
    ]
    assert "scope: deadLetterContainer" in assignment.body
    assert "roleDefinitionIds.storageBlobDataContributor" in assignment.body


def test_the_app_identity_has_exactly_the_roles_it_needs() -> None:
    rbac = _file("app/rbac.bicep")
    storage_roles = re.findall(r"roleDefinitionIds\.(\w+)", rbac.variable("storageRoles"))
    assert storage_roles == [
        "storageBlobDataOwner",
        "storageQueueDataContributor",
        "storageTableDataContributor",
    ]
    granted = set()
    for resource in rbac.resources():
        if resource.type != "Microsoft.Authorization/roleAssignments":
            continue
        scope = re.search(r"scope: (\w+)", resource.body).group(1)
        role = re.search(r"roleDefinitionIds\.(\w+)\)", resource.body.replace("\n", ""))
        granted.add((scope, role.group(1) if role else "storageRoles"))
    assert granted == {
        ("storage", "storageRoles"),
        ("applicationInsights", "monitoringMetricsPublisher"),
        ("vault", "keyVaultSecretsUser"),
    }
    assert _main_module("rbac").params["principalId"] == "identity.properties.principalId"


@pytest.mark.parametrize(("location", "flags"), SECURITY_FLAGS.items(), ids=str)
def test_security_flags_are_set_and_explained(
    location: tuple[str, str], flags: tuple[str, ...]
) -> None:
    relative, symbol = location
    template = _file(relative)
    resource = next(res for res in template.resources() if res.symbol == symbol)
    assert all(flag in resource.body for flag in flags), resource.body
    lines = template.text.splitlines()
    for flag in flags:
        index = next(i for i, line in enumerate(lines) if line.strip() == flag)
        above = index - 1
        while lines[above].strip().startswith("//") and "Why:" not in lines[above]:
            above -= 1
        assert "// Why:" in lines[above], f"{relative}: no 'Why' comment above {flag}"


def test_main_template_holds_no_event_subscription_and_outputs_what_phase_two_needs() -> None:
    main = BicepFile(MAIN)
    assert "deployEventSubscription" not in main.params()
    assert all(module.path != "app/eventsubscription.bicep" for module in main.modules())
    phase_two = BicepFile(INFRA / "app" / "eventsubscription.bicep").params()
    assert {param.default for param in phase_two.values()} == {None}
    outputs = set(main.outputs())
    assert {"functionAppName", "functionAppHostName", "systemTopicName"} <= outputs
    assert {"storageAccountName", "inboundContainerName", "deadLetterContainerName"} <= outputs


def test_sign_in_endpoint_comes_from_the_cloud_deployed_to() -> None:
    authority = BicepFile(MAIN).params()["d365AuthorityHost"]
    assert authority.default == "environment().authentication.loginEndpoint"
    for path in TEMPLATES:
        assert "login.microsoftonline.com" not in BicepFile(path).code, _relative(path)
    config = json.loads((INFRA / "bicepconfig.json").read_text(encoding="utf-8"))
    rules = config["analyzers"]["core"]["rules"]
    assert rules["no-hardcoded-env-urls"]["level"] == "error"


def test_maximum_instance_count_is_within_what_flex_accepts() -> None:
    # Learn, Event-driven scaling, "Limit scale-out" (Flex Consumption): "the lowest maximum
    # instance count value is 1, and the highest supported maximum instance count value is 1000".
    param = BicepFile(MAIN).params()["maximumInstanceCount"]
    assert "@minValue(1)" in param.decorators
    assert "@maxValue(1000)" in param.decorators
    assert 1 <= int(param.default or "0") <= 1000


def test_vnet_option_adds_private_endpoints_and_vnet_integration() -> None:
    main = BicepFile(MAIN)
    assert main.params()["vnetEnabled"].default == "false"
    network = _main_module("network")
    assert network.condition == "vnetEnabled"
    assert _main_module("functionApp").params["appSubnetId"] == (
        "vnetEnabled ? network.outputs.appSubnetId : ''"
    )
    template = _file("app/network.bicep")
    assert "serviceName: 'Microsoft.App/environments'" in template.source
    group_ids = re.findall(r"groupId: '(\w+)'", template.source)
    assert group_ids == ["blob", "queue", "table", "vault"]
    site = next(res for res in _file("app/function.bicep").resources() if res.symbol == "site")
    assert "virtualNetworkSubnetId: empty(appSubnetId) ? null : appSubnetId" in site.body


# Microsoft's table "Azure Private Endpoint private DNS zone values"
# (https://learn.microsoft.com/azure/private-link/private-endpoint-dns): the zone of each private
# link sub-resource, per cloud.
PRIVATE_DNS_ZONES = {
    "AzureCloud": {
        "blob": "privatelink.blob.core.windows.net",
        "queue": "privatelink.queue.core.windows.net",
        "table": "privatelink.table.core.windows.net",
        "vault": "privatelink.vaultcore.azure.net",
    },
    "AzureUSGovernment": {
        "blob": "privatelink.blob.core.usgovcloudapi.net",
        "queue": "privatelink.queue.core.usgovcloudapi.net",
        "table": "privatelink.table.core.usgovcloudapi.net",
        "vault": "privatelink.vaultcore.usgovcloudapi.net",
    },
    "AzureChinaCloud": {
        "blob": "privatelink.blob.core.chinacloudapi.cn",
        "queue": "privatelink.queue.core.chinacloudapi.cn",
        "table": "privatelink.table.core.chinacloudapi.cn",
        "vault": "privatelink.vaultcore.azure.cn",
    },
}
# environment().suffixes in each cloud (Bicep deployment functions, environment()).
CLOUD_SUFFIXES = {
    "AzureCloud": {"storage": "core.windows.net", "keyvaultDns": ".vault.azure.net"},
    "AzureUSGovernment": {
        "storage": "core.usgovcloudapi.net",
        "keyvaultDns": ".vault.usgovcloudapi.net",
    },
    "AzureChinaCloud": {"storage": "core.chinacloudapi.cn", "keyvaultDns": ".vault.azure.cn"},
}


def _evaluate(expression: str, suffixes: dict[str, str]) -> str:
    """A Bicep string expression of literals, environment().suffixes.x and replace()."""
    expression = expression.strip()
    suffix = re.fullmatch(r"environment\(\)\.suffixes\.(\w+)", expression)
    if suffix:
        return suffixes[suffix.group(1)]
    call = re.fullmatch(r"replace\((.+), '([^']*)', '([^']*)'\)", expression)
    if call:
        return _evaluate(call.group(1), suffixes).replace(call.group(2), call.group(3))
    literal = _unquote(expression)
    return re.sub(r"\$\{([^}]+)\}", lambda m: _evaluate(m.group(1), suffixes), literal)


def test_every_private_dns_zone_is_the_one_microsoft_lists() -> None:
    network = _file("app/network.bicep")
    zone_resources = [
        (path, resource)
        for path in TEMPLATES
        for resource in BicepFile(path).resources()
        if resource.type == "Microsoft.Network/privateDnsZones"
    ]
    # Every zone of every template is one of the endpoints' zones below.
    assert [(p.name, top_level_keys(r.body)["name"]) for p, r in zone_resources] == [
        ("network.bicep", "endpoint.zone")
    ]
    endpoints = [top_level_keys(body) for body in object_literals(network.variable("endpoints"))]
    assert [endpoint["groupId"] for endpoint in endpoints] == [
        "'blob'",
        "'queue'",
        "'table'",
        "'vault'",
    ]
    for cloud, suffixes in CLOUD_SUFFIXES.items():
        zones = {
            _unquote(endpoint["groupId"]): _evaluate(endpoint["zone"], suffixes)
            for endpoint in endpoints
        }
        assert zones == PRIVATE_DNS_ZONES[cloud], cloud


def test_key_vault_name_is_a_parameter_the_pipeline_can_set() -> None:
    assert "keyVaultName" in BicepFile(MAIN).params()
    assert _main_module("keyVault").params["name"] == "keyVaultName"


def test_a_secret_is_written_only_with_its_expiry() -> None:
    vault = _file("app/keyvault.bicep")
    (secret,) = [r for r in vault.resources() if r.type == "Microsoft.KeyVault/vaults/secrets"]
    assert secret.condition == "!empty(d365ClientSecret)"
    attributes = top_level_keys(top_level_keys(secret.body)["properties"].strip()[1:-1])
    exp = top_level_keys(attributes["attributes"].strip()[1:-1])["exp"]
    refused = re.fullmatch(
        r"empty\(d365ClientSecret\) \? 0 : empty\(d365ClientSecretExpires\) \? fail\('([^']+)'\) : "
        r"dateTimeToEpoch\(d365ClientSecretExpires\)",
        exp,
    )
    assert refused, exp
    assert "d365ClientSecretExpires" in refused.group(1)
    assert "D365_CLIENT_SECRET_EXPIRES" in refused.group(1)
    assert vault.params()["d365ClientSecretExpires"].default is None
    assert _main_module("keyVault").params["d365ClientSecretExpires"] == "d365ClientSecretExpires"


def test_event_subscription_targets_the_trigger_webhook() -> None:
    template = _file("app/eventsubscription.bicep")
    resource = next(res for res in template.resources() if not res.existing)
    assert resource.type == "Microsoft.EventGrid/systemTopics/eventSubscriptions"
    body = resource.body
    assert "endpointType: 'WebHook'" in body
    assert (
        "'https://${site.properties.defaultHostName}/runtime/webhooks/blobs"
        "?functionName=Host.Functions.enqueue_blob"
        "&code=${siteHost.listKeys().systemKeys.blobs_extension}'"
    ) in body
    assert "subjectBeginsWith: '/blobServices/default/containers/${inboundContainerName}/'" in body
    assert "'Microsoft.Storage.BlobCreated'" in body
    assert re.search(r"retryPolicy: \{\s+maxDeliveryAttempts: 30", body)
    assert "deadLetterWithResourceIdentity" in body
    assert "blobContainerName: deadLetterContainerName" in body
    # Outputs are kept in clear text in the deployment history: never the webhook key.
    assert template.outputs() == []


def _enqueue_blob_trigger() -> dict:
    # In a child process: get_functions() may run once per app object, and other tests and
    # the local host use this process's.
    script = (
        "import json; from function_app import app; "
        "print(json.dumps({f.get_function_name(): json.loads(f.get_function_json()) "
        "for f in app.get_functions()}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout)["enqueue_blob"]["bindings"][0]


def test_one_inbound_container_value_feeds_the_trigger_the_container_and_the_filter() -> None:
    binding = _enqueue_blob_trigger()
    assert binding["path"] == "%INBOUND_CONTAINER%/{name}"
    assert binding["connection"] == "IntegrationStorage"
    assert _settings_keys()["INBOUND_CONTAINER"] == "inboundContainerName"
    assert _main_value("inboundContainerName") == "d365-inbound"
    assert "inboundContainerName" in _main_module("storage").params["containerNames"].split()
    assert _main_module("functionApp").params["inboundContainerName"] == "inboundContainerName"
    assert "output inboundContainerName string = inboundContainerName" in BicepFile(MAIN).source


@pytest.mark.parametrize(
    "path",
    [*TEMPLATES, PARAMETERS, REPO_ROOT / "azure-pipelines.yml"],
    ids=lambda path: path.relative_to(REPO_ROOT).as_posix(),
)
def test_no_secret_literal(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for pattern in SECRET_PATTERNS:
        assert pattern.search(text) is None, f"{path.name}: {pattern.pattern} matches"
    key_like = [
        run
        for run in KEY_LIKE.findall(re.sub(r"https?://\S+", "", text))
        if all(re.search(kind, run) for kind in ("[A-Z]", "[a-z]", "[0-9]"))
    ]
    assert key_like == [], f"{path.name}: key-like values"


@pytest.mark.parametrize("path", TEMPLATES, ids=_relative)
def test_secret_params_are_secure(path: Path) -> None:
    for param in BicepFile(path).params().values():
        if param.type == "string" and re.search(r"(secret|password)$", param.name, re.I):
            assert "@secure()" in param.decorators, f"{_relative(path)}: {param.name}"


def test_parameters_file_fits_main_and_holds_no_secret() -> None:
    # The azd parameters file: every value is read from the azd environment (${NAME}).
    parameters = json.loads(PARAMETERS.read_text(encoding="utf-8"))["parameters"]
    declared = BicepFile(MAIN).params()
    assert set(parameters) <= set(declared)
    required = {name for name, param in declared.items() if param.default is None}
    assert required <= set(parameters)
    for name, entry in parameters.items():
        match = re.fullmatch(r"\$\{([A-Z0-9_]+)(?:=([^}]*))?\}", entry["value"])
        assert match, name
        # An azd default is the template's own: the two cannot say different things.
        default = declared[name].default
        if match.group(2) is not None and default is not None:
            assert match.group(2) == default.strip("'"), name


def test_azd_sets_what_the_pipeline_s_variable_group_sets() -> None:
    from tests.deploy.conftest import load_script

    parameters = json.loads(PARAMETERS.read_text(encoding="utf-8"))["parameters"]
    entries = {p.name for p in load_script("deploy/parameters").PARAMETERS if p.name}
    # The runtime's Python is azd's service setting; a vault name's default is computed (an
    # azd default cannot say it), and `azd down --purge` frees the name instead.
    assert entries - set(parameters) == {"pythonVersion", "keyVaultName"}
    # One name per setting: azd's variable is the one the pipeline maps the entry to, but for
    # the two azd names itself (docs/deploy.md, 4.2).
    renamed = {"namePrefix": "D365_NAME_PREFIX", "location": "AZURE_LOCATION"}
    for parameter in load_script("deploy/parameters").PARAMETERS:
        if parameter.name in parameters:
            variable = re.match(r"\$\{(\w+)", parameters[parameter.name]["value"]).group(1)
            assert variable == renamed.get(parameter.name, parameter.env), parameter.name


def _template_environment(auth_mode: str) -> dict[str, str]:
    """The app settings the template writes, with Azure's values stood in by fake ones."""
    stand_ins = {
        "storage.properties.primaryEndpoints.blob": "https://stfake.blob.core.windows.net/",
        "storage.properties.primaryEndpoints.queue": "https://stfake.queue.core.windows.net/",
        "storage.properties.primaryEndpoints.table": "https://stfake.table.core.windows.net/",
        "identityClientId": fakes.CLIENT_ID,
        # environment().authentication.loginEndpoint in the public cloud.
        "d365AuthorityHost": "https://login.microsoftonline.com/",
        "d365BaseUrl": "https://fno.localhost.operations.dynamics.com",
        "d365TenantId": fakes.TENANT_ID,
        "d365ClientId": fakes.CLIENT_ID,
        # The platform resolves the Key Vault reference before the app reads it.
        "clientSecretReference": fakes.CLIENT_SECRET,
        "d365Routes": json.dumps(
            [
                {
                    "name": "customers",
                    "prefix": "customers/{company}/",
                    "activity_id": fakes.CUSTOMERS_ACTIVITY_ID,
                    "entity": fakes.CUSTOMERS_ENTITY,
                }
            ]
        ),
    }
    function = _file("app/function.bicep")
    auth_variable = {
        "secret": "secretAuthSettings",
        "managedIdentity": "managedIdentityAuthSettings",
    }
    environ: dict[str, str] = {}
    for name in ("storageSettings", auth_variable[auth_mode], "integrationSettings"):
        for key, expression in top_level_keys(function.variable(name)[1:-1]).items():
            if expression in stand_ins:
                environ[key] = stand_ins[expression]
            elif expression.startswith("'"):
                environ[key] = _unquote(expression)
            else:
                param = re.fullmatch(r"(?:string\()?(\w+)\)?", expression).group(1)
                value = _main_value(param)
                assert value is not None, f"{key}: no value for {expression}"
                environ[key] = value
    return environ


@pytest.mark.parametrize("auth_mode", ["secret", "managedIdentity"])
def test_template_settings_pass_the_app_validation(auth_mode: str) -> None:
    settings = Settings.from_env(_template_environment(auth_mode))

    assert settings.inbound_container == "d365-inbound"
    assert settings.status_table == "d365messages"
    assert settings.max_file_bytes == 48 * 1024 * 1024
    assert settings.poll_tick_budget.total_seconds() == 240
    assert settings.poll_schedule == "0 */1 * * * *"
    assert settings.routes.get("customers") is not None


def _auth_settings_properties() -> tuple[str, dict[str, str]]:
    """signin.bicep's authsettingsV2 ``properties`` expression, and its variables by name."""
    signin = _file("app/signin.bicep")
    [auth] = [r for r in signin.resources() if not r.existing]
    assert (auth.type, re.search(r"name: '(\w+)'", auth.body).group(1)) == (
        "Microsoft.Web/sites/config",
        "authsettingsV2",
    )
    assert auth.condition is None
    properties = top_level_keys(auth.body)["properties"]
    names = re.findall(r"\b([A-Za-z_]\w*)\b", properties)
    return properties, {name: signin.variable(name) for name in names if name != "enabled"}


def test_entra_mode_turns_app_service_authentication_on_with_the_console_page_excluded() -> None:
    signin = _main_module("signin")
    assert signin.path == "app/signin.bicep"
    assert signin.params["enabled"] == "httpAuth == 'entra'"
    assert _settings_keys()["HTTP_AUTH"] == "httpAuth"
    properties, variables = _auth_settings_properties()
    on = variables[re.fullmatch(r"enabled \? (\w+) : \w+", properties).group(1)]
    assert re.search(r"platform: \{\s*enabled: true\s*\}", on)
    assert "unauthenticatedClientAction: 'Return401'" in on
    assert re.search(r"excludedPaths: \[\s*'/api/console'\s*'/runtime/webhooks/blobs'\s*\]", on)
    assert re.search(r"tokenStore: \{\s*enabled: true", on)
    assert "'api://${clientId}'" in on


def test_key_mode_deploys_authentication_off_so_a_switch_back_from_entra_reaches_the_app() -> None:
    # Skipped in key mode, the module left an earlier entra deployment's authsettingsV2 on the
    # site: the platform answered 401 to every caller holding only a function key.
    signin = _main_module("signin")
    assert signin.condition is None
    properties, variables = _auth_settings_properties()
    off = variables[re.fullmatch(r"enabled \? \w+ : (\w+)", properties).group(1)]
    # Nothing but the switch: key mode has no client id, tenant or provider to give.
    assert re.sub(r"\s+", " ", off) == "{ platform: { enabled: false } }"
    params = _file("app/signin.bicep").params()
    assert params["enabled"].type == "bool"
    assert params["enabled"].default is None


def test_entra_mode_without_the_registration_s_client_id_stops_the_deployment() -> None:
    # azd checks no entry: HTTP_AUTH=entra without SIGNIN_CLIENT_ID would turn authentication on
    # for the client id '' (every caller refused) instead of naming what is missing.
    client_id = re.sub(r"\s+", " ", _main_module("signin").params["clientId"])
    # Guarded by the mode too: with key, an empty client id is the rule, not a mistake.
    assert client_id.startswith(
        "httpAuth == 'entra' && empty(signinClientId) ? fail('httpAuth is entra"
    )
    assert client_id.endswith(": signinClientId")
    assert "SIGNIN_CLIENT_ID" in client_id


def test_lifecycle_rules_delete_the_containers_blobs_after_their_own_day_counts() -> None:
    main = BicepFile(MAIN)
    params = main.params()
    for name in ("archiveRetentionDays", "errorsRetentionDays", "exportsRetentionDays"):
        assert params[name].type == "int", name
        assert "@minValue(0)" in params[name].decorators, name
        assert main.param_uses(name) == 1, name
    days = re.sub(r"\s+", " ", _main_module("storage").params["lifecycleDays"])
    # Package exports write to containers of their own too (issue 23): kept no longer; a
    # container named by both kinds of route is one key (union with [] drops repeats).
    assert (
        "toObject( union(map(concat(json(exportRoutes), json(packageExportRoutes)), "
        "route => route.container), [])," in days
    )
    assert "container => exportsRetentionDays" in days
    assert "'${archiveContainerName}': archiveRetentionDays" in days
    assert "'${errorsContainerName}': errorsRetentionDays" in days
    storage = _file("app/storage.bicep")
    [policy] = [r for r in storage.resources() if r.type.endswith("/managementPolicies")]
    assert (policy.api_version, policy.condition) == ("2023-05-01", "!empty(lifecycleRules)")
    body = re.sub(r"\s+", " ", policy.body)
    for part in (
        "name: 'default'",
        "type: 'Lifecycle'",
        "blobTypes: ['blockBlob']",
        "prefixMatch: ['${rule.key}/']",
        "delete: { daysAfterModificationGreaterThan: rule.value }",
    ):
        assert part in body, part
    # 0 keeps a container's blobs: no rule (a rule of 0 days would delete them all at once).
    assert "rule.value > 0" in storage.variable("lifecycleRules")


def test_errors_outlive_the_records_that_point_at_them() -> None:
    params = BicepFile(MAIN).params()
    records_days = int(_unquote(params["retentionRecordsDays"].default or ""))
    longest_pending = Settings.__dataclass_fields__["max_pending_age"].default
    errors_days = int(params["errorsRetentionDays"].default or "0")
    # A record is deleted RETENTION_RECORDS_DAYS after its last change, which comes at most
    # MAX_PENDING_AGE (30 days at most) after its errors were written.
    assert errors_days > records_days + 30 >= records_days + longest_pending.days
