"""The local Functions host against Azurite, with a throwaway app built here and the real app."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import azure.functions as func
import pytest
import requests
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from devtools import run_local
from devtools.azurite import Azurite, connection_string, free_port
from devtools.fault_proxy import FaultKind, FaultPlan, FaultProxy, StorageService
from devtools.local_host import (
    POISON_QUEUE,
    LocalHost,
    MissingAppSettingError,
    UnsupportedBindingError,
    resolve_app_settings,
)
from shared.config.ncrontab import parse_ncrontab
from tests.devtools.probe_app import FUNCTION_KEY, TIMEOUT, Probe, build_app, wait_for

EXAMPLE_SECRET = json.loads(
    (run_local.REPO_ROOT / "local.settings.example.json").read_text(encoding="utf-8")
)["Values"]["D365_CLIENT_SECRET"]


# --- blob trigger: the polling fallback (the webhook: test_blob_webhook.py) -----------------


@pytest.fixture
def polling(make_host: Callable[..., tuple[LocalHost, Probe]]) -> tuple[LocalHost, Probe]:
    return make_host(poll_blobs=True)


def test_polling_fires_once_with_a_working_blob_client(
    polling: tuple[LocalHost, Probe], container: ContainerClient, caplog: pytest.LogCaptureFixture
) -> None:
    host, probe = polling
    caplog.set_level(logging.INFO, logger="devtools.local_host")
    container.upload_blob("customers/USMF/a.xml", b"<Document/>")

    assert host.scan_blobs_once() == 1
    assert probe.blobs == [("customers/USMF/a.xml", b"<Document/>")]
    assert host.scan_blobs_once() == 0
    assert len(probe.blobs) == 1
    line = next(r.getMessage() for r in caplog.records if "function=on_blob" in r.getMessage())
    assert f"blob={container.container_name}/customers/USMF/a.xml" in line
    assert "outcome=succeeded" in line
    assert "duration_ms=" in line


def test_polling_fires_again_for_an_overwrite_but_not_for_a_metadata_write(
    polling: tuple[LocalHost, Probe], container: ContainerClient
) -> None:
    host, probe = polling
    blob_client = container.upload_blob("x.csv", b"v1")
    assert host.scan_blobs_once() == 1

    blob_client.set_blob_metadata({"rejected": "no route"})  # new ETag, same content
    assert host.scan_blobs_once() == 0

    container.upload_blob("x.csv", b"version 2", overwrite=True)
    assert host.scan_blobs_once() == 1
    assert probe.blobs == [("x.csv", b"v1"), ("x.csv", b"version 2")]


def test_blobs_present_at_start_fire_only_with_fire_existing(
    make_host: Callable[..., tuple[LocalHost, Probe]], container: ContainerClient
) -> None:
    container.upload_blob("old.xml", b"old")
    host, probe = make_host(poll_blobs=True)
    assert host.scan_blobs_once() == 0
    assert probe.blobs == []

    host, probe = make_host(poll_blobs=True, fire_existing=True, http_port=0)
    assert host.scan_blobs_once() == 1
    assert probe.blobs == [("old.xml", b"old")]


def test_failing_blob_goes_to_the_poison_queue_after_the_threshold(
    polling: tuple[LocalHost, Probe], container: ContainerClient, azurite: Azurite
) -> None:
    host, probe = polling
    blob_client = container.upload_blob("fail/bad.xml", b"bad")
    etag = blob_client.get_blob_properties().etag

    assert host.scan_blobs_once() == 1
    assert probe.blobs == [("fail/bad.xml", b"bad")] * 3
    assert host.scan_blobs_once() == 0  # poisoned, not retried by later scans

    with QueueClient.from_connection_string(azurite.connection_string, POISON_QUEUE) as queue:
        raw = [m.content for m in queue.peek_messages(max_messages=32)]
    messages = [json.loads(base64.b64decode(text)) for text in raw]
    mine = [m for m in messages if m["ContainerName"] == container.container_name]
    assert mine == [
        {
            "Type": "BlobTrigger",
            "FunctionId": "Host.Functions.on_blob",
            "BlobType": "BlockBlob",
            "ContainerName": container.container_name,
            "BlobName": "fail/bad.xml",
            "ETag": etag,
        }
    ]


def test_the_scan_loop_fires_new_blobs(
    make_host: Callable[..., tuple[LocalHost, Probe]], container: ContainerClient
) -> None:
    _, probe = make_host(poll_blobs=True, blob_scan_interval=0.1)
    container.upload_blob("loop.xml", b"loop")
    wait_for(lambda: probe.blobs == [("loop.xml", b"loop")])


# --- timer trigger --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "plan",
    [
        FaultPlan(server_busy=1.0, services=frozenset({StorageService.QUEUE})),
        # The host reads the blob's ETag (a HEAD) before it runs the function; the function's
        # own download is a GET, never failed.
        FaultPlan(
            server_busy=1.0, services=frozenset({StorageService.BLOB}), methods=frozenset({"HEAD"})
        ),
    ],
    ids=["trigger queue", "blob ETag check"],
)
def test_a_busy_storage_call_of_the_host_delays_a_delivery_by_seconds_not_by_the_sdks_15_s(
    azurite: Azurite,
    container: ContainerClient,
    env: None,
    monkeypatch: pytest.MonkeyPatch,
    plan: FaultPlan,
) -> None:
    with FaultProxy.for_azurite(azurite, plan=plan, seed=1, enabled=False) as proxy:
        monkeypatch.setenv("TestStorage", proxy.connection_string)
        probe = Probe()
        host = LocalHost(
            build_app(container.container_name, probe),
            storage_connection_string=proxy.connection_string,
            http_port=0,
            poll_blobs=True,
            blob_scan_interval=0.2,
            timer_interval=3600,
        )
        with host:
            proxy.enabled = True
            container.upload_blob("busy/a.xml", b"<Document/>")
            threading.Timer(0.5, lambda: setattr(proxy, "enabled", False)).start()
            wait_for(lambda: probe.blobs == [("busy/a.xml", b"<Document/>")])
        busy = proxy.counts().faults_by_service
    assert plan.services is not None
    (service,) = plan.services
    assert busy[(service, FaultKind.SERVER_BUSY)] >= 1


def test_timer_is_a_singleton(
    hosted: tuple[LocalHost, Probe], caplog: pytest.LogCaptureFixture
) -> None:
    host, probe = hosted
    caplog.set_level(logging.INFO, logger="devtools.local_host")
    probe.timer_gate.clear()
    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(host.run_timer_once()))
    first.start()
    assert probe.timer_started.wait(TIMEOUT)

    assert host.run_timer_once() == 0
    assert "timer tick skipped function=tick" in caplog.text
    probe.timer_gate.set()
    first.join(TIMEOUT)
    assert results == [1]
    assert probe.timer_calls == [False]
    assert host.run_timer_once() == 1


# Every second; the second written with the names and steps the settings accept too.
@pytest.mark.parametrize("schedule", ["*/1 * * * * *", "0-59/1 * * * JAN-DEC SUN-SAT"])
def test_timer_follows_the_ncrontab_schedule_from_the_setting(
    make_host: Callable[..., tuple[LocalHost, Probe]],
    monkeypatch: pytest.MonkeyPatch,
    schedule: str,
) -> None:
    monkeypatch.setenv("TEST_SCHEDULE", schedule)
    _, probe = make_host(timer_interval=None)
    wait_for(lambda: len(probe.timer_calls) >= 2)
    assert set(probe.timer_calls) == {False}


def test_a_schedule_is_read_with_the_apps_own_ncrontab_grammar(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One grammar: the host refuses exactly what shared.config.ncrontab refuses, in its words.
    monkeypatch.setenv("TEST_SCHEDULE", "61 * * * * *")
    with pytest.raises(ValueError) as expected:
        parse_ncrontab("61 * * * * *")

    with pytest.raises(ValueError) as caught:
        LocalHost(build_app("unused", Probe()), storage_connection_string=azurite.connection_string)
    assert str(caught.value) == f"function 'tick': {expected.value}"


# --- HTTP trigger ---------------------------------------------------------------------------


def test_http_route_params_query_body_and_response(hosted: tuple[LocalHost, Probe]) -> None:
    host, _ = hosted
    headers = {"x-functions-key": FUNCTION_KEY, "x-test": "yes"}

    response = requests.get(f"{host.http_url}/api/items/42?x=1&y=", headers=headers, timeout=5)
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["X-Echo"] == "1"
    echo = response.json()
    assert echo["method"] == "GET"
    assert echo["url"] == f"{host.http_url}/api/items/42?x=1&y="
    assert echo["route_params"] == {"item_id": "42"}
    assert echo["params"] == {"x": "1", "y": ""}
    assert echo["header"] == "yes"

    response = requests.get(f"{host.http_url}/api/Orders/7/lines", timeout=5)
    assert response.json() == {"order_id": "7"}  # constraint ignored, literals case-insensitive

    response = requests.post(
        f"{host.http_url}/api/items", data=b"hello", headers=headers, timeout=5
    )
    assert response.json()["route_params"] == {}
    assert response.json()["body"] == "hello"


def test_http_unknown_route_and_method(hosted: tuple[LocalHost, Probe]) -> None:
    host, _ = hosted
    response = requests.get(f"{host.http_url}/api/nothing/here", timeout=5)
    assert (response.status_code, response.json()["error"]) == (404, "not found")
    assert requests.get(f"{host.http_url}/other", timeout=5).status_code == 404

    response = requests.put(
        f"{host.http_url}/api/items/1", headers={"x-functions-key": FUNCTION_KEY}, timeout=5
    )
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"


@pytest.mark.parametrize("method", ["TRACE", "QUERY"])
def test_http_any_common_method_is_a_405_not_http_servers_501(
    hosted: tuple[LocalHost, Probe], method: str
) -> None:
    host, _ = hosted
    headers = {"x-functions-key": FUNCTION_KEY}
    response = requests.request(method, f"{host.http_url}/api/items/1", headers=headers, timeout=5)
    assert (response.status_code, response.json()) == (
        405,
        {"error": f"method {method} not allowed"},
    )
    assert response.headers["Allow"] == "GET, POST"


def test_http_function_key_is_enforced_when_set(
    hosted: tuple[LocalHost, Probe], caplog: pytest.LogCaptureFixture
) -> None:
    host, _ = hosted
    caplog.set_level(logging.DEBUG, logger="devtools.local_host")
    url = f"{host.http_url}/api/items/1"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, headers={"x-functions-key": "wrong"}, timeout=5).status_code == 401
    assert requests.get(f"{url}?code={FUNCTION_KEY}", timeout=5).status_code == 201
    assert requests.get(f"{host.http_url}/api/health", timeout=5).text == "healthy"
    assert FUNCTION_KEY not in caplog.text


def test_http_keys_are_not_enforced_without_a_function_key(
    make_host: Callable[..., tuple[LocalHost, Probe]],
) -> None:
    host, _ = make_host(function_key=None)
    assert requests.get(f"{host.http_url}/api/items/1", timeout=5).status_code == 201


def test_http_function_exception_is_a_generic_500(
    hosted: tuple[LocalHost, Probe], caplog: pytest.LogCaptureFixture
) -> None:
    host, _ = hosted
    response = requests.get(f"{host.http_url}/api/crash", timeout=5)
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error"}
    assert "Traceback" not in response.text
    assert "internal detail that must stay in the log" in caplog.text
    assert "Traceback" in caplog.text
    assert "function=crash" in caplog.text
    assert "outcome=failed" in caplog.text


# --- lifecycle and the real app -------------------------------------------------------------


def test_stop_joins_everything(make_host: Callable[..., tuple[LocalHost, Probe]]) -> None:
    host, _ = make_host(poll_blobs=True, blob_scan_interval=0.1, timer_interval=0.1)
    url = host.http_url
    assert requests.get(f"{url}/api/health", timeout=5).status_code == 200
    host.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("local-host")]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/api/health", timeout=5)


def test_the_real_app_bindings_are_all_understood(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    from function_app import app

    monkeypatch.setenv("POLL_SCHEDULE", "0 */5 * * * *")
    monkeypatch.setenv("EXPORT_SCHEDULE", "0 */5 * * * *")
    monkeypatch.setenv("RETENTION_SCHEDULE", "0 30 2 * * *")
    monkeypatch.setenv("INBOUND_CONTAINER", "my-drop-box")
    host = LocalHost(app, storage_connection_string=azurite.connection_string, http_port=0)
    assert {"enqueue_blob", "poll_status", "http_status", "export_jobs", "retention"} <= set(
        host.function_names
    )


def test_unknown_bindings_and_missing_settings_are_refused(azurite: Azurite) -> None:
    app = func.FunctionApp()

    @app.function_name("on_queue")
    @app.queue_trigger(arg_name="msg", queue_name="q", connection="TestStorage")
    def on_queue(msg: func.QueueMessage) -> None:
        del msg

    with pytest.raises(UnsupportedBindingError, match="'msg' of type 'queueTrigger'"):
        LocalHost(app, storage_connection_string=azurite.connection_string)

    timer_app = func.FunctionApp()

    @timer_app.function_name("tick")
    @timer_app.timer_trigger(arg_name="timer", schedule="%NOT_SET_ANYWHERE%")
    def tick(timer: func.TimerRequest) -> None:
        del timer

    with pytest.raises(MissingAppSettingError) as caught:
        LocalHost(timer_app, storage_connection_string=azurite.connection_string)
    assert str(caught.value) == (
        "app setting 'NOT_SET_ANYWHERE' is not set; function 'tick' needs it for its schedule "
        "'%NOT_SET_ANYWHERE%': set NOT_SET_ANYWHERE in local.settings.json (Values) or in the "
        "environment"
    )


def test_app_setting_expressions_are_replaced_by_their_values() -> None:
    environ = {"BOX": "inbound", "SUB": "in"}
    resolved = resolve_app_settings(
        "%BOX%/%SUB%/{name}", environ, function="f", binding_property="blob path"
    )
    assert resolved == "inbound/in/{name}"


# --- run_local: the pieces that do not need the app's functions ------------------------------


def test_local_settings_fill_the_environment_without_overriding_it(tmp_path: Path) -> None:
    example = {"Values": {"D365_BASE_URL": "https://127.0.0.1:8443", "STATUS_TABLE": "t"}}
    (tmp_path / "local.settings.example.json").write_text(json.dumps(example))
    environ = {"D365_BASE_URL": "https://contoso.operations.dynamics.com"}

    assert run_local.load_local_settings(tmp_path, environ).name == "local.settings.example.json"
    assert environ == {
        "D365_BASE_URL": "https://contoso.operations.dynamics.com",
        "STATUS_TABLE": "t",
    }

    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"STATUS_TABLE": "mine"}}))
    environ = {}
    assert run_local.load_local_settings(tmp_path, environ).name == "local.settings.json"
    assert environ == {"STATUS_TABLE": "mine"}

    with pytest.raises(run_local.LocalRunError, match=r"no local\.settings\.json or"):
        run_local.load_local_settings(tmp_path / "empty", {})


def test_the_emulator_and_azurite_run_only_for_local_endpoints(azurite: Azurite) -> None:
    assert run_local.is_loopback_url("https://127.0.0.1:8443")
    assert run_local.is_loopback_url("https://localhost:8443/")
    assert not run_local.is_loopback_url("https://contoso.operations.dynamics.com")
    assert run_local.local_storage_ports("UseDevelopmentStorage=true") == (10000, 10001, 10002)
    assert run_local.local_storage_ports(azurite.connection_string) == (
        azurite.blob_port,
        azurite.queue_port,
        azurite.table_port,
    )
    real = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=fake;EndpointSuffix=x.net"
    assert run_local.local_storage_ports(real) is None


def test_ports_in_use_are_named_with_a_way_to_free_them() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(run_local.LocalRunError) as caught:
            run_local.check_ports_free({port: "Azurite blob", free_port(): "D365 emulator"})
    text = str(caught.value)
    assert f"port(s) {port} (Azurite blob) already in use" in text
    assert f"fuser -k {port}/tcp" in text
    assert "D365 emulator" not in text


def test_sample_uploads_keep_paths_and_get_a_run_suffix(tmp_path: Path) -> None:
    (tmp_path / "customers" / "USMF").mkdir(parents=True)
    (tmp_path / "customers" / "USMF" / "customers-valid.xml").write_bytes(b"<Document/>")
    (tmp_path / "README.md").write_text("docs, not a sample")

    uploads = run_local.sample_uploads(tmp_path, "run1")
    assert [u.blob_path for u in uploads] == [
        "customers/USMF/customers-valid-run1.xml",
        "unrouted/readme-run1.txt",
    ]
    assert uploads[0].data == b"<Document/>"
    assert uploads[1].data


def _status_app(script: dict[str, list[dict[str, object] | None]]) -> func.FunctionApp:
    """An HTTP API that answers ``?blob=`` with the next record of ``script`` (None: 404)."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.function_name("http_status")
    @app.route(route="messages/{message_id?}", methods=["GET"])
    def http_status(req: func.HttpRequest) -> func.HttpResponse:
        steps = script[req.params["blob"]]
        record = steps.pop(0) if len(steps) > 1 else steps[0]
        if record is None:
            return func.HttpResponse('{"error": "not tracked"}', status_code=404)
        return func.HttpResponse(json.dumps(record), mimetype="application/json")

    return app


