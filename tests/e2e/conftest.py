"""The whole app through the local host, on Azurite and the D365 emulator.

Each test gets its own status table, archive and errors containers, and routes under its own
top-level folder of the (shared) inbound container, so tests never see each other. Uploads
reach ``enqueue_blob`` as in Azure: a local Event Grid subscription (``devtools.event_grid``,
filtered to the test's folder) posts their ``BlobCreated`` events to the host's blob webhook.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient
from playwright.sync_api import Browser, sync_playwright

from devtools.azurite import Azurite
from devtools.chromium import CHROMIUM, CHROMIUM_ARGS, INSTALL_HINT, find_chromium
from devtools.d365_emulator import Emulator
from devtools.event_grid import EventGridPublisher, Subscription, blob_subject
from devtools.local_host import EasyAuth, LocalHost
from tests import fakes

INBOUND = "d365-inbound"
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
TERMINAL = {
    "Processed",
    "ProcessedWithErrors",
    "PreProcessingError",
    "PostProcessingFailed",
    "Rejected",
    "EnqueueFailed",
    "TimedOut",
    "ImportFailed",
    "ImportCanceled",
}
TEMPLATES = "d365-templates"
"""The container of the package routes' template packages (at ``<folder>/customers.zip``)."""


def routes_for(folder: str) -> list[dict[str, Any]]:
    """The test routes, all under one folder of the inbound container."""
    return [
        {
            "name": "customers",
            "prefix": f"{folder}/customers/{{company}}/",
            "activity_id": fakes.CUSTOMERS_ACTIVITY_ID,
            "entity": fakes.CUSTOMERS_ENTITY,
            "extensions": [".xml"],
        },
        {
            "name": "journal",
            "prefix": f"{folder}/general-journal/{{company}}/",
            "activity_id": fakes.GENERAL_JOURNAL_ACTIVITY_ID,
            "entity": fakes.GENERAL_JOURNAL_ENTITY,
        },
        {
            "name": "packages",
            "prefix": f"{folder}/packages/",
            "activity_id": fakes.PACKAGE_ACTIVITY_ID,
            "company": fakes.COMPANY,
        },
        {
            "name": "small",
            "prefix": f"{folder}/small/",
            "activity_id": fakes.CUSTOMERS_ACTIVITY_ID,
            "entity": fakes.CUSTOMERS_ENTITY,
            "company": fakes.COMPANY,
            "max_bytes": 64,
        },
        {
            "name": "pkg",
            "prefix": f"{folder}/pkg/{{company}}/",
            "api": "package",
            "definition_group": "CustomersPackage",
        },
        {
            "name": "pkg-plain",
            "prefix": f"{folder}/pkg-plain/{{company}}/",
            "api": "package",
            "definition_group": "CustomersPackage",
            "template": f"{TEMPLATES}/{folder}/customers.zip",
        },
        {
            "name": "big",
            "prefix": f"{folder}/big/",
            "activity_id": fakes.CUSTOMERS_ACTIVITY_ID,
            "entity": fakes.CUSTOMERS_ENTITY,
            "company": fakes.COMPANY,
            "max_bytes": "1MiB",
            "on_too_large": "package",
            "definition_group": "CustomersPackage",
            "template": f"{TEMPLATES}/{folder}/customers.zip",
        },
        {
            "name": "ordered",
            "prefix": f"{folder}/ordered/{{company}}/",
            "activity_id": fakes.CUSTOMERS_ACTIVITY_ID,
            "entity": fakes.CUSTOMERS_ENTITY,
            "order": "final",
        },
        {
            "name": "ordered-up",
            "prefix": f"{folder}/ordered-up/{{company}}/",
            "activity_id": fakes.CUSTOMERS_ACTIVITY_ID,
            "entity": fakes.CUSTOMERS_ENTITY,
            "order": "upload",
        },
        {
            "name": "ordered-go",
            "prefix": f"{folder}/ordered-go/{{company}}/",
            "activity_id": fakes.CUSTOMERS_ACTIVITY_ID,
            "entity": fakes.CUSTOMERS_ENTITY,
            "order": "final",
            "on_failure": "continue",
        },
    ]


