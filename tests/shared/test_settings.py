"""App settings: good forms parse, every bad setting is named with the fix, secrets stay hidden."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from shared.settings import (
    ArchiveMode,
    AuthMode,
    D365Settings,
    Settings,
    SettingsError,
    StorageSettings,
    parse_duration,
)
from tests import fakes

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "fake-secret-Zq8~value"
CERT_PASSWORD = "fake-cert-password-Xy7"
ACCOUNT_KEY = "ZmFrZS1rZXktbm90LXJlYWw="
CONNECTION_STRING = (
    "DefaultEndpointsProtocol=https;AccountName=fakeaccount;"
    f"AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net"
)
CLIENT_ID = "bbbbbbbb-0000-4000-8000-000000000001"
MI_CLIENT_ID = "cccccccc-0000-4000-8000-000000000001"
ROUTES = json.dumps(
    [
        {
            "name": "customers",
            "prefix": "customers/{company}/",
            "activity_id": "aaaaaaaa-0000-4000-8000-000000000001",
            "entity": "CustomersV3",
        }
    ]
)


def _env(**overrides: str | None) -> dict[str, str]:
    env = {
        "D365_BASE_URL": "https://fno.example.operations.dynamics.com",
        "D365_TENANT_ID": "faketenant",
        "D365_CLIENT_ID": CLIENT_ID,
        "D365_CLIENT_SECRET": SECRET,
        "D365_ROUTES": ROUTES,
        "IntegrationStorage": CONNECTION_STRING,
    }
    env.update({k: v for k, v in overrides.items() if v is not None})
    for key in [k for k, v in overrides.items() if v is None]:
        env.pop(key, None)
    return env


def _problems(env: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    return caught.value.problems


# -- good forms ----------------------------------------------------------------------------


def test_minimal_settings_get_the_documented_defaults() -> None:
    settings = Settings.from_env(_env())
    assert settings.d365.base_url == "https://fno.example.operations.dynamics.com"
    assert settings.d365.authority_host == "https://login.microsoftonline.com"
    assert settings.d365.auth_mode is AuthMode.CLIENT_SECRET
    assert settings.d365.http_timeout == timedelta(seconds=300)
    assert settings.d365.scope == "https://fno.example.operations.dynamics.com/.default"
    assert [r.name for r in settings.routes] == ["customers"]
    assert settings.inbound_container == "d365-inbound"
    assert settings.archive_container == "d365-archive"
    assert settings.errors_container == "d365-execution-errors"
    assert settings.archive_mode is ArchiveMode.MOVE
    assert settings.status_table == "d365messages"
    assert settings.poll_schedule == "0 */1 * * * *"
    assert settings.poll_concurrency == 16
    assert settings.poll_tick_budget == timedelta(minutes=4)
    assert settings.poll_interval_min == timedelta(seconds=30)
    assert settings.poll_interval_max == timedelta(minutes=10)
    assert settings.max_pending_age == timedelta(hours=24)
    assert settings.claim_lease == timedelta(minutes=10)
    assert settings.max_file_bytes == 48 * 1024 * 1024


def test_every_setting_given() -> None:
    settings = Settings.from_env(
        _env(
            D365_BASE_URL="https://Contoso.Sandbox.Operations.Dynamics.com/",
            D365_AUTHORITY_HOST="login.microsoftonline.us",
            D365_TENANT_ID="contoso.onmicrosoft.com",
            D365_CLIENT_ID="{BBBBBBBB-0000-4000-8000-000000000001}",
            D365_HTTP_TIMEOUT="PT2M",
            INBOUND_CONTAINER="in-box",
            ARCHIVE_CONTAINER="done-box",
            ERRORS_CONTAINER="errors-box",
            ARCHIVE_MODE="Metadata",
            STATUS_TABLE="Messages2",
            POLL_SCHEDULE="  0  */5 * * * MON-FRI ",
            POLL_CONCURRENCY="64",
            POLL_TICK_BUDGET="00:03:30",
            POLL_INTERVAL_MIN="10",
            POLL_INTERVAL_MAX="15m",
            MAX_PENDING_AGE="2d",
            CLAIM_LEASE="5m",
            MAX_FILE_BYTES="20MiB",
        )
    )
    assert settings.d365.base_url == "https://contoso.sandbox.operations.dynamics.com"
    assert settings.d365.authority_host == "https://login.microsoftonline.us"
    assert settings.d365.tenant_id == "contoso.onmicrosoft.com"
    assert settings.d365.client_id == CLIENT_ID
    assert settings.d365.http_timeout == timedelta(minutes=2)
    assert (settings.inbound_container, settings.archive_container) == ("in-box", "done-box")
    assert settings.errors_container == "errors-box"
    assert settings.archive_mode is ArchiveMode.METADATA
    assert settings.status_table == "Messages2"
    assert settings.poll_schedule == "0 */5 * * * MON-FRI"
    assert settings.poll_concurrency == 64
    assert settings.poll_tick_budget == timedelta(minutes=3, seconds=30)
    assert settings.poll_interval_min == timedelta(seconds=10)
    assert settings.poll_interval_max == timedelta(minutes=15)
    assert settings.max_pending_age == timedelta(days=2)
    assert settings.claim_lease == timedelta(minutes=5)
    assert settings.max_file_bytes == 20 * 1024 * 1024


def test_blank_settings_count_as_unset() -> None:
    settings = Settings.from_env(_env(POLL_CONCURRENCY="  ", D365_CLIENT_CERTIFICATE_PATH=""))
    assert settings.poll_concurrency == 16
    assert settings.d365.auth_mode is AuthMode.CLIENT_SECRET


def test_route_limit_and_max_file_bytes_are_read() -> None:
    routes = [
        *json.loads(ROUTES),
        {
            "name": "small",
            "prefix": "small/",
            "activity_id": "aaaaaaaa-0000-4000-8000-000000000009",
            "entity": "X",
            "max_bytes": 1000,
        },
    ]
    settings = Settings.from_env(_env(D365_ROUTES=json.dumps(routes), MAX_FILE_BYTES="5000"))
    assert settings.max_file_bytes == 5000
    assert settings.routes.routes[0].max_bytes is None
    assert settings.routes.routes[1].max_bytes == 1000


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8443", "http://localhost:8080/", "http://fno.localhost", "http://[::1]:1"],
)
def test_http_is_allowed_for_loopback_hosts(url: str) -> None:
    assert Settings.from_env(_env(D365_BASE_URL=url)).d365.base_url == url.rstrip("/")


def test_certificate_identity() -> None:
    d365 = D365Settings.from_env(
        _env(
            D365_CLIENT_SECRET=None,
            D365_CLIENT_CERTIFICATE_PATH="/home/site/cert.pfx",
            D365_CLIENT_CERTIFICATE_PASSWORD=CERT_PASSWORD,
        )
    )
    assert d365.auth_mode is AuthMode.CLIENT_CERTIFICATE
    assert d365.client_certificate_path == "/home/site/cert.pfx"
    assert d365.client_certificate_password == CERT_PASSWORD


@pytest.mark.parametrize("mi_client_id", [None, MI_CLIENT_ID.upper()])
def test_managed_identity(mi_client_id: str | None) -> None:
    env = _env(
        D365_TENANT_ID=None,
        D365_CLIENT_ID=None,
        D365_CLIENT_SECRET=None,
        D365_MANAGED_IDENTITY_CLIENT_ID=mi_client_id,
    )
    d365 = D365Settings.from_env(env)
    assert d365.auth_mode is AuthMode.MANAGED_IDENTITY
    assert d365.managed_identity_client_id == (MI_CLIENT_ID if mi_client_id else None)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("90S", 90),
        ("30m", 1800),
        ("24h", 86400),
        ("1d", 86400),
        ("1.5h", 5400),
        ("PT24H", 86400),
        ("pt30m", 1800),
        ("P1DT2H", 93600),
        ("PT0.5S", 0.5),
        ("P2D", 172800),
        ("00:30:00", 1800),
        ("1.02:00:00", 93600),
        ("300", 300),
        ("2.5", 2.5),
    ],
)
def test_duration_forms(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text", ["", "abc", "P", "PT", "P1DT", "1w", "00:60:00", "10:00", "-5", "0", "PT0S", "1 hour"]
)
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "schedule",
    [
        "0 */1 * * * *",
        "*/10 * * * * *",
        "0 0 9-17 * * 1-5",
        "0 30 2 1,15 JAN-MAR *",
        "0 0 0 * * sun",
        "*/5 * * * *",
        "0 0/15 * * * *",
    ],
)
def test_good_schedules(schedule: str) -> None:
    assert Settings.from_env(_env(POLL_SCHEDULE=schedule)).poll_schedule == schedule


# -- storage forms -------------------------------------------------------------------------


def _storage(**values: str) -> StorageSettings:
    return StorageSettings.from_env(values)


def test_storage_connection_string_wins_over_uris() -> None:
    storage = _storage(
        IntegrationStorage="UseDevelopmentStorage=true",
        IntegrationStorage__blobServiceUri="https://acct.blob.core.windows.net",
    )
    assert storage.uses_connection_string
    assert storage.blob_service_uri is None
    assert storage.health_summary() == {
        "form": "connection_string",
        "account": "development storage",
    }


def test_storage_identity_form_with_user_assigned_identity() -> None:
    storage = _storage(
        IntegrationStorage__blobServiceUri="https://acct.blob.core.windows.net/",
        IntegrationStorage__queueServiceUri="https://acct.queue.core.windows.net",
        IntegrationStorage__tableServiceUri="https://acct.table.core.windows.net",
        IntegrationStorage__credential="ManagedIdentity",
        IntegrationStorage__clientId=MI_CLIENT_ID,
    )
    assert not storage.uses_connection_string
    assert storage.uses_managed_identity
    assert storage.blob_service_uri == "https://acct.blob.core.windows.net"
    assert storage.queue_service_uri == "https://acct.queue.core.windows.net"
    assert storage.table_service_uri == "https://acct.table.core.windows.net"
    assert storage.client_id == MI_CLIENT_ID


def test_storage_service_uri_wins_over_blob_service_uri_and_needs_no_queue() -> None:
    storage = _storage(
        IntegrationStorage__serviceUri="https://first.blob.core.windows.net",
        IntegrationStorage__blobServiceUri="https://second.blob.core.windows.net",
        IntegrationStorage__tableServiceUri="https://first.table.core.windows.net",
    )
    assert storage.blob_service_uri == "https://first.blob.core.windows.net"
    assert not storage.uses_managed_identity  # no __credential: DefaultAzureCredential
    assert storage.health_summary()["credential"] == "DefaultAzureCredential"


def test_storage_uris_with_a_path_for_azurite() -> None:
    storage = _storage(
        IntegrationStorage__blobServiceUri="http://127.0.0.1:10000/devstoreaccount1",
        IntegrationStorage__queueServiceUri="http://127.0.0.1:10001/devstoreaccount1",
        IntegrationStorage__tableServiceUri="http://127.0.0.1:10002/devstoreaccount1",
    )
    assert storage.table_service_uri == "http://127.0.0.1:10002/devstoreaccount1"


# -- every bad setting is named ------------------------------------------------------------

GUID_FORM = "expected the application (client) ID GUID, e.g. 6d31e09f-0249-459f-94f0-aad9c2c47b64"
DURATION_FORMS = "expected e.g. 90s, 30m, 24h, 1d, PT24H, 00:30:00 or seconds"
IDENTITY_URIS = {
    "IntegrationStorage": None,
    "IntegrationStorage__blobServiceUri": "https://acct.blob.core.windows.net",
    "IntegrationStorage__queueServiceUri": "https://acct.queue.core.windows.net",
    "IntegrationStorage__tableServiceUri": "https://acct.table.core.windows.net",
}


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (
            {"D365_BASE_URL": None},
            "D365_BASE_URL: missing; expected e.g. https://contoso.operations.dynamics.com",
        ),
        (
            {"D365_BASE_URL": "http://contoso.operations.dynamics.com"},
            "D365_BASE_URL: 'http://contoso.operations.dynamics.com' uses http; https is required "
            "(http only for loopback hosts); expected the environment root, e.g. "
            "https://contoso.operations.dynamics.com",
        ),
        (
            {"D365_BASE_URL": "contoso.operations.dynamics.com"},
            "D365_BASE_URL: 'contoso.operations.dynamics.com' is not an http(s) URL; expected",
        ),
        (
            {"D365_BASE_URL": "https://contoso.operations.dynamics.com/namespaces/AXSF"},
            "D365_BASE_URL: 'https://contoso.operations.dynamics.com/namespaces/AXSF' has a path "
            "or fragment; expected the environment root",
        ),
        (
            {"D365_BASE_URL": "https://contoso.operations.dynamics.com/?cmp=USMF"},
            "D365_BASE_URL: holds a user name, password or query string (value not shown)",
        ),
        (
            {"D365_AUTHORITY_HOST": "ftp://login.example"},
            "D365_AUTHORITY_HOST: 'ftp://login.example' is not an http(s) URL; expected the Entra "
            "host, e.g. https://login.microsoftonline.com",
        ),
        (
            {"D365_TENANT_ID": "common"},
            "D365_TENANT_ID: 'common' is a multi-tenant endpoint; F&O needs a token from the "
            "tenant itself; expected the tenant GUID or a domain",
        ),
        ({"D365_TENANT_ID": "contoso/x"}, "D365_TENANT_ID: 'contoso/x' is not a tenant id"),
        ({"D365_TENANT_ID": None}, "D365_TENANT_ID: missing; required with a client secret"),
        ({"D365_CLIENT_ID": None}, "D365_CLIENT_ID: missing; required with a client secret"),
        ({"D365_CLIENT_ID": "my-app"}, f"D365_CLIENT_ID: 'my-app' is not a GUID; {GUID_FORM}"),
        (
            {"D365_CLIENT_CERTIFICATE_PATH": "/c.pem"},
            "D365_CLIENT_SECRET: set together with D365_CLIENT_CERTIFICATE_PATH; set only one",
        ),
        (
            {"D365_CLIENT_CERTIFICATE_PASSWORD": "pw-value"},
            "D365_CLIENT_CERTIFICATE_PASSWORD: set without D365_CLIENT_CERTIFICATE_PATH",
        ),
        (
            {"D365_CLIENT_SECRET": None},
            "D365_CLIENT_ID: set without D365_CLIENT_SECRET or D365_CLIENT_CERTIFICATE_PATH; set "
            "one of them, or remove D365_CLIENT_ID to use the managed identity",
        ),
        (
            {"D365_MANAGED_IDENTITY_CLIENT_ID": MI_CLIENT_ID},
            "D365_MANAGED_IDENTITY_CLIENT_ID: set together with a client secret; it applies only "
            "without a secret or certificate",
        ),
        (
            {"D365_MANAGED_IDENTITY_CLIENT_ID": "x"},
            f"D365_MANAGED_IDENTITY_CLIENT_ID: 'x' is not a GUID; {GUID_FORM}",
        ),
        (
            {"D365_CLIENT_SECRET": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/x)"},
            "D365_CLIENT_SECRET: holds a Key Vault reference the platform did not resolve "
            "(value not shown); give the app's identity the 'Key Vault Secrets User' role",
        ),
        (
            {"D365_HTTP_TIMEOUT": "forever"},
            f"D365_HTTP_TIMEOUT: 'forever' is not a duration; {DURATION_FORMS}",
        ),
        (
            {"D365_ROUTES": None},
            "D365_ROUTES: missing; expected a JSON list of routes, e.g. [{",
        ),
        (
            {"D365_ROUTES": '[{"name": "x", "prefix": "x/", "activity_id": "abc"}]'},
            "D365_ROUTES[0].activity_id: 'abc' is not a GUID; expected the recurring data job's "
            "activity ID from Data management > Manage scheduled data jobs, e.g. "
            "6d31e09f-0249-459f-94f0-aad9c2c47b64",
        ),
        ({"D365_ROUTES": "not json"}, "D365_ROUTES: not valid JSON"),
        (
            {"INBOUND_CONTAINER": "Inbound"},
            "INBOUND_CONTAINER: 'Inbound' is not a valid container name; expected 3-63 "
            "lower-case letters, digits and single hyphens, e.g. d365-archive",
        ),
        ({"ARCHIVE_CONTAINER": "a--b"}, "ARCHIVE_CONTAINER: 'a--b' is not a valid container"),
        ({"ERRORS_CONTAINER": "ab"}, "ERRORS_CONTAINER: 'ab' is not a valid container name"),
        (
            {"ERRORS_CONTAINER": "d365-inbound"},
            "ERRORS_CONTAINER: 'd365-inbound' is the inbound container; writing there would "
            "enqueue the files again: use a container of its own",
        ),
        (
            {"ARCHIVE_CONTAINER": "d365-inbound"},
            "ARCHIVE_CONTAINER: 'd365-inbound' is the inbound container",
        ),
        (
            {"ARCHIVE_MODE": "copy"},
            "ARCHIVE_MODE: 'copy' is not an archive mode; expected move or metadata",
        ),
        (
            {"STATUS_TABLE": "d365-messages"},
            "STATUS_TABLE: 'd365-messages' is not a valid table name; expected 3-63 letters or "
            "digits starting with a letter, e.g. d365messages",
        ),
        ({"STATUS_TABLE": "tables"}, "STATUS_TABLE: 'tables' is not a valid table name"),
        (
            {"POLL_SCHEDULE": "0 */1 * * *  * *"},
            "POLL_SCHEDULE: '0 */1 * * *  * *' has 7 fields; expected NCRONTAB '{second} {minute} "
            "{hour} {day} {month} {day-of-week}' (5 fields accepted), e.g. '0 */1 * * * *' for "
            "every minute",
        ),
        (
            {"POLL_SCHEDULE": "00:01:00"},
            "POLL_SCHEDULE: '00:01:00' has 1 fields; expected NCRONTAB",
        ),
        (
            {"POLL_SCHEDULE": "0 */1 24 * * *"},
            "POLL_SCHEDULE: '0 */1 24 * * *': hour field '24' is invalid (allowed 0-23)",
        ),
        (
            {"POLL_SCHEDULE": "0 */0 * * * *"},
            "POLL_SCHEDULE: '0 */0 * * * *': minute field '*/0' is invalid",
        ),
        (
            {"POLL_SCHEDULE": "0 0 0 * * XYZ"},
            "POLL_SCHEDULE: '0 0 0 * * XYZ': day-of-week field 'XYZ' is invalid (allowed 0-6)",
        ),
        (
            {"POLL_SCHEDULE": "0 0 0 * FOO *"},
            "POLL_SCHEDULE: '0 0 0 * FOO *': month field 'FOO' is invalid (allowed 1-12)",
        ),
        (
            {"POLL_SCHEDULE": "0 0 0 ? * *"},
            "POLL_SCHEDULE: '0 0 0 ? * *': day field '?' is invalid (allowed 1-31)",
        ),
        (
            {"POLL_CONCURRENCY": "0"},
            "POLL_CONCURRENCY: '0' is not a whole number from 1 to 64; expected e.g. 16",
        ),
        ({"POLL_CONCURRENCY": "65"}, "POLL_CONCURRENCY: '65' is not a whole number from 1 to 64"),
        ({"POLL_CONCURRENCY": "4.5"}, "POLL_CONCURRENCY: '4.5' is not a whole number"),
        ({"POLL_TICK_BUDGET": "0"}, "POLL_TICK_BUDGET: '0' is not a positive duration"),
        ({"POLL_INTERVAL_MIN": "soon"}, "POLL_INTERVAL_MIN: 'soon' is not a duration"),
        ({"POLL_INTERVAL_MAX": "-1m"}, "POLL_INTERVAL_MAX: '-1m' is not a duration"),
        (
            {"POLL_INTERVAL_MIN": "20m"},
            "POLL_INTERVAL_MIN: 0:20:00 is longer than POLL_INTERVAL_MAX (0:10:00); expected "
            "MIN <= MAX",
        ),
        (
            {"MAX_PENDING_AGE": "5m"},
            "MAX_PENDING_AGE: 0:05:00 is not longer than POLL_INTERVAL_MAX (0:10:00); messages "
            "would time out before their next poll",
        ),
        ({"CLAIM_LEASE": "PT"}, f"CLAIM_LEASE: 'PT' is not a duration; {DURATION_FORMS}"),
        (
            {"MAX_FILE_BYTES": "big"},
            "MAX_FILE_BYTES: 'big' is not a size; expected a positive byte count, e.g. "
            "50331648 or 48MiB",
        ),
        ({"MAX_FILE_BYTES": "0"}, "MAX_FILE_BYTES: '0' is not a positive size"),
        (
            {"IntegrationStorage": None},
            "IntegrationStorage: missing; expected a connection string ('UseDevelopmentStorage="
            "true' locally) or IntegrationStorage__blobServiceUri, __queueServiceUri and "
            "__tableServiceUri with IntegrationStorage__credential=managedidentity",
        ),
        (
            {"IntegrationStorage": "https://acct.blob.core.windows.net"},
            "IntegrationStorage: looks like a URL, not a connection string (value not shown); "
            "for an identity-based connection set IntegrationStorage__blobServiceUri",
        ),
        (
            {"IntegrationStorage": "Key=Value"},
            "IntegrationStorage: is not a storage connection string (value not shown); expected "
            "'DefaultEndpointsProtocol=https;AccountName=<account>;AccountKey=<key>;",
        ),
        (
            {**IDENTITY_URIS, "IntegrationStorage__tableServiceUri": None},
            "IntegrationStorage__tableServiceUri: missing; the status table needs it, e.g. "
            "https://<account>.table.core.windows.net",
        ),
        (
            {**IDENTITY_URIS, "IntegrationStorage__queueServiceUri": None},
            "IntegrationStorage__queueServiceUri: missing; the blob trigger needs it with "
            "__blobServiceUri",
        ),
        (
            {**IDENTITY_URIS, "IntegrationStorage__blobServiceUri": None},
            "IntegrationStorage__blobServiceUri: missing; expected e.g. "
            "https://<account>.blob.core.windows.net",
        ),
        (
            {**IDENTITY_URIS, "IntegrationStorage__credential": "clientsecret"},
            "IntegrationStorage__credential: 'clientsecret' is not supported; expected "
            "managedidentity, or leave it unset to use DefaultAzureCredential",
        ),
        (
            {**IDENTITY_URIS, "IntegrationStorage__clientId": "me"},
            "IntegrationStorage__clientId: 'me' is not a GUID; expected the user-assigned "
            "identity's client ID GUID",
        ),
        (
            {**IDENTITY_URIS, "IntegrationStorage__tableServiceUri": "http://acct.table.x.net"},
            "IntegrationStorage__tableServiceUri: 'http://acct.table.x.net' uses http; https is "
            "required",
        ),
        (
            {**IDENTITY_URIS, "IntegrationStorage__blobServiceUri": "https://a.blob.x.net?sv=1"},
            "IntegrationStorage__blobServiceUri: holds a user name, password or query string "
            "(value not shown)",
        ),
        (
            {"IntegrationStorage": None, "IntegrationStorage__accountName": "acct"},
            "IntegrationStorage__accountName: is honoured only for AzureWebJobsStorage; set "
            "IntegrationStorage__blobServiceUri, __queueServiceUri and __tableServiceUri instead",
        ),
    ],
)
def test_each_bad_setting_is_named_with_the_expected_form(
    overrides: dict[str, str | None], problem: str
) -> None:
    problems = _problems(_env(**overrides))
    assert any(p.startswith(problem) for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "D365_CLIENT_SECRET": SECRET,
                "POLL_CONCURRENCY": "0",
                "ARCHIVE_MODE": "copy",
            }
        )
    error = caught.value
    assert [p.split(":")[0] for p in error.problems] == [
        "D365_BASE_URL",
        "D365_TENANT_ID",
        "D365_CLIENT_ID",
        "IntegrationStorage",
        "D365_ROUTES",
        "ARCHIVE_MODE",
        "POLL_CONCURRENCY",
    ]
    assert str(error).startswith("7 invalid app settings:\n- D365_BASE_URL: missing;")
    assert isinstance(error, ValueError)


def test_metadata_mode_may_share_the_archive_name_with_inbound() -> None:
    settings = Settings.from_env(_env(ARCHIVE_MODE="metadata", ARCHIVE_CONTAINER="d365-inbound"))
    assert settings.archive_mode is ArchiveMode.METADATA


# -- secrets -------------------------------------------------------------------------------


def test_secrets_never_appear_in_repr_str_or_summary() -> None:
    settings = Settings.from_env(_env())
    cert = D365Settings.from_env(
        _env(
            D365_CLIENT_SECRET=None,
            D365_CLIENT_CERTIFICATE_PATH="/c.pem",
            D365_CLIENT_CERTIFICATE_PASSWORD=CERT_PASSWORD,
        )
    )
    texts = [
        repr(settings),
        str(settings),
        repr(settings.d365),
        repr(settings.storage),
        repr(cert),
        json.dumps(settings.health_summary()),
        json.dumps(cert.health_summary()),
    ]
    for text in texts:
        for secret in (SECRET, CERT_PASSWORD, ACCOUNT_KEY, "AccountKey"):
            assert secret not in text
    assert settings.health_summary()["storage"] == {
        "form": "connection_string",
        "account": "fakeaccount",
    }
    assert settings.health_summary()["d365"]["auth_mode"] == "client_secret"


@pytest.mark.parametrize(
    "overrides",
    [
        # the secret set twice: secret + certificate
        {
            "D365_CLIENT_CERTIFICATE_PATH": "/c.pem",
            "D365_CLIENT_CERTIFICATE_PASSWORD": CERT_PASSWORD,
        },
        {"D365_CLIENT_SECRET": f"@Microsoft.KeyVault(SecretUri=https://kv/{SECRET})"},
        {"D365_TENANT_ID": None, "D365_CLIENT_CERTIFICATE_PASSWORD": CERT_PASSWORD},
        {"IntegrationStorage": f"Nonsense={ACCOUNT_KEY}"},
        {"IntegrationStorage": f"https://acct.blob.core.windows.net/{ACCOUNT_KEY}"},
        {
            **IDENTITY_URIS,
            "IntegrationStorage__blobServiceUri": f"https://a.blob.x.net/?sig={ACCOUNT_KEY}",
        },
        {"D365_BASE_URL": f"https://user:{SECRET}@contoso.operations.dynamics.com"},
    ],
)
def test_secrets_never_appear_in_errors(overrides: dict[str, str | None]) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(_env(**overrides))
    for secret in (SECRET, CERT_PASSWORD, ACCOUNT_KEY):
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)


# -- local.settings.example.json -----------------------------------------------------------


def test_local_settings_example_is_valid_and_runs_against_the_local_parts() -> None:
    example = json.loads((REPO_ROOT / "local.settings.example.json").read_text(encoding="utf-8"))
    values = example["Values"]
    assert all(isinstance(v, str) for v in values.values())  # app settings are strings
    settings = Settings.from_env(values)
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert settings.storage.connection_string == "UseDevelopmentStorage=true"
    assert settings.d365.base_url == "https://127.0.0.1:8443"
    assert settings.d365.authority_host == "https://127.0.0.1:8443"
    assert settings.d365.tenant_id == "faketenant"
    assert settings.d365.auth_mode is AuthMode.CLIENT_SECRET
    # The same fake app and jobs as the test emulator (tests/fakes.py) and jobs.example.json.
    assert (settings.d365.client_id, values["D365_CLIENT_SECRET"]) == (
        fakes.CLIENT_ID,
        fakes.CLIENT_SECRET,
    )
    assert settings.poll_schedule == "*/10 * * * * *"
    customers = settings.routes.resolve("customers/USMF/customers.xml")
    assert (customers.route.entity, customers.company) == ("CustomersV3", "USMF")
    journal = settings.routes.resolve("general-journal/DEMF/journal.csv")
    assert (journal.route.entity, journal.company) == ("General journal", "DEMF")
    package = settings.routes.resolve("packages/USMF/package.zip")
    assert package.route.is_package
    assert package.company == "USMF"
    assert [r.activity_id for r in settings.routes] == [
        fakes.CUSTOMERS_ACTIVITY_ID,
        fakes.GENERAL_JOURNAL_ACTIVITY_ID,
        fakes.PACKAGE_ACTIVITY_ID,
    ]
    assert journal.route.entity == fakes.GENERAL_JOURNAL_ENTITY


def test_a_claim_lease_shorter_than_one_enqueue_is_refused() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(_env(CLAIM_LEASE="2m", D365_HTTP_TIMEOUT="5m"))
    assert "CLAIM_LEASE: 120s is shorter than one enqueue may take" in str(caught.value)
    assert "expected at least 480s" in str(caught.value)
