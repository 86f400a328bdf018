"""App settings: good forms parse, problems are reported together, secrets stay hidden.

Every kind of bad setting, with its exact answer, is in test_bad_settings.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from shared.config import (
    SETTING_NAMES,
    ArchiveMode,
    AuthMode,
    Settings,
    SettingsError,
    StorageSettings,
)
from shared.config.budget import BudgetMode, BudgetSettings
from shared.views.health import health_summary
from shared.zips import ZipLimits
from tests import fakes

REPO_ROOT = Path(__file__).resolve().parents[3]
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
    assert settings.d365.write_timeout == timedelta(seconds=300)
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
    assert settings.export_max_attempts == 10
    assert settings.zip_limits == ZipLimits(
        max_members=10_000,
        max_member_bytes=4 * 1024**3,
        max_total_bytes=8 * 1024**3,
        max_ratio=200,
        max_manifest_bytes=4 * 1024**2,
    )


def test_the_zip_limits_and_export_attempts_are_read_in_their_forms() -> None:
    settings = Settings.from_env(
        _env(
            ZIP_MAX_MEMBERS="500",
            ZIP_MAX_MEMBER_BYTES="1TiB",
            ZIP_MAX_TOTAL_BYTES="1TiB",
            ZIP_MAX_RATIO="1000",
            ZIP_MAX_MANIFEST_BYTES="512KiB",
            EXPORT_MAX_ATTEMPTS="3",
        )
    )
    assert settings.zip_limits == ZipLimits(500, 1024**4, 1024**4, 1000, 512 * 1024)
    assert settings.export_max_attempts == 3


def test_every_setting_given() -> None:
    settings = Settings.from_env(
        _env(
            D365_BASE_URL="https://Contoso.Sandbox.Operations.Dynamics.com/",
            D365_AUTHORITY_HOST="login.microsoftonline.us",
            D365_TENANT_ID="contoso.onmicrosoft.com",
            D365_CLIENT_ID="{BBBBBBBB-0000-4000-8000-000000000001}",
            D365_HTTP_TIMEOUT="PT2M",
            D365_WRITE_TIMEOUT="90s",
            D365_SAS_HOSTS="127.0.0.1, LocalHost. [::1]",
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
    assert settings.d365.write_timeout == timedelta(seconds=90)
    assert settings.d365.sas_hosts == ("127.0.0.1", "localhost", "::1")
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
    assert settings.routes.get("customers").max_bytes is None
    assert settings.routes.get("small").max_bytes == 1000


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8443", "http://localhost:8080/", "http://fno.localhost", "http://[::1]:1"],
)
def test_http_is_allowed_for_loopback_hosts(url: str) -> None:
    assert Settings.from_env(_env(D365_BASE_URL=url)).d365.base_url == url.rstrip("/")


def test_certificate_identity() -> None:
    d365 = Settings.from_env(
        _env(
            D365_CLIENT_SECRET=None,
            D365_CLIENT_CERTIFICATE_PATH="/home/site/cert.pfx",
            D365_CLIENT_CERTIFICATE_PASSWORD=CERT_PASSWORD,
        )
    ).d365
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
    d365 = Settings.from_env(env).d365
    assert d365.auth_mode is AuthMode.MANAGED_IDENTITY
    assert d365.managed_identity_client_id == (MI_CLIENT_ID if mi_client_id else None)


@pytest.mark.parametrize(
    "schedule",
    [
        "0 */1 * * * *",
        "*/10 * * * * *",
        "0 0 9-17 * * 1-5",
        "0 30 2 1,15 JAN-MAR *",
        "0 0 0 * * sun",
        "0 0 0 * * Sunday",
        "0 0 1-10/3 * JAN,jul *",
        "0 5/15 * * * *",
        "0 0 0 29 2 *",
        "*/5 * * * *",
        "0 0/15 * * * *",
    ],
)
def test_good_schedules(schedule: str) -> None:
    assert Settings.from_env(_env(POLL_SCHEDULE=schedule)).poll_schedule == schedule


IDENTITY_URIS = {
    "IntegrationStorage": None,
    "IntegrationStorage__blobServiceUri": "https://acct.blob.core.windows.net",
    "IntegrationStorage__queueServiceUri": "https://acct.queue.core.windows.net",
    "IntegrationStorage__tableServiceUri": "https://acct.table.core.windows.net",
}


# -- storage forms -------------------------------------------------------------------------


def _storage(**values: str) -> StorageSettings:
    """The storage settings of an environment whose IntegrationStorage forms are ``values``."""
    return Settings.from_env(_env(**{"IntegrationStorage": None, **values})).storage


def test_storage_connection_string_wins_over_uris() -> None:
    storage = _storage(
        IntegrationStorage="UseDevelopmentStorage=true",
        IntegrationStorage__blobServiceUri="https://acct.blob.core.windows.net",
    )
    assert storage.uses_connection_string
    assert storage.blob_service_uri is None
    assert storage.account == "development storage"


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
    assert storage.account is None


def test_storage_uris_with_a_path_for_azurite() -> None:
    storage = _storage(
        IntegrationStorage__blobServiceUri="http://127.0.0.1:10000/devstoreaccount1",
        IntegrationStorage__queueServiceUri="http://127.0.0.1:10001/devstoreaccount1",
        IntegrationStorage__tableServiceUri="http://127.0.0.1:10002/devstoreaccount1",
    )
    assert storage.table_service_uri == "http://127.0.0.1:10002/devstoreaccount1"


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
    cert = Settings.from_env(
        _env(
            D365_CLIENT_SECRET=None,
            D365_CLIENT_CERTIFICATE_PATH="/c.pem",
            D365_CLIENT_CERTIFICATE_PASSWORD=CERT_PASSWORD,
        )
    ).d365
    texts = [
        repr(settings),
        str(settings),
        repr(settings.d365),
        repr(settings.storage),
        repr(cert),
        json.dumps(health_summary(settings)),
    ]
    for text in texts:
        for secret in (SECRET, CERT_PASSWORD, ACCOUNT_KEY, "AccountKey"):
            assert secret not in text
    summary = health_summary(settings)
    assert summary["storage"] == {"form": "connection_string", "account": "fakeaccount"}
    assert summary["d365"]["auth_mode"] == "client_secret"
    assert summary["d365"]["write_timeout_seconds"] == 300.0


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


# -- host.json -----------------------------------------------------------------------------


def test_the_tick_budget_may_fill_functiontimeout_less_one_call(tmp_path: Path) -> None:
    # host.json: functionTimeout 00:10:00; 4m59s + 5m is just under it.
    settings = Settings.from_env(_env(POLL_TICK_BUDGET="299s"), app_root=REPO_ROOT)
    assert settings.poll_tick_budget == timedelta(seconds=299)


@pytest.mark.parametrize(
    "host_json",
    [None, '{"version": "2.0"}', '{"functionTimeout": "-1"}', "not json", '{"functionTimeout": 5}'],
)
def test_without_a_function_timeout_the_tick_budget_is_bounded_by_its_range_only(
    tmp_path: Path, host_json: str | None
) -> None:
    if host_json is not None:
        (tmp_path / "host.json").write_text(host_json, encoding="utf-8")
    settings = Settings.from_env(_env(POLL_TICK_BUDGET="50m"), app_root=tmp_path)
    assert settings.poll_tick_budget == timedelta(minutes=50)


def test_a_longer_function_timeout_allows_a_longer_tick(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text('{"functionTimeout": "1.00:00:00"}', encoding="utf-8")
    settings = Settings.from_env(_env(POLL_TICK_BUDGET="50m"), app_root=tmp_path)
    assert settings.poll_tick_budget == timedelta(minutes=50)


# -- setting names -------------------------------------------------------------------------


def test_setting_names_are_the_documented_ones() -> None:
    import shared.config

    documented = re.findall(r"``([A-Z][A-Z0-9]*_[A-Z0-9_]+)``", shared.config.__doc__ or "")
    assert set(documented) == set(SETTING_NAMES)


@pytest.mark.parametrize(
    "name", ["D365_AUTH_MODE", "POLL_STATUS_ENABLED", "MAX_JOBS", "AzureWebJobsStorage", "d365"]
)
def test_unrelated_names_are_not_taken_for_misspellings(name: str) -> None:
    assert Settings.from_env(_env(**{name: "x"})).poll_concurrency == 16


@pytest.mark.parametrize(
    "first", ["shared.config.routes", "shared.config", "shared.config.ncrontab"]
)
def test_config_and_routing_import_in_either_order(first: str) -> None:
    # shared.config.routes uses shared.config's parsers and Settings holds a ImportRoutes.
    code = f"import {first}, shared.config, shared.config.routes; print(shared.config.Settings)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


# -- HTTP_AUTH ------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "mode"), [(None, "key"), ("key", "key"), ("ENTRA", "entra")])
def test_http_auth_is_key_by_default_or_entra(raw: str | None, mode: str) -> None:
    assert Settings.from_env(_env(HTTP_AUTH=raw)).http_auth.value == mode


def test_a_bad_http_auth_names_the_setting_and_the_two_modes() -> None:
    problems = _problems(_env(HTTP_AUTH="aad"))

    assert problems == (
        "HTTP_AUTH: 'aad' is not an HTTP_AUTH mode; expected key (a function key guards every "
        "route) or entra (Entra ID sign-in)",
    )


def test_a_misspelled_http_auth_is_caught() -> None:
    assert any("did you mean HTTP_AUTH?" in p for p in _problems(_env(HTTP_AUTHH="entra")))


# -- the F&O budget ------------------------------------------------------------------------


def test_the_f_and_o_budget_defaults_below_f_and_os_documented_limits() -> None:
    budget = Settings.from_env(_env()).budget
    assert budget == BudgetSettings(BudgetMode.SHARED, 32, 4800)
    assert budget.max_concurrency < 52
    assert budget.max_requests_per_5min < 6000


def test_the_f_and_o_budget_is_read_in_its_forms() -> None:
    settings = Settings.from_env(
        _env(D365_BUDGET=" Off ", D365_MAX_CONCURRENCY="8", D365_MAX_REQUESTS_PER_5MIN="600")
    )
    assert settings.budget == BudgetSettings(BudgetMode.OFF, 8, 600)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"D365_BUDGET": "global"},
            "D365_BUDGET: 'global' is not a budget mode; expected shared (one F&O budget for "
            "every instance) or off",
        ),
        (
            {"D365_MAX_CONCURRENCY": "0"},
            "D365_MAX_CONCURRENCY: '0' is not a whole number from 1 to 1000; expected F&O calls "
            "in flight at once for the whole app, e.g. 32 (F&O allows 52 per user)",
        ),
        (
            {"D365_MAX_REQUESTS_PER_5MIN": "6k"},
            "D365_MAX_REQUESTS_PER_5MIN: '6k' is not a whole number from 1 to 1000000; expected "
            "F&O calls per 5 minutes for the whole app, e.g. 4800 (F&O allows 6000 per user)",
        ),
    ],
)
def test_a_bad_f_and_o_budget_names_the_setting_and_the_fix(
    env: dict[str, str], problem: str
) -> None:
    assert _problems(_env(**env)) == (problem,)