@dataclass
class App:
    """The running app of one test and the ways to drive and inspect it."""

    folder: str
    env: dict[str, str]
    host: LocalHost
    d365: Emulator
    inbound: ContainerClient
    blobs: BlobServiceClient
    tables: TableServiceClient
    events: EventGridPublisher
    function_key: str | None = None
    token: str | None = None
    """With App Service authentication (``HTTP_AUTH=entra``): a bearer token of an operator
    program, which :meth:`get` sends."""

    @property
    def headers(self) -> dict[str, str]:
        """What proves a test's own API calls: the function key, or the operator's token."""
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        return {"x-functions-key": self.function_key} if self.function_key else {}

    def upload(self, path: str, data: bytes) -> str:
        """Upload under this test's folder; returns the blob path."""
        name = f"{self.folder}/{path}"
        self.inbound.upload_blob(name, data, overwrite=True)
        return name

    def upload_sample(self, sample: str) -> str:
        """Upload a file of samples/ at the same relative path."""
        return self.upload(sample, (SAMPLES / sample).read_bytes())

    def get(self, path: str, **params: str) -> requests.Response:
        """GET an /api route of the local host."""
        return requests.get(
            f"{self.host.http_url}/api/{path}", params=params, headers=self.headers, timeout=30
        )

    def record(self, blob: str) -> dict[str, Any]:
        """The latest record of a blob over HTTP (asserting it exists)."""
        response = self.get("messages", blob=blob)
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self) -> None:
        """Stop the local Event Grid, then the host."""
        self.events.stop()
        self.host.stop()

    def deliver(self) -> int:
        """Post the ``BlobCreated`` events of this test's new blob versions to the webhook, as
        Event Grid does, and wait until the host has run them.

        :returns: how many events the webhook acknowledged.
        """
        delivered = self.events.publish_new()
        self.host.process_blob_queue()
        return delivered

    def run_until_terminal(self, blobs: list[str], *, timeout: float = 30.0) -> dict[str, dict]:
        """Deliver new blobs and tick the poller until every blob's record is terminal."""
        self.deliver()
        deadline = time.monotonic() + timeout
        while True:
            records = {blob: self.record(blob) for blob in blobs}
            if all(r["state"] in TERMINAL for r in records.values()):
                return records
            assert time.monotonic() < deadline, {b: r["state"] for b, r in records.items()}
            time.sleep(0.3)
            self.host.run_timer_once()

    def records(self) -> list[dict[str, Any]]:
        """Every tracked file of this test, over the HTTP API (all pages)."""
        found: list[dict[str, Any]] = []
        params = {"limit": "1000"}
        while True:
            page = self.get("messages", **params).json()
            found.extend(page["items"])
            if not page["continuation"]:
                return found
            params["continuation"] = page["continuation"]


def app_environment(d365: Emulator, azurite: Azurite, name: str, folder: str) -> dict[str, str]:
    """App settings for one test."""
    return {
        "D365_BASE_URL": d365.base_url,
        "D365_AUTHORITY_HOST": d365.authority_host,
        "D365_TENANT_ID": fakes.TENANT_ID,
        "D365_CLIENT_ID": fakes.CLIENT_ID,
        "D365_CLIENT_SECRET": fakes.CLIENT_SECRET,
        # The emulator's blob endpoint (SAS URLs of the package API) is on its own host.
        "D365_SAS_HOSTS": d365.host,
        "D365_ROUTES": json.dumps(routes_for(folder)),
        "IntegrationStorage": azurite.connection_string,
        "AzureWebJobsStorage": azurite.connection_string,
        "INBOUND_CONTAINER": INBOUND,
        "STATUS_TABLE": "s" + name.replace("-", ""),
        "ARCHIVE_CONTAINER": f"{name}-archive",
        "ERRORS_CONTAINER": f"{name}-errors",
        "POLL_SCHEDULE": "*/5 * * * * *",
        "POLL_INTERVAL_MIN": "1s",
        "POLL_INTERVAL_MAX": "2s",
        "MAX_PENDING_AGE": "1h",
        "EXPORT_SCHEDULE": "*/5 * * * * *",
        "ORDER_SETTLE": "1s",
        "RETENTION_SCHEDULE": "0 30 2 * * *",
    }


