"""Every kind of bad setting, route and blob name gets a clear answer: the catalogue.

One row per kind of mistake a person makes: what they gave, and the exact answer, which names
the setting (or the route and key, or the blob), what is wrong and the fix. A setting row's
answer is one problem of the :class:`SettingsError`; a blob row's is the
:class:`RoutingError`'s reason and text. No answer repeats a secret or the value of an
identity setting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from shared.config import ImportRoutes, RejectReason, RoutingError, Settings, SettingsError
from tests.shared.config.route_samples import CUSTOMERS_ID
from tests.shared.config.route_samples import route_dict as route

SECRET = "fake-secret-Zq8~value"
ACCOUNT_KEY = "ZmFrZS1rZXktbm90LXJlYWw="
CLIENT_ID = "bbbbbbbb-0000-4000-8000-000000000001"
ACTIVITY = CUSTOMERS_ID
IDENTITY_URIS = {
    "IntegrationStorage": None,
    "IntegrationStorage__blobServiceUri": "https://acct.blob.core.windows.net",
    "IntegrationStorage__queueServiceUri": "https://acct.queue.core.windows.net",
    "IntegrationStorage__tableServiceUri": "https://acct.table.core.windows.net",
}
# Settings whose values never appear in an answer.
CONFIDENTIAL = (
    "D365_TENANT_ID",
    "D365_CLIENT_ID",
    "D365_CLIENT_SECRET",
    "D365_CLIENT_CERTIFICATE_PATH",
    "D365_CLIENT_CERTIFICATE_PASSWORD",
    "D365_MANAGED_IDENTITY_CLIENT_ID",
    "IntegrationStorage",
    "IntegrationStorage__clientId",
)


def routes(*items: object) -> dict[str, str]:
    """``D365_ROUTES`` holding ``items``."""
    return {"D365_ROUTES": json.dumps(list(items))}


def second(**changes: Any) -> dict[str, str]:
    """``D365_ROUTES`` with a good first route and a second one with ``changes``."""
    return routes(route(name="first", prefix="first/"), route(**changes))


GOOD = {
    "D365_BASE_URL": "https://fno.example.operations.dynamics.com",
    "D365_TENANT_ID": "faketenant",
    "D365_CLIENT_ID": CLIENT_ID,
    "D365_CLIENT_SECRET": SECRET,
    "IntegrationStorage": (
        "DefaultEndpointsProtocol=https;AccountName=fakeaccount;"
        f"AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net"
    ),
    **routes(route()),
}
ROUTE_TABLE = ImportRoutes.from_json(
    json.dumps(
        [
            route(extensions=[".xml", ".csv"]),
            route(
                name="packages",
                prefix="packages/USMF/",
                activity_id="aaaaaaaa-0000-4000-8000-000000000003",
                entity=...,
                company="USMF",
            ),
            route(name="parked", prefix="parked/", entity="X", enabled=False),
        ]
    )
)


@dataclass(frozen=True)
class Setting:
    """App settings changed from GOOD (None removes one), and one problem they cause."""

    kind: str
    changes: dict[str, Any]
    answer: str


@dataclass(frozen=True)
class Blob:
    """A blob name in the inbound container, resolved against ROUTE_TABLE."""

    kind: str
    path: str
    reason: RejectReason
    answer: str


CATALOGUE: list[Setting | Blob] = [
    # -- settings, then routes (D365_ROUTES) -------------------------------------------------
    Setting(
        "D365_BASE_URL missing",
        {"D365_BASE_URL": None},
        "D365_BASE_URL: missing; expected e.g. https://contoso.operations.dynamics.com",
    ),
    Setting(
        "D365_BASE_URL with http",
        {"D365_BASE_URL": "http://contoso.operations.dynamics.com"},
        (
            "D365_BASE_URL: 'http://contoso.operations.dynamics.com' uses http; https is required "
            "(http only for loopback hosts); expected the environment root, e.g. "
            "https://contoso.operations.dynamics.com"
        ),
    ),
    Setting(
        "D365_BASE_URL without scheme",
        {"D365_BASE_URL": "contoso.operations.dynamics.com"},
        (
            "D365_BASE_URL: 'contoso.operations.dynamics.com' is not an http(s) URL; expected the "
            "environment root, e.g. https://contoso.operations.dynamics.com"
        ),
    ),
    Setting(
        "D365_BASE_URL with a path",
        {"D365_BASE_URL": "https://contoso.operations.dynamics.com/namespaces/AXSF"},
        (
            "D365_BASE_URL: 'https://contoso.operations.dynamics.com/namespaces/AXSF' has a path "
            "or fragment; expected the environment root, e.g. "
            "https://contoso.operations.dynamics.com"
        ),
    ),
    Setting(
        "D365_BASE_URL with a query string",
        {"D365_BASE_URL": "https://contoso.operations.dynamics.com/?cmp=USMF"},
        (
            "D365_BASE_URL: holds a user name, password or query string (value not shown); "
            "expected the environment root, e.g. https://contoso.operations.dynamics.com"
        ),
    ),
    Setting(
        "D365_BASE_URL with port 99999",
        {"D365_BASE_URL": "https://contoso.operations.dynamics.com:99999"},
        (
            "D365_BASE_URL: 'https://contoso.operations.dynamics.com:99999' has an invalid port "
            "(ports run from 1 to 65535); expected the environment root, e.g. "
            "https://contoso.operations.dynamics.com"
        ),
    ),
    Setting(
        "D365_BASE_URL host ending in a dot",
        {"D365_BASE_URL": "https://contoso.operations.dynamics.com."},
        (
            "D365_BASE_URL: 'https://contoso.operations.dynamics.com.' has a host name ending in "
            "'.'; remove the trailing dot; expected the environment root, e.g. "
            "https://contoso.operations.dynamics.com"
        ),
    ),
    Setting(
        "D365_BASE_URL host with a space",
        {"D365_BASE_URL": "https://contoso operations.dynamics.com"},
        (
            "D365_BASE_URL: 'https://contoso operations.dynamics.com' has an invalid host name "
            "(letters, digits and hyphens between dots); expected the environment root, e.g. "
            "https://contoso.operations.dynamics.com"
        ),
    ),
    Setting(
        "D365_AUTHORITY_HOST not http(s)",
        {"D365_AUTHORITY_HOST": "ftp://login.example"},
        (
            "D365_AUTHORITY_HOST: 'ftp://login.example' is not an http(s) URL; expected the Entra "
            "host, e.g. https://login.microsoftonline.com"
        ),
    ),
    Setting(
        "D365_HTTP_TIMEOUT not a duration",
        {"D365_HTTP_TIMEOUT": "forever"},
        (
            "D365_HTTP_TIMEOUT: 'forever' is not a duration; expected a duration from 1s to 1h, "
            "written as 90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"
        ),
    ),
    Setting(
        "D365_HTTP_TIMEOUT of 99999999999999999999d",
        {"D365_HTTP_TIMEOUT": "99999999999999999999d"},
        (
            "D365_HTTP_TIMEOUT: '99999999999999999999d' is longer than 1h; expected a duration "
            "from 1s to 1h, written as 90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"
        ),
    ),
    Setting(
        "D365_HTTP_TIMEOUT under a second",
        {"D365_HTTP_TIMEOUT": "0.5"},
        (
            "D365_HTTP_TIMEOUT: '0.5' is shorter than 1s; expected a duration from 1s to 1h, "
            "written as 90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"
        ),
    ),
    Setting(
        "D365_WRITE_TIMEOUT over an hour",
        {"D365_WRITE_TIMEOUT": "2h"},
        (
            "D365_WRITE_TIMEOUT: '2h' is longer than 1h; expected a duration from 1s to 1h, "
            "written as 90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"
        ),
    ),
    Setting(
        "D365_SAS_HOSTS with a scheme",
        {"D365_SAS_HOSTS": "127.0.0.1, https://mystorage.blob.core.windows.net"},
        (
            "D365_SAS_HOSTS: 'https://mystorage.blob.core.windows.net' is not a host name or IP "
            "address (write the host alone, without scheme, port or path); expected host names "
            "or IP addresses separated by commas, e.g. 127.0.0.1 for the local emulator"
        ),
    ),
    Setting(
        "D365_TENANT_ID multi-tenant",
        {"D365_TENANT_ID": "common"},
        (
            "D365_TENANT_ID: is a multi-tenant endpoint's name; F&O needs a token from the tenant "
            "itself (value not shown); expected the tenant GUID or a domain such as "
            "contoso.onmicrosoft.com"
        ),
    ),
    Setting(
        "D365_TENANT_ID not a tenant",
        {"D365_TENANT_ID": "contoso/fno"},
        (
            "D365_TENANT_ID: is not a tenant id (value not shown); expected the tenant GUID or a "
            "domain such as contoso.onmicrosoft.com"
        ),
    ),
    Setting(
        "D365_TENANT_ID holding a secret",
        {"D365_TENANT_ID": SECRET},
        (
            "D365_TENANT_ID: is not a tenant id (value not shown); expected the tenant GUID or a "
            "domain such as contoso.onmicrosoft.com"
        ),
    ),
    Setting(
        "D365_TENANT_ID missing",
        {"D365_TENANT_ID": None},
        "D365_TENANT_ID: missing; required with a client secret",
    ),
    Setting(
        "D365_CLIENT_ID missing",
        {"D365_CLIENT_ID": None},
        "D365_CLIENT_ID: missing; required with a client secret",
    ),
    Setting(
        "D365_CLIENT_ID not a GUID",
        {"D365_CLIENT_ID": "my-app"},
        (
            "D365_CLIENT_ID: is not a GUID (value not shown); expected the application (client) "
            "ID "
            "GUID, e.g. 6d31e09f-0249-459f-94f0-aad9c2c47b64"
        ),
    ),
    Setting(
        "D365_CLIENT_ID holding a secret",
        {"D365_CLIENT_ID": SECRET},
        (
            "D365_CLIENT_ID: is not a GUID (value not shown); expected the application (client) "
            "ID "
            "GUID, e.g. 6d31e09f-0249-459f-94f0-aad9c2c47b64"
        ),
    ),
    Setting(
        "D365_CLIENT_ID the all-zero GUID",
        {"D365_CLIENT_ID": "00000000-0000-0000-0000-000000000000"},
        (
            "D365_CLIENT_ID: is the all-zero GUID, a placeholder (value not shown); expected the "
            "application (client) ID GUID, e.g. 6d31e09f-0249-459f-94f0-aad9c2c47b64"
        ),
    ),
    Setting(
        "D365_CLIENT_ID equal to the tenant",
        {"D365_TENANT_ID": CLIENT_ID},
        (
            "D365_CLIENT_ID: is the same GUID as D365_TENANT_ID (value not shown); copy the "
            "Application (client) ID from the app registration's Overview, not the Directory "
            "(tenant) ID"
        ),
    ),
    Setting(
        "D365_CLIENT_SECRET holding the secret's ID",
        {"D365_CLIENT_SECRET": "5e6f7a8b-0000-4000-8000-00000000abcd"},
        (
            "D365_CLIENT_SECRET: holds a GUID, which is the secret's ID, not the secret (value n"
            "ot "
            "shown); copy the secret's Value from Certificates & secrets (it is shown only when "
            "the secret is created)"
        ),
    ),
    Setting(
        "D365_CLIENT_SECRET unresolved Key Vault reference",
        {
            "D365_CLIENT_SECRET": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/fno)"
        },
        (
            "D365_CLIENT_SECRET: holds a Key Vault reference the platform did not resolve (value "
            "not shown); give the app's identity the 'Key Vault Secrets User' role on the vault "
            "and check the reference's status in the portal"
        ),
    ),
    Setting(
        "secret and certificate both",
        {"D365_CLIENT_CERTIFICATE_PATH": "/c.pem"},
        (
            "D365_CLIENT_SECRET: set together with D365_CLIENT_CERTIFICATE_PATH; set only one of "
            "them"
        ),
    ),
    Setting(
        "certificate password without certificate",
        {"D365_CLIENT_CERTIFICATE_PASSWORD": "pw-value"},
        (
            "D365_CLIENT_CERTIFICATE_PASSWORD: set without D365_CLIENT_CERTIFICATE_PATH; set the "
            "certificate path or remove it"
        ),
    ),
    Setting(
        "certificate password unresolved Key Vault reference",
        {
            "D365_CLIENT_SECRET": None,
            "D365_CLIENT_CERTIFICATE_PATH": "/c.pem",
            "D365_CLIENT_CERTIFICATE_PASSWORD": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/pfx)",
        },
        (
            "D365_CLIENT_CERTIFICATE_PASSWORD: holds a Key Vault reference the platform did not "
            "resolve (value not shown); give the app's identity the 'Key Vault Secrets User' role "
            "on the vault and check the reference's status in the portal"
        ),
    ),
    Setting(
        "D365_CLIENT_ID without secret or certificate",
        {"D365_CLIENT_SECRET": None},
        (
            "D365_CLIENT_ID: set without D365_CLIENT_SECRET or D365_CLIENT_CERTIFICATE_PATH; set "
            "one of them, or remove D365_CLIENT_ID to use the managed identity "
            "(D365_MANAGED_IDENTITY_CLIENT_ID for a user-assigned one)"
        ),
    ),
    Setting(
        "managed identity together with a secret",
        {"D365_MANAGED_IDENTITY_CLIENT_ID": "cccccccc-0000-4000-8000-000000000001"},
        (
            "D365_MANAGED_IDENTITY_CLIENT_ID: set together with a client secret; it applies only "
            "without a secret or certificate: remove it, or remove the secret/certificate to use "
            "the managed identity"
        ),
    ),
    Setting(
        "D365_MANAGED_IDENTITY_CLIENT_ID not a GUID",
        {
            "D365_TENANT_ID": None,
            "D365_CLIENT_ID": None,
            "D365_CLIENT_SECRET": None,
            "D365_MANAGED_IDENTITY_CLIENT_ID": "my-identity",
        },
        (
            "D365_MANAGED_IDENTITY_CLIENT_ID: is not a GUID (value not shown); expected the "
            "user-assigned identity's client ID GUID, e.g. 6d31e09f-0249-459f-94f0-aad9c2c47b64"
        ),
    ),
    Setting(
        "IntegrationStorage missing",
        {"IntegrationStorage": None},
        (
            "IntegrationStorage: missing; expected a connection string "
            "('UseDevelopmentStorage=true' locally) or IntegrationStorage__blobServiceUri, "
            "__queueServiceUri and __tableServiceUri with "
            "IntegrationStorage__credential=managedidentity"
        ),
    ),
    Setting(
        "IntegrationStorage holding a URL",
        {"IntegrationStorage": "https://acct.blob.core.windows.net"},
        (
            "IntegrationStorage: looks like a URL, not a connection string (value not shown); for "
            "an identity-based connection set IntegrationStorage__blobServiceUri and the other "
            "IntegrationStorage__* settings instead"
        ),
    ),
    Setting(
        "IntegrationStorage not a connection string",
        {"IntegrationStorage": "Key=Value"},
        (
            "IntegrationStorage: is not a storage connection string (value not shown); expected "
            "'DefaultEndpointsProtocol=https;AccountName=<account>;AccountKey=<key>;"
            "EndpointSuffix=core.windows.net', or 'UseDevelopmentStorage=true' with Azurite"
        ),
    ),
    Setting(
        "IntegrationStorage without a key",
        {"IntegrationStorage": "AccountName=acct;EndpointSuffix=core.windows.net"},
        (
            "IntegrationStorage: has no AccountKey or SharedAccessSignature (value not shown); "
            "copy the whole connection string from the storage account's Access keys, or use the "
            "identity-based IntegrationStorage__* settings"
        ),
    ),
    Setting(
        "IntegrationStorage unresolved Key Vault reference",
        {
            "IntegrationStorage": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/storage)"
        },
        (
            "IntegrationStorage: holds a Key Vault reference the platform did not resolve (value "
            "not shown); give the app's identity the 'Key Vault Secrets User' role on the vault "
            "and check the reference's status in the portal"
        ),
    ),
    Setting(
        "IntegrationStorage in quotes",
        {"IntegrationStorage": '"UseDevelopmentStorage=true"'},
        (
            "IntegrationStorage: is wrapped in quotes; app settings are taken as typed: remove t"
            "he "
            "quotes"
        ),
    ),
    Setting(
        "__tableServiceUri missing",
        {**IDENTITY_URIS, "IntegrationStorage__tableServiceUri": None},
        (
            "IntegrationStorage__tableServiceUri: missing; the status table needs it, e.g. "
            "https://<account>.table.core.windows.net"
        ),
    ),
    Setting(
        "__queueServiceUri missing",
        {**IDENTITY_URIS, "IntegrationStorage__queueServiceUri": None},
        (
            "IntegrationStorage__queueServiceUri: missing; the blob trigger needs it with "
            "__blobServiceUri, e.g. https://<account>.queue.core.windows.net"
        ),
    ),
    Setting(
        "__blobServiceUri missing",
        {**IDENTITY_URIS, "IntegrationStorage__blobServiceUri": None},
        (
            "IntegrationStorage__blobServiceUri: missing; expected e.g. "
            "https://<account>.blob.core.windows.net"
        ),
    ),
    Setting(
        "__tableServiceUri of the blob service",
        {
            **IDENTITY_URIS,
            "IntegrationStorage__tableServiceUri": "https://acct.blob.core.windows.net",
        },
        (
            "IntegrationStorage__tableServiceUri: 'https://acct.blob.core.windows.net' is the bl"
            "ob "
            "service's endpoint; expected the table service's, e.g. "
            "https://<account>.table.core.windows.net"
        ),
    ),
    Setting(
        "__credential not managedidentity",
        {**IDENTITY_URIS, "IntegrationStorage__credential": "clientsecret"},
        (
            "IntegrationStorage__credential: 'clientsecret' is not supported; expected "
            "managedidentity, or leave it unset to use DefaultAzureCredential (e.g. your Azure C"
            "LI "
            "login locally)"
        ),
    ),
    Setting(
        "__clientId not a GUID",
        {**IDENTITY_URIS, "IntegrationStorage__clientId": "my-identity"},
        (
            "IntegrationStorage__clientId: is not a GUID (value not shown); expected the "
            "user-assigned identity's client ID GUID"
        ),
    ),
    Setting(
        "__tableServiceUri with http",
        {**IDENTITY_URIS, "IntegrationStorage__tableServiceUri": "http://acct.table.x.net"},
        (
            "IntegrationStorage__tableServiceUri: 'http://acct.table.x.net' uses http; https is "
            "required (http only for loopback hosts); expected e.g. "
            "https://<account>.table.core.windows.net"
        ),
    ),
    Setting(
        "__blobServiceUri with a SAS",
        {**IDENTITY_URIS, "IntegrationStorage__blobServiceUri": "https://a.blob.x.net?sv=1"},
        (
            "IntegrationStorage__blobServiceUri: holds a user name, password or query string "
            "(value not shown); expected e.g. https://<account>.blob.core.windows.net"
        ),
    ),
    Setting(
        "__accountName for a non-host connection",
        {"IntegrationStorage": None, "IntegrationStorage__accountName": "acct"},
        (
            "IntegrationStorage__accountName: is honoured only for AzureWebJobsStorage; set "
            "IntegrationStorage__blobServiceUri, __queueServiceUri and __tableServiceUri instead"
        ),
    ),
    Setting(
        "INBOUND_CONTAINER with capitals",
        {"INBOUND_CONTAINER": "Inbound"},
        (
            "INBOUND_CONTAINER: 'Inbound' is not a valid container name; expected 3-63 lower-case "
            "letters, digits and single hyphens, e.g. d365-archive"
        ),
    ),
    Setting(
        "ARCHIVE_CONTAINER with a double hyphen",
        {"ARCHIVE_CONTAINER": "a--b"},
        (
            "ARCHIVE_CONTAINER: 'a--b' is not a valid container name; expected 3-63 lower-case "
            "letters, digits and single hyphens, e.g. d365-archive"
        ),
    ),
    Setting(
        "ERRORS_CONTAINER too short",
        {"ERRORS_CONTAINER": "ab"},
        (
            "ERRORS_CONTAINER: 'ab' is not a valid container name; expected 3-63 lower-case "
            "letters, digits and single hyphens, e.g. d365-archive"
        ),
    ),
    Setting(
        "ERRORS_CONTAINER is the inbound container",
        {"ERRORS_CONTAINER": "d365-inbound"},
        (
            "ERRORS_CONTAINER: 'd365-inbound' is the inbound container; writing there would "
            "enqueue the files again: use a container of its own"
        ),
    ),
    Setting(
        "ARCHIVE_CONTAINER is the inbound container",
        {"ARCHIVE_CONTAINER": "d365-inbound"},
        (
            "ARCHIVE_CONTAINER: 'd365-inbound' is the inbound container; writing there would "
            "enqueue the files again: use a container of its own"
        ),
    ),
    Setting(
        "ARCHIVE_MODE typo",
        {"ARCHIVE_MODE": "copy"},
        "ARCHIVE_MODE: 'copy' is not an archive mode; expected move or metadata",
    ),
    Setting(
        "STATUS_TABLE with a hyphen",
        {"STATUS_TABLE": "d365-messages"},
        (
            "STATUS_TABLE: 'd365-messages' is not a valid table name; expected 3-63 letters or "
            "digits starting with a letter, e.g. d365messages"
        ),
    ),
    Setting(
        "STATUS_TABLE reserved",
        {"STATUS_TABLE": "tables"},
        (
            "STATUS_TABLE: 'tables' is not a valid table name; expected 3-63 letters or digits "
            "starting with a letter, e.g. d365messages"
        ),
    ),
    Setting(
        "POLL_SCHEDULE with 7 fields",
        {"POLL_SCHEDULE": "0 */1 * * *  * *"},
        (
            "POLL_SCHEDULE: '0 */1 * * *  * *' has 7 fields; expected 6, '{second} {minute} {hou"
            "r} "
            "{day} {month} {day-of-week}', or 5 without {second}; e.g. '0 */5 * * * *' runs every "
            "five minutes"
        ),
    ),
    Setting(
        "POLL_SCHEDULE a time, not NCRONTAB",
        {"POLL_SCHEDULE": "00:01:00"},
        (
            "POLL_SCHEDULE: '00:01:00' has 1 field; expected 6, '{second} {minute} {hour} {day} "
            "{month} {day-of-week}', or 5 without {second}; e.g. '0 */5 * * * *' runs every five "
            "minutes"
        ),
    ),
    Setting(
        "POLL_SCHEDULE value out of range",
        {"POLL_SCHEDULE": "0 */1 24 * * *"},
        (
            "POLL_SCHEDULE: '0 */1 24 * * *': hour field '24' is out of range; expected 0-23, as "
            "*, a, a-b or a list of these, each with an optional /step; e.g. '0 */5 * * * *' runs "
            "every five minutes"
        ),
    ),
    Setting(
        "POLL_SCHEDULE step 0",
        {"POLL_SCHEDULE": "0 */0 * * * *"},
        (
            "POLL_SCHEDULE: '0 */0 * * * *': minute field '*/0' has a step that is not a whole "
            "number from 1 to 59; expected 0-59, as *, a, a-b or a list of these, each with an "
            "optional /step; e.g. '0 */5 * * * *' runs every five minutes"
        ),
    ),
    Setting(
        "POLL_SCHEDULE step longer than the field",
        {"POLL_SCHEDULE": "*/90 * * * * *"},
        (
            "POLL_SCHEDULE: '*/90 * * * * *': second field '*/90' has a step that is not a whole "
            "number from 1 to 59; expected 0-59, as *, a, a-b or a list of these, each with an "
            "optional /step; e.g. '0 */5 * * * *' runs every five minutes"
        ),
    ),
    Setting(
        "POLL_SCHEDULE reversed range",
        {"POLL_SCHEDULE": "30-10 * * * * *"},
        (
            "POLL_SCHEDULE: '30-10 * * * * *': second field '30-10' is a reversed range, which "
            "NCRONTAB does not wrap around: write 30-59,0-10 to wrap, or 10-30; expected 0-59, as "
            "*, a, a-b or a list of these, each with an optional /step; e.g. '0 */5 * * * *' runs "
            "every five minutes"
        ),
    ),
    Setting(
        "POLL_SCHEDULE never fires",
        {"POLL_SCHEDULE": "0 0 0 30 2 *"},
        (
            "POLL_SCHEDULE: '0 0 0 30 2 *' never fires: no month of its month field (2) has a day "
            "of its day field (30); February has at most 29 days, and April, June, September and "
            "November 30; e.g. '0 */5 * * * *' runs every five minutes"
        ),
    ),
    Setting(
        "POLL_SCHEDULE unknown name",
        {"POLL_SCHEDULE": "0 0 0 * * XYZ"},
        (
            "POLL_SCHEDULE: '0 0 0 * * XYZ': day-of-week field 'XYZ' is not a value NCRONTAB "
            "knows; expected 0-6 or SUN-SAT (Sunday is 0), as *, a, a-b or a list of these, each "
            "with an optional /step; e.g. '0 */5 * * * *' runs every five minutes"
        ),
    ),
    Setting(
        "POLL_SCHEDULE Quartz ?",
        {"POLL_SCHEDULE": "0 0 0 ? * *"},
        (
            "POLL_SCHEDULE: '0 0 0 ? * *': day field '?' is not a value NCRONTAB knows; expected "
            "1-31, as *, a, a-b or a list of these, each with an optional /step; e.g. '0 */5 * *"
            " * "
            "*' runs every five minutes"
        ),
    ),
    Setting(
        "POLL_SCHEDULE 7 for Sunday",
        {"POLL_SCHEDULE": "0 0 0 * * 7"},
        (
            "POLL_SCHEDULE: '0 0 0 * * 7': day-of-week field '7' is out of range; expected 0-6 or "
            "SUN-SAT (Sunday is 0), as *, a, a-b or a list of these, each with an optional /step; "
            "e.g. '0 */5 * * * *' runs every five minutes"
        ),
    ),
    Setting(
        "POLL_SCHEDULE in quotes",
        {"POLL_SCHEDULE": "'0 */5 * * * *'"},
        ("POLL_SCHEDULE: is wrapped in quotes; app settings are taken as typed: remove the quotes"),
    ),
    Setting(
        "POLL_CONCURRENCY 0",
        {"POLL_CONCURRENCY": "0"},
        "POLL_CONCURRENCY: '0' is not a whole number from 1 to 64; expected e.g. 16",
    ),
    Setting(
        "POLL_CONCURRENCY 10000",
        {"POLL_CONCURRENCY": "10000"},
        "POLL_CONCURRENCY: '10000' is not a whole number from 1 to 64; expected e.g. 16",
    ),
    Setting(
        "POLL_CONCURRENCY not whole",
        {"POLL_CONCURRENCY": "4.5"},
        "POLL_CONCURRENCY: '4.5' is not a whole number from 1 to 64; expected e.g. 16",
    ),
    Setting(
        "POLL_CONCURRENCY superscript digit",
        {"POLL_CONCURRENCY": "²"},
        "POLL_CONCURRENCY: '²' is not a whole number from 1 to 64; expected e.g. 16",
    ),
    Setting(
        "POLL_TICK_BUDGET zero",
        {"POLL_TICK_BUDGET": "0"},
        (
            "POLL_TICK_BUDGET: '0' is not a positive duration; expected a duration from 1s to 1h, "
            "written as 90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"
        ),
    ),
    Setting(
        "POLL_TICK_BUDGET beyond functionTimeout",
        {"POLL_TICK_BUDGET": "11m"},
        (
            "POLL_TICK_BUDGET: 11m plus D365_HTTP_TIMEOUT (5m) for a call still in flight is not "
            "shorter than functionTimeout in host.json (10m): the host would stop a tick mid-cal"
            "l; "
            "lower POLL_TICK_BUDGET or D365_HTTP_TIMEOUT, or raise functionTimeout"
        ),
    ),
    Setting(
        "POLL_INTERVAL_MIN not a duration",
        {"POLL_INTERVAL_MIN": "soon"},
        (
            "POLL_INTERVAL_MIN: 'soon' is not a duration; expected a duration from 1s to 1d, "
            "written as 90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"
        ),
    ),
    Setting(
        "POLL_INTERVAL_MAX negative",
        {"POLL_INTERVAL_MAX": "-1m"},
        (
            "POLL_INTERVAL_MAX: '-1m' is not a duration; expected a duration from 1s to 1d, "
            "written as 90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"
        ),
    ),
    Setting(
        "POLL_INTERVAL_MIN over a day",
        {"POLL_INTERVAL_MIN": "2d"},
        (
            "POLL_INTERVAL_MIN: '2d' is longer than 1d; expected a duration from 1s to 1d, writt"
            "en "
            "as 90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"
        ),
    ),
    Setting(
        "POLL_INTERVAL_MIN above MAX",
        {"POLL_INTERVAL_MIN": "20m"},
        "POLL_INTERVAL_MIN: 20m is longer than POLL_INTERVAL_MAX (10m); expected MIN <= MAX",
    ),
    Setting(
        "MAX_PENDING_AGE not above POLL_INTERVAL_MAX",
        {"MAX_PENDING_AGE": "5m"},
        (
            "MAX_PENDING_AGE: 5m is not longer than POLL_INTERVAL_MAX (10m); messages would time "
            "out before their next poll"
        ),
    ),
    Setting(
        "MAX_PENDING_AGE over 30 days",
        {"MAX_PENDING_AGE": "90d"},
        (
            "MAX_PENDING_AGE: '90d' is longer than 30d; expected a duration from 1s to 30d, "
            "written as 90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"
        ),
    ),
    Setting(
        "CLAIM_LEASE empty ISO duration",
        {"CLAIM_LEASE": "PT"},
        (
            "CLAIM_LEASE: 'PT' is not a duration; expected a duration from 1s to 1d, written as "
            "90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"
        ),
    ),
    Setting(
        "CLAIM_LEASE of 4000000d",
        {"CLAIM_LEASE": "4000000d"},
        (
            "CLAIM_LEASE: '4000000d' is longer than 1d; expected a duration from 1s to 1d, writt"
            "en "
            "as 90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"
        ),
    ),
    Setting(
        "ORDER_SETTLE of 0s",
        {"ORDER_SETTLE": "0s"},
        (
            "ORDER_SETTLE: '0s' is not a positive duration; expected a duration from 1s to 1h, "
            "written as 90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"
        ),
    ),
    Setting(
        "ORDER_SETTLE of 2h",
        {"ORDER_SETTLE": "2h"},
        (
            "ORDER_SETTLE: '2h' is longer than 1h; expected a duration from 1s to 1h, written as "
            "90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"
        ),
    ),
    Setting(
        "CLAIM_LEASE leaving no time to upload",
        {"CLAIM_LEASE": "2m", "D365_HTTP_TIMEOUT": "5m"},
        (
            "CLAIM_LEASE: 2m leaves no time to upload: a send must end D365_HTTP_TIMEOUT before "
            "its lease does, so recovery never judges a send still running; expected at least "
            "330s (D365_HTTP_TIMEOUT plus 30s)"
        ),
    ),
    Setting(
        "MAX_FILE_BYTES not a size",
        {"MAX_FILE_BYTES": "big"},
        (
            "MAX_FILE_BYTES: 'big' is not a size; expected a positive byte count up to 1GiB, e.g. "
            "50331648 or 48MiB"
        ),
    ),
    Setting(
        "MAX_FILE_BYTES zero",
        {"MAX_FILE_BYTES": "0"},
        (
            "MAX_FILE_BYTES: '0' is not a positive size; expected a positive byte count up to "
            "1GiB, e.g. 50331648 or 48MiB"
        ),
    ),
    Setting(
        "MAX_FILE_BYTES over 1GiB",
        {"MAX_FILE_BYTES": "48GiB"},
        (
            "MAX_FILE_BYTES: '48GiB' is larger than 1GiB; expected a positive byte count up to "
            "1GiB, e.g. 50331648 or 48MiB"
        ),
    ),
    Setting(
        "ZIP_MAX_MEMBERS zero",
        {"ZIP_MAX_MEMBERS": "0"},
        "ZIP_MAX_MEMBERS: '0' is not a whole number from 1 to 100000; expected e.g. 10000",
    ),
    Setting(
        "ZIP_MAX_MEMBER_BYTES not a size",
        {"ZIP_MAX_MEMBER_BYTES": "4 gigs"},
        (
            "ZIP_MAX_MEMBER_BYTES: '4 gigs' is not a size; expected a positive byte count up to "
            "1TiB, e.g. 4GiB"
        ),
    ),
    Setting(
        "ZIP_MAX_MEMBER_BYTES over ZIP_MAX_TOTAL_BYTES",
        {"ZIP_MAX_MEMBER_BYTES": "16GiB"},
        (
            "ZIP_MAX_MEMBER_BYTES: 16GiB is more than ZIP_MAX_TOTAL_BYTES (8GiB), the limit of "
            "all members together; expected MEMBER_BYTES <= TOTAL_BYTES"
        ),
    ),
    Setting(
        "ZIP_MAX_TOTAL_BYTES over 1TiB",
        {"ZIP_MAX_TOTAL_BYTES": "2TiB"},
        (
            "ZIP_MAX_TOTAL_BYTES: '2TiB' is larger than 1TiB; expected a positive byte count up "
            "to 1TiB, e.g. 8GiB"
        ),
    ),
    Setting(
        "ZIP_MAX_RATIO of 1",
        {"ZIP_MAX_RATIO": "1"},
        "ZIP_MAX_RATIO: '1' is not a whole number from 2 to 100000; expected e.g. 200",
    ),
    Setting(
        "ZIP_MAX_MANIFEST_BYTES over 256MiB",
        {"ZIP_MAX_MANIFEST_BYTES": "1GiB"},
        (
            "ZIP_MAX_MANIFEST_BYTES: '1GiB' is larger than 256MiB; expected a positive byte "
            "count up to 256MiB, e.g. 4MiB"
        ),
    ),
    Setting(
        "EXPORT_MAX_ATTEMPTS zero",
        {"EXPORT_MAX_ATTEMPTS": "0"},
        (
            "EXPORT_MAX_ATTEMPTS: '0' is not a whole number from 1 to 1000; expected the tries of "
            "one export before it is given up, 1 to 1000, e.g. 10"
        ),
    ),
    Setting(
        "RETENTION_RECORDS_DAYS zero",
        {"RETENTION_RECORDS_DAYS": "0"},
        (
            "RETENTION_RECORDS_DAYS: '0' would delete every final row at the next run; write "
            "never to keep them for ever; expected days from 1 to 36500, e.g. 90, or never"
        ),
    ),
    Setting(
        "RETENTION_EXPORTS_DAYS as a duration",
        {"RETENTION_EXPORTS_DAYS": "90d"},
        (
            "RETENTION_EXPORTS_DAYS: '90d' is not a whole number from 1 to 36500; expected days "
            "from 1 to 36500, e.g. 90, or never"
        ),
    ),
    Setting(
        "RETENTION_SCHEDULE not NCRONTAB",
        {"RETENTION_SCHEDULE": "daily"},
        (
            "RETENTION_SCHEDULE: 'daily' has 1 field; expected 6, '{second} {minute} {hour} "
            "{day} {month} {day-of-week}', or 5 without {second}; e.g. '0 30 2 * * *' runs "
            "every day at 02:30 UTC"
        ),
    ),
    Setting(
        "RETENTION_BUDGET as long as functionTimeout",
        {"RETENTION_BUDGET": "10m"},
        (
            "RETENTION_BUDGET: 10m plus 30s for the last batch is not shorter than "
            "functionTimeout in host.json (10m): the host would stop a run mid-batch; lower "
            "RETENTION_BUDGET or raise functionTimeout"
        ),
    ),
    Setting(
        "a misspelled setting",
        {"POLL_SHEDULE": "0 */5 * * * *"},
        (
            "POLL_SHEDULE: is not a setting of this app; did you mean POLL_SCHEDULE? Rename it "
            "(until then POLL_SCHEDULE keeps its own value or default)"
        ),
    ),
    Setting(
        "a setting in lower case",
        {"d365_http_timeout": "60s"},
        (
            "d365_http_timeout: is not a setting of this app; did you mean D365_HTTP_TIMEOUT? "
            "Rename it (until then D365_HTTP_TIMEOUT keeps its own value or default)"
        ),
    ),
    Setting(
        "D365_ROUTES missing",
        {"D365_ROUTES": None},
        (
            'D365_ROUTES: missing; expected a JSON list of routes, e.g. [{"name": "customers", '
            '"prefix": "customers/{company}/", "activity_id": '
            '"6d31e09f-0249-459f-94f0-aad9c2c47b64", "entity": "CustomersV3"}]'
        ),
    ),
    Setting(
        "D365_ROUTES not JSON",
        {"D365_ROUTES": "not json"},
        (
            "D365_ROUTES: is not valid JSON (Expecting value: line 1 column 1 (char 0)); expected "
            "a JSON list of route objects"
        ),
    ),
    Setting(
        "D365_ROUTES empty list",
        {"D365_ROUTES": "[]"},
        (
            'D365_ROUTES: expected a non-empty JSON list of routes, e.g. [{"name": "customers", '
            '"prefix": "customers/{company}/", "activity_id": '
            '"6d31e09f-0249-459f-94f0-aad9c2c47b64", "entity": "CustomersV3"}]'
        ),
    ),
    Setting(
        "D365_ROUTES an object, not a list",
        {"D365_ROUTES": '{"name": "x"}'},
        (
            'D365_ROUTES: expected a non-empty JSON list of routes, e.g. [{"name": "customers", '
            '"prefix": "customers/{company}/", "activity_id": '
            '"6d31e09f-0249-459f-94f0-aad9c2c47b64", "entity": "CustomersV3"}]'
        ),
    ),
    Setting(
        "D365_ROUTES nested 100,000 deep",
        {"D365_ROUTES": "[" * 100_000 + "]" * 100_000},
        "D365_ROUTES: is nested deeper than 10 levels; expected a JSON list of route objects",
    ),
    Setting(
        "D365_ROUTES encoded twice",
        {"D365_ROUTES": json.dumps(json.dumps([route()]))},
        (
            "D365_ROUTES: is a JSON string holding the list (encoded twice); store the list "
            "itself, starting with ["
        ),
    ),
    Setting(
        "D365_ROUTES key repeated",
        {"D365_ROUTES": '[{"name": "a", "prefix": "a/", "prefix": "b/"}]'},
        (
            "D365_ROUTES: an object repeats the key 'prefix', and only one would count; expected"
            " a "
            "JSON list of route objects"
        ),
    ),
    Setting(
        "D365_ROUTES number of 5000 digits",
        {"D365_ROUTES": '[{"max_bytes": ' + "9" * 5000 + "}]"},
        (
            "D365_ROUTES: holds a number of more than 20 digits; expected a JSON list of route "
            "objects"
        ),
    ),
    Setting(
        "route not an object",
        routes("customers"),
        "D365_ROUTES[0]: 'customers' is not an object; expected {\"name\": ..., ...}",
    ),
    Setting(
        "route names used twice",
        routes(route(), route(name="Customers", prefix="other/")),
        "D365_ROUTES: route name 'Customers' is used twice",
    ),
    Setting(
        "route prefixes used twice",
        routes(route(), route(name="again")),
        (
            "D365_ROUTES: routes 'customers' and 'again' have the same prefix "
            "'customers/{company}/'; each folder feeds one job"
        ),
    ),
    Setting(
        "route prefixes equally specific",
        routes(
            route(name="by-company", prefix="{company}/in/"),
            route(name="usmf", prefix="USMF/{company}/"),
        ),
        (
            "D365_ROUTES: routes 'by-company' ('{company}/in/') and 'usmf' ('USMF/{company}/') "
            "both match paths such as 'USMF/in/<file>' and neither is more specific; make one "
            "prefix longer or more literal"
        ),
    ),
    Setting(
        "route prefix starting with the container",
        routes(route(prefix="d365-inbound/customers/")),
        (
            "D365_ROUTES: route 'customers': prefix 'd365-inbound/customers/' starts with the "
            "inbound container's name; a prefix is a folder inside d365-inbound: use 'customers/'"
        ),
    ),
    Setting(
        "route key unknown",
        second(activityId=ACTIVITY),
        (
            "D365_ROUTES[1]: unknown key 'activityId'; expected one of name, prefix, activity_id, "
            "entity, company, max_bytes, extensions, enabled, api, definition_group, overwrite, "
            "execute, template, on_too_large, order, on_failure"
        ),
    ),
    Setting(
        "route order unknown",
        second(order="fifo"),
        (
            "D365_ROUTES[1].order: 'fifo' is not an order; expected \"upload\" (the next file "
            'is sent once the one before was enqueued) or "final" (once the one before '
            "reached a final state), or omit it to send files in parallel"
        ),
    ),
    Setting(
        "route on_failure unknown",
        second(order="final", on_failure="skip"),
        (
            "D365_ROUTES[1].on_failure: 'skip' is not a failure rule; expected \"stop\" (the "
            'line waits for an operator) or "continue" (the next file goes on)'
        ),
    ),
    Setting(
        "route on_failure without order",
        second(on_failure="continue"),
        (
            'D365_ROUTES[1].on_failure: is for ordered routes; set "order": "upload" or '
            '"final", or remove it'
        ),
    ),
    Setting(
        "package route without data project",
        second(api="package", activity_id=...),
        (
            "D365_ROUTES[1].definition_group: missing; the package API imports into a data "
            "project: set its name, e.g. CustomersPackage"
        ),
    ),
    Setting(
        "package route with an activity id",
        second(api="package", definition_group="CustomersPackage"),
        (
            'D365_ROUTES[1].activity_id: is for "api": "enqueue"; a package route imports into '
            "definition_group (remove activity_id, or the api key)"
        ),
    ),
    Setting(
        "route api unknown",
        second(api="odata"),
        'D365_ROUTES[1].api: \'odata\' is not an API; expected "enqueue" or "package"',
    ),
    Setting(
        "package template not a zip in a container",
        second(api="package", activity_id=..., definition_group="P", template="Templates/x"),
        (
            "D365_ROUTES[1].template: 'Templates/x' is not a template package; expected "
            "<container>/<path>.zip, e.g. d365-templates/customers.zip"
        ),
    ),
    Setting(
        "on_too_large on a file route without template",
        second(on_too_large="package", definition_group="CustomersPackage"),
        (
            "D365_ROUTES[1].template: missing; on_too_large on a file route wraps the file into "
            "a package: set template to <container>/<path>.zip holding Manifest.xml and "
            "PackageHeader.xml"
        ),
    ),
    Setting(
        "on_too_large unknown",
        second(on_too_large="split"),
        "D365_ROUTES[1].on_too_large: 'split' is not a fallback; expected \"package\" or omit it",
    ),
    Setting(
        "data project on an enqueue route",
        second(definition_group="CustomersPackage"),
        (
            'D365_ROUTES[1].definition_group: is for the package API; set "api": "package" '
            'or "on_too_large"'
        ),
    ),
    Setting(
        "route key missing",
        routes(route(activity_id=...)),
        "D365_ROUTES[0].activity_id: missing",
    ),
    Setting(
        "route activity_id not a GUID",
        second(activity_id="abc"),
        (
            "D365_ROUTES[1].activity_id: 'abc' is not a GUID; expected the recurring data job's "
            "activity ID from Data management > Manage scheduled data jobs, e.g. "
            "6d31e09f-0249-459f-94f0-aad9c2c47b64"
        ),
    ),
    Setting(
        "route activity_id a number",
        second(activity_id=12),
        (
            "D365_ROUTES[1].activity_id: 12 is not a GUID; expected the recurring data job's "
            "activity ID from Data management > Manage scheduled data jobs, e.g. "
            "6d31e09f-0249-459f-94f0-aad9c2c47b64"
        ),
    ),
    Setting(
        "route activity_id the all-zero GUID",
        second(activity_id="00000000-0000-0000-0000-000000000000"),
        (
            "D365_ROUTES[1].activity_id: '00000000-0000-0000-0000-000000000000' is the all-zero "
            "GUID, a placeholder; expected the recurring data job's activity ID from Data "
            "management > Manage scheduled data jobs, e.g. 6d31e09f-0249-459f-94f0-aad9c2c47b64"
        ),
    ),
    Setting(
        "route name with a space",
        second(name="a b"),
        (
            "D365_ROUTES[1].name: 'a b' is not a simple name; expected 1-64 letters, digits, '-' "
            "or '_', e.g. customers"
        ),
    ),
    Setting(
        "route name too long",
        second(name="x" * 65),
        (
            "D365_ROUTES[1].name: "
            "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' is not a simple "
            "name; expected 1-64 letters, digits, '-' or '_', e.g. customers"
        ),
    ),
    Setting(
        "route prefix empty",
        second(prefix=""),
        "D365_ROUTES[1].prefix: '' is empty; expected a folder path like customers/",
    ),
    Setting(
        "route prefix null",
        second(prefix=None),
        "D365_ROUTES[1].prefix: None is empty; expected a folder path like customers/",
    ),
    Setting(
        "route prefix absolute",
        second(prefix="/abs/"),
        (
            "D365_ROUTES[1].prefix: '/abs/' starts with '/'; expected a relative folder path "
            "ending in '/', e.g. customers/{company}/"
        ),
    ),
    Setting(
        "route prefix without a slash",
        second(prefix="no-slash"),
        (
            "D365_ROUTES[1].prefix: 'no-slash' does not end with '/'; expected a relative folder "
            "path ending in '/', e.g. customers/{company}/"
        ),
    ),
    Setting(
        "route prefix with //",
        second(prefix="a//b/"),
        (
            "D365_ROUTES[1].prefix: 'a//b/' has an empty segment ('//'); expected a relative "
            "folder path ending in '/', e.g. customers/{company}/"
        ),
    ),
    Setting(
        "route prefix with ..",
        second(prefix="a/../b/"),
        (
            "D365_ROUTES[1].prefix: 'a/../b/' holds '.' or '..'; expected a relative folder path "
            "ending in '/', e.g. customers/{company}/"
        ),
    ),
    Setting(
        "route prefix with a control character",
        second(prefix="a\tb/"),
        (
            "D365_ROUTES[1].prefix: 'a\\tb/' holds a control character; expected a relative folde"
            "r "
            "path ending in '/', e.g. customers/{company}/"
        ),
    ),
    Setting(
        "route prefix too long for any file",
        second(prefix="p" * 990 + "/"),
        (
            "D365_ROUTES[1].prefix: "
            "'ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp...' "
            "leaves no room for a file name (blob names are accepted up to 990 characters and 253 "
            "segments); expected a relative folder path ending in '/', e.g. customers/{company}/"
        ),
    ),
    Setting(
        "{company} twice",
        second(prefix="{company}/x/{company}/"),
        (
            "D365_ROUTES[1].prefix: '{company}/x/{company}/' holds {company} more than once; "
            "expected a relative folder path ending in '/', e.g. customers/{company}/"
        ),
    ),
    Setting(
        "{company} inside a segment",
        second(prefix="cust-{company}/"),
        (
            "D365_ROUTES[1].prefix: 'cust-{company}/' uses braces other than a whole {company} "
            "segment; expected a relative folder path ending in '/', e.g. customers/{company}/"
        ),
    ),
    Setting(
        "{company} in capitals",
        second(prefix="{Company}/"),
        (
            "D365_ROUTES[1].prefix: '{Company}/' writes the {company} placeholder with capitals; "
            "write it in lower case; expected a relative folder path ending in '/', e.g. "
            "customers/{company}/"
        ),
    ),
    Setting(
        "another placeholder",
        second(prefix="{tenant}/"),
        (
            "D365_ROUTES[1].prefix: '{tenant}/' uses braces other than a whole {company} segment; "
            "expected a relative folder path ending in '/', e.g. customers/{company}/"
        ),
    ),
    Setting(
        "company and {company} both",
        second(company="USMF"),
        (
            "D365_ROUTES[1].company: is set while the prefix holds {company}; use one: a fixed "
            "company or the {company} folder"
        ),
    ),
    Setting(
        "company longer than 4",
        second(prefix="x/", company="TOOLONG"),
        (
            "D365_ROUTES[1].company: 'TOOLONG' is not a legal entity id; expected 1-4 letters or "
            "digits (the company's DataAreaId, e.g. USMF)"
        ),
    ),
    Setting(
        "company with a symbol",
        second(prefix="x/", company="U$"),
        (
            "D365_ROUTES[1].company: 'U$' is not a legal entity id; expected 1-4 letters or digi"
            "ts "
            "(the company's DataAreaId, e.g. USMF)"
        ),
    ),
    Setting(
        "entity empty",
        second(entity=""),
        (
            "D365_ROUTES[1].entity: '' is not an entity name; expected the data entity as the "
            "job's data project shows it, e.g. CustomersV3, or omit it for a data package job"
        ),
    ),
    Setting(
        "entity a number",
        second(entity=5),
        (
            "D365_ROUTES[1].entity: 5 is not an entity name; expected the data entity as the job"
            "'s "
            "data project shows it, e.g. CustomersV3, or omit it for a data package job"
        ),
    ),
    Setting(
        "max_bytes zero",
        second(max_bytes=0),
        (
            "D365_ROUTES[1].max_bytes: 0 is not a positive size; expected a positive byte count "
            "up "
            'to 1GiB, e.g. 20971520 or "20MiB"'
        ),
    ),
    Setting(
        "max_bytes negative",
        second(max_bytes=-1),
        (
            "D365_ROUTES[1].max_bytes: -1 is not a positive size; expected a positive byte count "
            'up to 1GiB, e.g. 20971520 or "20MiB"'
        ),
    ),
    Setting(
        "max_bytes not a size",
        second(max_bytes="lots"),
        (
            "D365_ROUTES[1].max_bytes: 'lots' is not a size; expected a positive byte count up to "
            '1GiB, e.g. 20971520 or "20MiB"'
        ),
    ),
    Setting(
        "max_bytes true",
        second(max_bytes=True),
        (
            "D365_ROUTES[1].max_bytes: True is not a size; expected a positive byte count up to "
            '1GiB, e.g. 20971520 or "20MiB"'
        ),
    ),
    Setting(
        "max_bytes over 1GiB",
        second(max_bytes="2GiB"),
        (
            "D365_ROUTES[1].max_bytes: '2GiB' is larger than 1GiB; expected a positive byte count "
            'up to 1GiB, e.g. 20971520 or "20MiB"'
        ),
    ),
    Setting(
        "extensions a string",
        second(extensions=".xml"),
        (
            "D365_ROUTES[1].extensions: '.xml' is not a list; expected a list of suffixes such as "
            '[".xml", ".csv"]'
        ),
    ),
    Setting(
        "extensions without a dot",
        second(extensions=["xml"]),
        (
            "D365_ROUTES[1].extensions: ['xml'] are not file suffixes; expected a list of suffix"
            "es "
            'such as [".xml", ".csv"]'
        ),
    ),
    Setting(
        "extensions empty",
        second(extensions=[]),
        (
            "D365_ROUTES[1].extensions: is an empty list, which would allow no file; expected a "
            'list of suffixes such as [".xml", ".csv"], or omit it to allow any'
        ),
    ),
    Setting(
        "package route with .xml",
        second(entity=None, extensions=[".xml"]),
        (
            "D365_ROUTES[1].extensions: ['.xml'] on a data package route (no entity); a data "
            'package job takes only .zip packages: use [".zip"], or set entity for a file job'
        ),
    ),
    Setting(
        "package API route with entity, no template, and .xml",
        second(activity_id=..., api="package", definition_group="Customers", extensions=[".xml"]),
        (
            "D365_ROUTES[1].extensions: ['.xml'] on a package route without template; it takes "
            'only .zip packages: use [".zip"], or set template to wrap other files into a package'
        ),
    ),
    Setting(
        "enabled a string",
        second(enabled="yes"),
        "D365_ROUTES[1].enabled: 'yes' is not true or false",
    ),
    Setting(
        "export route activity_id null",
        {
            "EXPORT_ROUTES": json.dumps(
                [{"name": "out", "activity_id": None, "container": "exports", "prefix": "out/"}]
            )
        },
        (
            "EXPORT_ROUTES[0].activity_id: None is not a GUID; expected the recurring data job's "
            "activity ID from Data management > Manage scheduled data jobs, e.g. "
            "6d31e09f-0249-459f-94f0-aad9c2c47b64"
        ),
    ),
    Setting(
        "export route company ending in a newline",
        {
            "EXPORT_ROUTES": json.dumps(
                [
                    {
                        "name": "out",
                        "activity_id": "dddddddd-0000-4000-8000-000000000001",
                        "container": "exports",
                        "prefix": "out/{company}/",
                        "company": "USMF\n",
                    }
                ]
            )
        },
        (
            "EXPORT_ROUTES[0].company: 'USMF\\n' is not a legal entity id; expected 1-4 letters "
            "or digits (the company's DataAreaId, e.g. USMF)"
        ),
    ),
    # -- blob names, against ROUTE_TABLE ----------------------------------------------------------
    Blob(
        "blob name empty",
        "",
        RejectReason.BAD_NAME,
        (
            "blob name '' is empty; F&O gets the file name as its external identifier: rename the "
            "file (printable characters, no empty segments) and upload it again"
        ),
    ),
    Blob(
        "blob name with NUL",
        "customers/USMF/a\x00.xml",
        RejectReason.BAD_NAME,
        (
            "blob name 'customers/USMF/a\\x00.xml' holds a control character; F&O gets the file "
            "name as its external identifier: rename the file (printable characters, no empty "
            "segments) and upload it again"
        ),
    ),
    Blob(
        "blob name with a newline",
        "customers/USMF/a\n.xml",
        RejectReason.BAD_NAME,
        (
            "blob name 'customers/USMF/a\\n.xml' holds a control character; F&O gets the file nam"
            "e "
            "as its external identifier: rename the file (printable characters, no empty segment"
            "s) "
            "and upload it again"
        ),
    ),
    Blob(
        "blob name with DEL",
        "customers/USMF/a\x7f.xml",
        RejectReason.BAD_NAME,
        (
            "blob name 'customers/USMF/a\\x7f.xml' holds a control character; F&O gets the file "
            "name as its external identifier: rename the file (printable characters, no empty "
            "segments) and upload it again"
        ),
    ),
    Blob(
        "blob name with a C1 control",
        "customers/USMF/a\x85.xml",
        RejectReason.BAD_NAME,
        (
            "blob name 'customers/USMF/a\\x85.xml' holds a control character; F&O gets the file "
            "name as its external identifier: rename the file (printable characters, no empty "
            "segments) and upload it again"
        ),
    ),
    Blob(
        "blob name with //",
        "customers//USMF/a.xml",
        RejectReason.BAD_NAME,
        (
            "blob name 'customers//USMF/a.xml' has an empty folder or file name segment; F&O gets "
            "the file name as its external identifier: rename the file (printable characters, no "
            "empty segments) and upload it again"
        ),
    ),
    Blob(
        "blob name a folder",
        "customers/USMF/",
        RejectReason.BAD_NAME,
        (
            "blob name 'customers/USMF/' has an empty folder or file name segment; F&O gets the "
            "file name as its external identifier: rename the file (printable characters, no emp"
            "ty "
            "segments) and upload it again"
        ),
    ),
    Blob(
        "blob name of a blank segment",
        "customers/USMF/ ",
        RejectReason.BAD_NAME,
        (
            "blob name 'customers/USMF/ ' has an empty folder or file name segment; F&O gets the "
            "file name as its external identifier: rename the file (printable characters, no emp"
            "ty "
            "segments) and upload it again"
        ),
    ),
    Blob(
        "blob name with ..",
        "customers/USMF/../a.xml",
        RejectReason.BAD_NAME,
        (
            "blob name 'customers/USMF/../a.xml' holds a '.' or '..' segment; F&O gets the file "
            "name as its external identifier: rename the file (printable characters, no empty "
            "segments) and upload it again"
        ),
    ),
    Blob(
        "file name over 255",
        "customers/USMF/" + "a" * 252 + ".xml",
        RejectReason.BAD_NAME,
        (
            "blob name "
            "'customers/USMF/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' has "
            "a file name longer than 255 characters; F&O gets the file name as its external "
            "identifier: rename the file (printable characters, no empty segments) and upload it "
            "again"
        ),
    ),
    Blob(
        "blob name too long to archive",
        "customers/USMF/" + "d/" * 490 + "a.xml",
        RejectReason.NAME_TOO_LONG,
        (
            "blob name "
            "'customers/USMF/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/...' is "
            "1000 characters long; the archive adds up to 34 ('PostProcessingFailed/' and '.<12 "
            "hex>' for a repeat) and Azure takes at most 1024, so names up to 990 characters are "
            "accepted: use shorter or fewer folder names and upload it again"
        ),
    ),
    Blob(
        "blob name with too many segments",
        "customers/USMF/" + "d/" * 260 + "a.xml",
        RejectReason.NAME_TOO_LONG,
        (
            "blob name "
            "'customers/USMF/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/...' has "
            "263 path segments; the archive adds one and Azure takes at most 254, so names of up "
            "to 253 segments are accepted: use shorter or fewer folder names and upload it again"
        ),
    ),
    Blob(
        "no route",
        "vendors/x.csv",
        RejectReason.NO_ROUTE,
        (
            "no route matches 'vendors/x.csv'; routes: customers/{company}/, packages/USMF/, "
            "parked/; add a route to D365_ROUTES or upload under one of these prefixes"
        ),
    ),
    Blob(
        "route disabled",
        "parked/a.xml",
        RejectReason.ROUTE_DISABLED,
        (
            "route 'parked' for 'parked/a.xml' is disabled; set \"enabled\": true on it in "
            "D365_ROUTES and upload the file again"
        ),
    ),
    Blob(
        "company folder too long",
        "customers/USMF1/a.xml",
        RejectReason.BAD_COMPANY,
        (
            "the {company} folder of 'customers/USMF1/a.xml' (route 'customers', prefix "
            "'customers/{company}/'): 'USMF1' is not a legal entity id; expected 1-4 letters or "
            "digits (the company's DataAreaId, e.g. USMF); upload under the legal entity's folder"
        ),
    ),
    Blob(
        "company folder with a hyphen",
        "customers/US-1/a.xml",
        RejectReason.BAD_COMPANY,
        (
            "the {company} folder of 'customers/US-1/a.xml' (route 'customers', prefix "
            "'customers/{company}/'): 'US-1' is not a legal entity id; expected 1-4 letters or "
            "digits (the company's DataAreaId, e.g. USMF); upload under the legal entity's folder"
        ),
    ),
    Blob(
        "company folder non-ASCII",
        "customers/ü/a.xml",
        RejectReason.BAD_COMPANY,
        (
            "the {company} folder of 'customers/ü/a.xml' (route 'customers', prefix "
            "'customers/{company}/'): 'ü' is not a legal entity id; expected 1-4 letters or digi"
            "ts "
            "(the company's DataAreaId, e.g. USMF); upload under the legal entity's folder"
        ),
    ),
    Blob(
        "company folder with a space",
        "customers/U S/a.xml",
        RejectReason.BAD_COMPANY,
        (
            "the {company} folder of 'customers/U S/a.xml' (route 'customers', prefix "
            "'customers/{company}/'): 'U S' is not a legal entity id; expected 1-4 letters or "
            "digits (the company's DataAreaId, e.g. USMF); upload under the legal entity's folder"
        ),
    ),
    Blob(
        "extension not allowed",
        "customers/USMF/a.json",
        RejectReason.EXTENSION_NOT_ALLOWED,
        (
            "'customers/USMF/a.json' does not end with .xml or .csv, which route 'customers' "
            "requires; upload a file of that type or change the route's extensions in D365_ROUTES"
        ),
    ),
    Blob(
        "package route given .xml",
        "packages/USMF/customers.xml",
        RejectReason.EXTENSION_NOT_ALLOWED,
        (
            "'packages/USMF/customers.xml' does not end with .zip, which data package route "
            "'packages' requires; upload a file of that type or change the route's extensions in "
            "D365_ROUTES"
        ),
    ),
]


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda case: case.kind)
def test_bad_input_gets_a_clear_answer(case: Setting | Blob) -> None:
    if isinstance(case, Blob):
        with pytest.raises(RoutingError) as rejected:
            ROUTE_TABLE.resolve(case.path)
        assert (rejected.value.reason, str(rejected.value)) == (case.reason, case.answer)
        return
    environ = {**GOOD, **case.changes}
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value for name, value in environ.items() if value is not None})
    assert case.answer in caught.value.problems, caught.value.problems
    text = f"{caught.value} {caught.value!r}"
    assert SECRET not in text
    assert ACCOUNT_KEY not in text
    for name in CONFIDENTIAL:
        if case.changes.get(name):
            assert case.changes[name] not in text


def test_the_catalogue_has_one_row_per_kind_and_at_least_40() -> None:
    kinds = [case.kind for case in CATALOGUE]
    assert len(set(kinds)) == len(kinds) >= 40