def test_follow_prints_each_state_change_until_all_are_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    errors = [{"record_id": "2", "field": "CUSTOMERGROUPID", "message": "Group 99 not found."}]
    done = {"state": "ProcessedWithErrors", "message_id": "m-1", "errors": errors, "error_count": 1}
    staging = "errors/pkg-1/Customers-V3-staging-errors.txt"
    failed = {"state": "ImportFailed", "execution_id": "pkg-1", "error_files": [staging]}
    script: dict[str, list[dict[str, object] | None]] = {
        "c/a.xml": [None, {"state": "Received"}, {"state": "Enqueued", "message_id": "m-1"}, done],
        "u/b.txt": [{"state": "Rejected", "reject_reason": "NO_ROUTE", "last_error": "no route"}],
        "p/c.zip": [{"state": "Importing", "execution_id": "pkg-1"}, failed],
    }
    app = _status_app(script)
    with LocalHost(app, storage_connection_string="unused", http_port=0, function_key="k") as host:
        url = host.http_url
        client = run_local.StatusClient(url, function_key="k")
        statuses = run_local.follow(client, list(script), timeout=TIMEOUT, interval=0.01)
        run_local.print_summary(statuses, url)
        client.close()

    assert {p: s.state for p, s in statuses.items()} == {
        "c/a.xml": "ProcessedWithErrors",
        "u/b.txt": "Rejected",
        "p/c.zip": "ImportFailed",
    }
    out = capsys.readouterr().out
    changes = [line.split("  ", 1)[1] for line in out.splitlines() if line[:2].isdigit()]
    assert changes == [
        "u/b.txt: Rejected reject_reason=NO_ROUTE",
        "p/c.zip: Importing execution_id=pkg-1",
        "c/a.xml: Received",
        "p/c.zip: ImportFailed execution_id=pkg-1",
        "c/a.xml: Enqueued message_id=m-1",
        "c/a.xml: ProcessedWithErrors message_id=m-1 error_count=1",
    ]
    assert "c/a.xml: 1 error(s)\n  record 2 CUSTOMERGROUPID: Group 99 not found." in out
    assert "u/b.txt: rejected: no route" in out
    assert f"p/c.zip: F&O's error files (package import):\n  {staging}" in out
    assert f"  {url}/api/console  (operator console)" in out
    assert f"{url}/api/messages/m-1" in out
    assert f"{url}/api/messages?blob=c/a.xml" in out
    assert f"{url}/api/health" in out