def start_app(
    d365: Emulator,
    azurite: Azurite,
    name: str,
    patch: pytest.MonkeyPatch,
    *,
    function_key: str | None = None,
    easy_auth: EasyAuth | None = None,
    **overrides: str,
) -> App:
    """Start the app of test ``name`` (settings overridable, set through ``patch``) on an
    emulator whose messages move on at once, behind ``easy_auth`` when given; the caller
    stops ``host``."""
    from function_app import app as function_app

    d365.knobs.enqueued_seconds = 0
    d365.knobs.preprocessing_seconds = 0
    d365.knobs.processing_seconds = 0
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    env = app_environment(d365, azurite, name, name) | overrides
    for key, value in env.items():
        patch.setenv(key, value)
    inbound = blobs.get_container_client(env["INBOUND_CONTAINER"])
    if not inbound.exists():
        inbound.create_container()
    host = LocalHost(
        function_app,
        storage_connection_string=azurite.connection_string,
        http_port=0,
        blob_scan_interval=3600,
        timer_interval=3600,
        function_key=function_key,
        easy_auth=easy_auth,
    )
    host.start()
    # The Bicep's subscription, narrowed to this test's folder; listed when a test delivers.
    events = EventGridPublisher(
        inbound,
        Subscription(
            name="enqueue-blob",
            endpoint=host.webhook_url("enqueue_blob"),
            subject_begins_with=blob_subject(inbound.container_name, f"{name}/"),
            subject_case_sensitive=True,
        ),
        interval=None,
    )
    events.start()
    token = easy_auth.token("logic-app") if easy_auth else None
    return App(name, env, host, d365, inbound, blobs, tables, events, function_key, token)


@pytest.fixture
def app_factory(
    d365: Emulator, azurite: Azurite, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., App]]:
    """Start the app (settings overridable); stopped after the test."""
    apps: list[App] = []

    def start(
        *, function_key: str | None = None, easy_auth: EasyAuth | None = None, **overrides: str
    ) -> App:
        app = start_app(
            d365,
            azurite,
            unique_name,
            monkeypatch,
            function_key=function_key,
            easy_auth=easy_auth,
            **overrides,
        )
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


@pytest.fixture
def app(app_factory: Callable[..., App]) -> App:
    """The app with the default test settings."""
    return app_factory()


def enqueue_requests(d365: Emulator) -> list:
    """The enqueue calls the emulator answered with 200."""
    return [r for r in d365.requests if r.operation == "enqueue" and r.status == 200]


def host_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The app's functions in a host process of their own (``devtools.host_process``), its
    timers every 0.5 s and blob listings every 0.3 s; the caller terminates it."""
    command = [
        sys.executable, "-m", "devtools.host_process", "--http-port", "0",
        "--poll-blobs", "--blob-scan-interval", "0.3", "--timer-interval", "0.5",
        "--max-parallel", "4",
    ]  # fmt: skip
    with log.open("wb") as handle:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 60
    while b"ready http=" not in log.read_bytes():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.05)
    return process


def stop_hosts(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """Stop each of ``host_process``'s hosts with SIGTERM, as Azure stops an instance. One
    still running 30 s later is killed, never left to take the next tests' blobs and F&O
    calls, and the test fails saying so."""
    hung = []
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
            hung.append(process.pid)
    assert not hung, f"host processes {hung} did not stop within 30 s of SIGTERM: killed"


# -- the browser tests' Chromium (tests/e2e/test_console*_browser.py) -----------------------


def chromium_path(default: str = CHROMIUM) -> str:
    """Debian's Chromium; a test failure (never a skip) that says how to install it."""
    found = find_chromium(default)
    if not found:
        pytest.fail(
            f"the browser tests need Chromium ({default} or chromium on PATH): {INSTALL_HINT}, "
            "then run again",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium through Playwright (its own browser download is not used)."""
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        yield launched
        launched.close()