def _run_local(args: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devtools.run_local", *args],
        cwd=run_local.REPO_ROOT,
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_run_local_refuses_a_busy_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = _run_local(["--port", str(port), "--exit-when-done"], {})
    assert result.returncode == 2
    assert f"port(s) {port} (local Functions host) already in use" in result.stderr


# By default the uploads reach the host as Event Grid events at its blob webhook; --poll-blobs
# is the fallback that lists the container instead.
@pytest.mark.parametrize("delivery", ["event-grid", "--poll-blobs"])
def test_run_local_uploads_samples_and_follows_them_until_the_timeout(
    tmp_path: Path, delivery: str
) -> None:
    samples = tmp_path / "samples"
    (samples / "customers" / "USMF").mkdir(parents=True)
    (samples / "customers" / "USMF" / "c.xml").write_bytes(b"<Document/>")
    storage = connection_string(free_port(), free_port(), free_port())
    d365 = f"https://127.0.0.1:{free_port()}"
    environ = {
        "IntegrationStorage": storage,
        "AzureWebJobsStorage": storage,
        "D365_BASE_URL": d365,
        "D365_AUTHORITY_HOST": d365,
    }
    options = ["--port", "0", "--azurite-location", str(tmp_path / "azurite")]
    options += ["--samples", str(samples), "--state-seconds", "10"]
    options += ["--log-dir", str(tmp_path / "logs")]
    options += [delivery] if delivery.startswith("--") else []
    result = _run_local([*options, "--exit-when-done", "--timeout", "4"], environ)

    assert result.returncode == 1, result.stderr[-2000:]
    out = result.stdout
    (log_file,) = (tmp_path / "logs").glob("run-*.log")
    assert out.startswith(f"full log: {log_file}\n")
    assert f"D365 emulator: {d365} (jobs: 4)" in out
    assert re.search(r"uploaded d365-inbound/customers/USMF/c-\d{14}\.xml \(11 bytes\)", out)
    assert re.search(r"unrouted/readme-\d{14}\.txt: Rejected reject_reason=", out)
    assert "timed out after 4 s" in out
    # The console keeps to the states; every invocation and the host's life are in the file.
    assert "invocation function=" not in result.stderr
    log = log_file.read_text(encoding="utf-8")
    assert re.search(r"INFO \S+ devtools\.local_host\.\w+ invocation function=enqueue_blob", log)
    assert "local host stopped" in log
    assert "timed out after 4 s" in log
    assert EXAMPLE_SECRET not in log
    delivered = re.search(
        r"event grid delivery subscription=enqueue-blob events=1 attempt=1 status=202 "
        r"subjects=/blobServices/default/containers/d365-inbound/blobs/customers/USMF/"
        r"c-\d{14}\.xml",
        log,
    )
    if delivery == "event-grid":
        assert "blob events: Event Grid (local) posts BlobCreated of d365-inbound/" in out
        assert delivered
        assert "event grid subscription validated name=enqueue-blob" in log
        assert "blob event queued function=Host.Functions.enqueue_blob" in log
    else:
        assert "the host polls the containers (--poll-blobs fallback)" in out
        assert not delivered
        assert "blob_polling=d365-inbound" in log


def test_the_console_shows_warnings_as_one_line_and_the_file_keeps_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    log = logging.getLogger("tests.run_local")
    try:
        started = datetime(2026, 1, 2, 3, 4, 5)
        path = run_local.configure_logging(tmp_path, console_level="WARNING", started=started)
        log.info("an invocation")
        try:
            raise RuntimeError("the detail")
        except RuntimeError:
            log.exception("blob failed blob=a.xml")
    finally:
        added = [h for h in root.handlers if h not in saved[1]]
        for handler in added:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(saved[0])

    assert path == tmp_path / "run-20260102-030405.log"
    console = capsys.readouterr().err.splitlines()
    assert [line[8:] for line in console] == [
        f"  ERROR tests.run_local: blob failed blob=a.xml [RuntimeError; traceback in {path}]"
    ]
    text = path.read_text(encoding="utf-8")
    assert "INFO MainThread tests.run_local an invocation" in text
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: the detail" in text


def test_an_unwritable_log_directory_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(run_local.LocalRunError, match=r"cannot write the log file .*file/logs/"):
        run_local.configure_logging(
            blocker / "logs", console_level="WARNING", started=datetime(2026, 1, 1)
        )
