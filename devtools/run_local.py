"""`make run`: the whole app on this machine, with sample files flowing through it.

1. Loads ``local.settings.json`` (or ``local.settings.example.json``) ``Values`` into the
   environment without overriding variables already set, so
   ``D365_BASE_URL=https://contoso.operations.dynamics.com make run`` runs against a real
   environment.
2. Starts Azurite where ``IntegrationStorage`` points (``UseDevelopmentStorage=true``: the
   default ports 10000-10002), keeping its data in ``.local/azurite``.
3. Starts the D365 emulator (TLS) on the port of ``D365_BASE_URL`` when that is a loopback
   URL, with a job per route of ``D365_ROUTES`` and the app of ``D365_CLIENT_ID`` /
   ``D365_CLIENT_SECRET``; trusts its CA in this process.
4. Creates the inbound container (``INBOUND_CONTAINER``), starts the local Functions host
   (``devtools.local_host``) on 127.0.0.1:7071 and, as Azure's Event Grid subscription does,
   a publisher (``devtools.event_grid``) that posts a ``Microsoft.Storage.BlobCreated`` event
   for each blob written to that container to the host's blob webhook
   (``/runtime/webhooks/blobs?functionName=Host.Functions.enqueue_blob``). ``--poll-blobs`` is
   the fallback: no events, the host lists the container itself. Then it uploads the files of
   ``samples/`` under their relative paths (plus one file no route matches) with a suffix
   unique to the run, and prints each file's state changes, read from the app's own HTTP API,
   until all are terminal.
5. Keeps serving until Ctrl-C, or exits with ``--exit-when-done`` (non-zero on ``--timeout``).

With ``--services-only`` it stops after steps 1-3 and the container: no local host, no
samples. It writes a CA bundle (the public CAs plus the emulator's) to ``--ca-bundle``, prints
the command that runs the app under Azure Functions Core Tools against these services
(``REQUESTS_CA_BUNDLE=<bundle> SSL_CERT_FILE=<bundle> func start``) and serves until Ctrl-C.

The console shows this command's own lines and the warnings and errors of everything else, one
line each; the full log (every level, tracebacks included) goes to ``.local/logs/run-*.log``,
whose path is printed first.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import Mapping, MutableMapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, TextIO
from urllib.parse import quote, urlsplit

import certifi
import requests
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContainerClient

from devtools.azurite import Azurite
from devtools.event_grid import EventGridError, EventGridPublisher, Subscription, container_subject
from devtools.lifecycle import wait_for_signals
from devtools.local_host import IDENTITIES, EasyAuth, LocalHost
from devtools.storage_options import STORAGE_OPTIONS
from shared.config import HttpAuthMode, Settings, SettingsError
from shared.tracking import TrackingState

if TYPE_CHECKING:
    from devtools.d365_emulator import Emulator

# Named, not __name__: under `python -m` that is "__main__", which says nothing in the log file.
_LOGGER = logging.getLogger("devtools.run_local")

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPO_ROOT / "samples"
SETTINGS_FILES = ("local.settings.json", "local.settings.example.json")
DEVELOPMENT_STORAGE_PORTS = (10000, 10001, 10002)
REJECTED_SAMPLE = "unrouted/readme.txt"
LOG_DIR = REPO_ROOT / ".local" / "logs"
# A fixed path, so `func start` and .vscode/tasks.json can name it before the services start.
CA_BUNDLE = REPO_ROOT / ".local" / "d365-ca-bundle.pem"
SERVICES_READY = "services ready"
# Names the host's blob trigger queue: a run started again takes what the last one left, as a
# restarted app does in Azure.
HOST_ID = "make-run"
_REQUEST_TIMEOUT = (5.0, 30.0)
_FILE_FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(name)s %(message)s"


def _say(text: str, *, stream: TextIO | None = None) -> None:
    # The command's own output for a person; the log file gets it too, to read it in order.
    out = stream or sys.stdout
    out.write(text + "\n")
    out.flush()
    _LOGGER.info("%s", text.strip("\n"))


class _ConsoleFormatter(logging.Formatter):
    """One line per record; a traceback stays in the log file, which the line names."""

    def __init__(self, log_file: Path) -> None:
        super().__init__()
        self._log_file = log_file

    def format(self, record: logging.LogRecord) -> str:
        when = self.formatTime(record, "%H:%M:%S")
        line = f"{when}  {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            line += f" [{type(record.exc_info[1]).__name__}; traceback in {self._log_file}]"
        return line


def configure_logging(log_dir: Path, *, console_level: str, started: datetime) -> Path:
    """Send every record to a new file in ``log_dir``, and ``console_level`` and up to stderr.

    :returns: the log file, ``run-<started>.log``.
    :raises LocalRunError: the directory cannot be created or written.
    """
    path = log_dir / f"run-{started.strftime('%Y%m%d-%H%M%S')}.log"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as error:
        raise LocalRunError(f"cannot write the log file {path}: {error.strerror}") from None
    file_handler.setFormatter(logging.Formatter(_FILE_FORMAT))
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level.upper())
    console.setFormatter(_ConsoleFormatter(path))
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    root.addHandler(file_handler)
    root.addHandler(console)
    # urllib3's DEBUG lines carry whole URLs, query strings included: a SAS token would land in
    # the file. The Azure SDK's own request log redacts them, so it stays.
    logging.getLogger("urllib3").setLevel(logging.INFO)
    return path


class LocalRunError(RuntimeError):
    """Something on this machine stops the local run; the text says what to do."""


def load_local_settings(
    root: Path = REPO_ROOT, environ: MutableMapping[str, str] = os.environ
) -> Path:
    """Copy the ``Values`` of the local settings file into ``environ``; set variables win.

    :returns: the file read (``local.settings.json`` when present, else the example).
    :raises LocalRunError: neither file exists.
    """
    for name in SETTINGS_FILES:
        path = root / name
        if path.is_file():
            values: Mapping[str, Any] = json.loads(path.read_text(encoding="utf-8"))["Values"]
            for key, value in values.items():
                environ.setdefault(key, str(value))
            return path
    raise LocalRunError(f"no {' or '.join(SETTINGS_FILES)} in {root}")


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this machine (localhost or a loopback address)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_storage_ports(connection_string: str) -> tuple[int, int, int] | None:
    """The blob, queue and table ports of an Azurite connection string; None for a real account."""
    parts = dict(part.split("=", 1) for part in connection_string.strip().split(";") if "=" in part)
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        return DEVELOPMENT_STORAGE_PORTS
    endpoints = [parts.get(f"{kind}Endpoint", "") for kind in ("Blob", "Queue", "Table")]
    if not all(endpoints) or not all(is_loopback_url(e) for e in endpoints):
        return None
    blob, queue, table = (urlsplit(e).port or 80 for e in endpoints)
    return blob, queue, table


def check_ports_free(ports: Mapping[int, str]) -> None:
    """Fail early, naming every port of ``ports`` (port -> what needs it) already in use.

    :raises LocalRunError: with the ports and how to free them.
    """
    taken = []
    for port, purpose in ports.items():
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                taken.append(f"{port} ({purpose})")
    if taken:
        numbers = " ".join(f"{entry.split()[0]}/tcp" for entry in taken)
        raise LocalRunError(
            f"port(s) {', '.join(taken)} already in use on 127.0.0.1: probably another "
            "`make run`, Azurite or `func start`. Stop it (find it with `ss -ltnp` or "
            f"`lsof -i :PORT`; `fuser -k {numbers}` ends it), then run again."
        )


@dataclass(frozen=True)
class Upload:
    """One file the demo puts into the inbound container."""

    blob_path: str
    data: bytes


def sample_uploads(samples_dir: Path, run_id: str | None) -> list[Upload]:
    """The sample files (not their docs) under their relative paths, plus one unroutable file.

    ``run_id`` goes before each extension, so every run uploads new blobs; None keeps the
    names as they are (an empty storage account, as ``devtools.screenshot`` starts).
    """
    files = sorted(p for p in samples_dir.rglob("*") if p.is_file() and p.suffix.lower() != ".md")
    uploads = [
        Upload(_with_run_id(p.relative_to(samples_dir).as_posix(), run_id), p.read_bytes())
        for p in files
    ]
    rejected = b"No route matches this folder: the app rejects the file and keeps it here.\n"
    uploads.append(Upload(_with_run_id(REJECTED_SAMPLE, run_id), rejected))
    return uploads


def _with_run_id(blob_path: str, run_id: str | None) -> str:
    if run_id is None:
        return blob_path
    path = PurePosixPath(blob_path)
    return str(path.with_name(f"{path.stem}-{run_id}{path.suffix}"))


@dataclass(frozen=True)
class FileStatus:
    """What the app's HTTP API says about one uploaded file."""

    blob_path: str
    state: str | None  # None: not tracked yet
    record: Mapping[str, Any]

    @property
    def is_terminal(self) -> bool:
        """Whether the file reached a final state."""
        try:
            return self.state is not None and TrackingState.parse(self.state).is_terminal
        except ValueError:  # a state this tool does not know yet: keep following it
            return False

    def describe(self) -> str:
        """One line: path, state and the ids or reason that go with it."""
        extra = [
            f"{key}={self.record[key]}"
            for key in ("message_id", "execution_id", "d365_status", "error_count", "reject_reason")
            if self.record.get(key) not in (None, "", 0)
        ]
        return " ".join([f"{self.blob_path}: {self.state or 'not tracked yet'}", *extra])


class StatusClient:
    """Reads file states from the app's own HTTP API (``GET /api/messages?blob=``)."""

    def __init__(
        self, base_url: str, *, function_key: str | None = None, token: str | None = None
    ) -> None:
        self.base_url = base_url
        self._session = requests.Session()
        if function_key:
            self._session.headers["x-functions-key"] = function_key
        if token:  # HTTP_AUTH=entra: a program's bearer token
            self._session.headers["Authorization"] = f"Bearer {token}"

    def get(self, blob_path: str) -> FileStatus:
        """The latest record of ``blob_path``; a 404 means not tracked yet."""
        response = self._session.get(
            f"{self.base_url}/api/messages",
            params={"blob": blob_path},
            timeout=_REQUEST_TIMEOUT,
        )
        if response.status_code == 404:
            return FileStatus(blob_path, None, {})
        response.raise_for_status()
        record = response.json()
        return FileStatus(blob_path, record.get("state"), record)

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()


def follow(
    client: StatusClient, blob_paths: Sequence[str], *, timeout: float, interval: float = 1.0
) -> dict[str, FileStatus]:
    """Print each state change of ``blob_paths`` until all are terminal or ``timeout`` passes.

    :returns: the last status of every path.
    """
    latest = {path: FileStatus(path, None, {}) for path in blob_paths}
    deadline = time.monotonic() + timeout
    while True:
        for path in blob_paths:
            if latest[path].is_terminal:
                continue
            status = client.get(path)
            if status.state != latest[path].state:
                _say(f"{datetime.now().strftime('%H:%M:%S')}  {status.describe()}")
            latest[path] = status
        if all(s.is_terminal for s in latest.values()) or time.monotonic() > deadline:
            return latest
        time.sleep(interval)


def print_summary(
    statuses: Mapping[str, FileStatus], base_url: str, *, keyed: bool = False
) -> None:
    """The errors of files F&O processed with errors (and a package import's error files),
    and where to look next."""
    for status in statuses.values():
        errors = status.record.get("errors") or []
        if status.state == TrackingState.PROCESSED_WITH_ERRORS.value or errors:
            _say(f"\n{status.blob_path}: {status.record.get('error_count')} error(s)")
            for error in errors:
                where = f"record {error.get('record_id')} {error.get('field')}"
                _say(f"  {where}: {error.get('message')}")
        error_files = status.record.get("error_files") or []
        if error_files:
            _say(f"\n{status.blob_path}: F&O's error files (package import):")
            for location in error_files:
                _say(f"  {location}")
        if status.record.get("reject_reason"):
            reason = status.record.get("last_error") or status.record["reject_reason"]
            _say(f"\n{status.blob_path}: rejected: {reason}")
    _say("\nStatus API:")
    for status in statuses.values():
        if status.record.get("message_id"):
            _say(f"  {base_url}/api/messages/{status.record['message_id']}")
        _say(f"  {base_url}/api/messages?blob={quote(status.blob_path)}")
    _say(f"  {base_url}/api/health")
    # The console takes the key as ?code= (as Azure does); the key itself is not printed.
    _say(f"  {base_url}/api/console{'?code=<function key>' if keyed else ''}  (operator console)")


def _start_azurite(stack: ExitStack, connection_string: str, location: Path) -> None:
    ports = local_storage_ports(connection_string)
    if ports is None:
        _LOGGER.info("IntegrationStorage is not local: Azurite not started")
        return
    check_ports_free(
        dict(zip(ports, ("Azurite blob", "Azurite queue", "Azurite table"), strict=True))
    )
    location.mkdir(parents=True, exist_ok=True)
    blob, queue, table = ports
    stack.enter_context(Azurite(location, blob_port=blob, queue_port=queue, table_port=table))


def write_trust_bundle(emulator_ca: Path, path: Path) -> None:
    """Write the CAs this process trusts plus ``emulator_ca`` to ``path``.

    ``func start`` gets it through ``REQUESTS_CA_BUNDLE`` and ``SSL_CERT_FILE``, which replace
    the trust store of the worker and of the host (which downloads its extension bundle), so
    the public CAs must stay in it.

    :raises LocalRunError: the file cannot be written.
    """
    current = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    # A bundle this command wrote before holds an old emulator CA: start from certifi's.
    public = Path(certifi.where())
    if current and Path(current).is_file() and Path(current).resolve() != path.resolve():
        public = Path(current)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            public.read_text(encoding="utf-8") + "\n" + emulator_ca.read_text(encoding="ascii"),
            encoding="utf-8",
        )
    except OSError as error:
        raise LocalRunError(f"cannot write the CA bundle {path}: {error.strerror}") from None


def trust_emulator(emulator: Emulator, bundle: Path) -> None:
    """Make this process (and the app it runs) trust a started emulator serving TLS: its CA
    goes into ``bundle`` (:func:`write_trust_bundle`), which ``REQUESTS_CA_BUNDLE`` and
    ``SSL_CERT_FILE`` then name. Nothing for an emulator on plain HTTP.

    :raises LocalRunError: the bundle cannot be written.
    """
    if emulator.ca_bundle:
        write_trust_bundle(Path(emulator.ca_bundle), bundle)
        os.environ["REQUESTS_CA_BUNDLE"] = os.environ["SSL_CERT_FILE"] = str(bundle)


def emulator_for(settings: Settings, *, state_seconds: float) -> Emulator:
    """The D365 emulator ``settings`` talk to, not started: on the host and port of
    ``D365_BASE_URL``, a job per import route and per export route, the app of
    ``D365_CLIENT_ID`` / ``D365_CLIENT_SECRET``, each message ``state_seconds`` in every
    non-terminal state."""
    from devtools.d365_emulator import App, Emulator, Job, Knobs

    d365 = settings.d365
    client_ids = (d365.client_id,) if d365.client_id else ()
    return Emulator(
        jobs=[
            Job(
                activity_id=route.activity_id,
                entity=route.entity or "",
                name=route.name,
                allowed_client_ids=client_ids,
                enabled=route.enabled,
            )
            for route in settings.routes
        ]
        + [
            Job(
                activity_id=route.activity_id,
                entity="CustomersV3",
                name=route.name,
                allowed_client_ids=client_ids,
            )
            for route in settings.exports
        ],
        apps=[App(client_id=d365.client_id or "", client_secret=d365.client_secret)],
        tenant_id=d365.tenant_id or "faketenant",
        tls=urlsplit(d365.base_url).scheme == "https",
        host="127.0.0.1",
        port=urlsplit(d365.base_url).port or 443,
        knobs=Knobs(
            enqueued_seconds=state_seconds,
            preprocessing_seconds=state_seconds,
            processing_seconds=state_seconds,
        ),
    )


def _start_emulator(
    stack: ExitStack, settings: Settings, state_seconds: float, ca_bundle: Path
) -> None:
    d365 = settings.d365
    check_ports_free({urlsplit(d365.base_url).port or 443: "D365 emulator"})
    emulator = emulator_for(settings, state_seconds=state_seconds)
    stack.enter_context(emulator)
    trust_emulator(emulator, ca_bundle)
    if d365.authority_host.rstrip("/") != emulator.authority_host.rstrip("/"):
        _LOGGER.warning(
            "D365_AUTHORITY_HOST=%s is not the emulator (%s): tokens will not come from it",
            d365.authority_host,
            emulator.authority_host,
        )
    _say(f"D365 emulator: {emulator.base_url} (jobs: {len(emulator.jobs)})")
    for route in settings.exports:
        # One export waiting on each export job, so the demo shows one land in its container.
        kind = "package" if route.unzip else route.extension.lstrip(".")
        message_id = emulator.add_customers_export(
            route.activity_id, file_format=kind if kind in ("xml", "csv") else "package"
        )
        _say(f"  export {message_id} queued for {route.name} -> {route.container}/{route.prefix}")


def _create_container(connection_string: str, name: str) -> None:
    with (
        BlobServiceClient.from_connection_string(connection_string) as service,
        contextlib.suppress(ResourceExistsError),
    ):
        service.create_container(name)


def _upload(connection_string: str, container: str, uploads: Sequence[Upload]) -> None:
    with BlobServiceClient.from_connection_string(connection_string) as service:
        for upload in uploads:
            service.get_blob_client(container, upload.blob_path).upload_blob(upload.data)
            _say(f"uploaded {container}/{upload.blob_path} ({len(upload.data)} bytes)")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.run_local", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=7071, help="HTTP port of the host (0: any)")
    parser.add_argument(
        "--timer-interval",
        type=float,
        default=3.0,
        help="seconds between poll_status runs; 0 follows POLL_SCHEDULE (default 3)",
    )
    parser.add_argument(
        "--state-seconds",
        type=float,
        default=3.0,
        help="seconds the emulator keeps a message in each non-terminal state (default 3)",
    )
    parser.add_argument(
        "--function-key",
        help="enforce this key on /api and on the blob webhook (one key for all), as Azure does",
    )
    parser.add_argument(
        "--poll-blobs",
        action="store_true",
        help="fallback: the host lists the inbound container instead of receiving Event Grid "
        "events at its blob webhook",
    )
    parser.add_argument("--azurite-location", type=Path, default=REPO_ROOT / ".local" / "azurite")
    parser.add_argument("--samples", type=Path, default=SAMPLES_DIR)
    parser.add_argument("--no-samples", action="store_true", help="upload nothing; just serve")
    parser.add_argument(
        "--services-only",
        action="store_true",
        help="start Azurite and the emulator only, and print how to run `func start` on them",
    )
    parser.add_argument(
        "--ca-bundle",
        type=Path,
        default=CA_BUNDLE,
        help="file for the public CAs plus the emulator's (default .local/d365-ca-bundle.pem)",
    )
    parser.add_argument("--exit-when-done", action="store_true", help="exit once all are terminal")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait (default 300)"
    )
    parser.add_argument(
        "--console-level",
        default="WARNING",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        type=str.upper,
        help="log records shown on the console besides the file states (default WARNING)",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=LOG_DIR,
        help="where the full log of the run goes (default .local/logs)",
    )
    return parser.parse_args(argv)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    """Start everything, run the demo, and serve; returns the exit code."""
    settings_file = load_local_settings()
    _say(f"settings: {settings_file.name}")
    settings = Settings.from_env()
    connection_string = settings.storage.connection_string
    if not connection_string:
        raise LocalRunError("make run needs a connection string in IntegrationStorage")
    if args.port and not args.services_only:
        check_ports_free({args.port: "local Functions host"})
    with ExitStack() as stack:
        _start_azurite(stack, connection_string, args.azurite_location)
        emulated = is_loopback_url(settings.d365.base_url)
        if emulated:
            _start_emulator(stack, settings, args.state_seconds, args.ca_bundle)
        else:
            _say(f"F&O environment: {settings.d365.base_url} (no emulator)")
        _create_container(connection_string, settings.inbound_container)
        if args.services_only:
            _print_func_recipe(settings_file, args.ca_bundle if emulated else None)
        else:
            easy_auth = EasyAuth() if settings.http_auth is HttpAuthMode.ENTRA else None
            host = stack.enter_context(_local_host(args, connection_string, easy_auth))
            _say(f"local Functions host: {host.http_url} ({', '.join(host.function_names)})")
            if easy_auth is not None:
                people = ", ".join(
                    f"{i.name} ({', '.join(i.roles) or 'no role'})"
                    for i in IDENTITIES
                    if not i.application
                )
                _say(
                    f"sign-in: HTTP_AUTH=entra, App Service authentication played locally: {people}"
                )
            if args.poll_blobs:
                _say("blob events: none; the host polls the containers (--poll-blobs fallback)")
            else:
                _start_event_grid(stack, host, connection_string)
            if not args.no_samples:
                done = _demo(args, connection_string, settings.inbound_container, host)
                if args.exit_when_done:
                    return 0 if done else 1
            _say("\nserving; Ctrl-C stops everything")
        status = wait_for_signals(signal.SIGTERM, signal.SIGINT)
    _say("stopped")
    return status


def func_start_command(ca_bundle: Path | None) -> str:
    """The shell command that runs the app under Core Tools, trusting ``ca_bundle`` if any."""
    if ca_bundle is None:
        return "func start"
    path = shlex.quote(str(ca_bundle))
    return f"REQUESTS_CA_BUNDLE={path} SSL_CERT_FILE={path} func start"


def _print_func_recipe(settings_file: Path, ca_bundle: Path | None) -> None:
    """How to run ``func start`` against the services this command started."""
    if ca_bundle is not None:
        _say(f"CA bundle (public CAs + the emulator's): {ca_bundle}")
    _say(f"\n{SERVICES_READY}; in another shell, from {REPO_ROOT}:")
    if settings_file.name != SETTINGS_FILES[0]:
        # func start reads only local.settings.json.
        _say(f"  cp {settings_file.name} {SETTINGS_FILES[0]}")
    _say(f"  {func_start_command(ca_bundle)}")
    overridden = sorted(_overridden_settings(settings_file))
    if overridden:
        _say(
            f"  (this shell sets {', '.join(overridden)} over {settings_file.name}: "
            "export the same values before func start)"
        )
    _say("Ctrl-C stops the services")


def _overridden_settings(settings_file: Path) -> list[str]:
    """Names of ``Values`` whose environment value differs from the file's (values unsaid)."""
    values = json.loads(settings_file.read_text(encoding="utf-8"))["Values"]
    return [key for key, value in values.items() if os.environ.get(key) != str(value)]


def _local_host(
    args: argparse.Namespace, connection_string: str, easy_auth: EasyAuth | None
) -> LocalHost:
    from function_app import app

    try:
        return LocalHost(
            app,
            storage_connection_string=connection_string,
            http_port=args.port,
            host_id=HOST_ID,
            poll_blobs=args.poll_blobs,
            timer_interval=args.timer_interval or None,
            function_key=args.function_key,
            easy_auth=easy_auth,
        )
    except ValueError as error:  # a missing %SETTING%, a bad schedule, an unknown binding
        raise LocalRunError(f"the local Functions host cannot run the app: {error}") from None


def _start_event_grid(stack: ExitStack, host: LocalHost, connection_string: str) -> None:
    """One Event Grid subscription per blob function, as ``infra/app/eventsubscription.bicep``
    makes for ``enqueue_blob``: BlobCreated of its container, to its webhook."""
    for function in host.blob_functions:
        subscription = Subscription(
            name=function.name.replace("_", "-"),
            endpoint=host.webhook_url(function.name),
            subject_begins_with=container_subject(function.container),
        )
        container = ContainerClient.from_connection_string(
            connection_string, function.container, **STORAGE_OPTIONS
        )
        stack.callback(container.close)
        try:
            stack.enter_context(EventGridPublisher(container, subscription))
        except EventGridError as error:
            raise LocalRunError(f"the local Event Grid subscription failed: {error}") from None
        _say(
            f"blob events: Event Grid (local) posts BlobCreated of {function.container}/ to "
            f"{host.http_url}/runtime/webhooks/blobs?functionName=Host.Functions.{function.name}"
        )


def _demo(
    args: argparse.Namespace, connection_string: str, container: str, host: LocalHost
) -> bool:
    """Upload the samples and follow them; True when all reached a final state in time."""
    uploads = sample_uploads(args.samples, datetime.now(UTC).strftime("%Y%m%d%H%M%S"))
    _upload(connection_string, container, uploads)
    url = host.http_url
    # HTTP_AUTH=entra: the demo reads the API as a program with the operator role would.
    token = host.easy_auth.token("logic-app") if host.easy_auth else None
    status_client = StatusClient(url, function_key=args.function_key, token=token)
    try:
        statuses = follow(status_client, [u.blob_path for u in uploads], timeout=args.timeout)
    finally:
        status_client.close()
    print_summary(statuses, url, keyed=bool(args.function_key))
    done = all(s.is_terminal for s in statuses.values())
    if not done:
        _say(f"\ntimed out after {args.timeout:.0f} s")
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """The `make run` command line."""
    args = _parse_args(argv)
    try:
        log_file = configure_logging(
            args.log_dir, console_level=args.console_level, started=datetime.now()
        )
    except LocalRunError as error:
        _say(str(error), stream=sys.stderr)
        return 2
    _say(f"full log: {log_file}")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # A shell starting us in the background ignores SIGINT; Ctrl-C should still stop us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run(args)
    except KeyboardInterrupt:
        _say("stopped")
        return 130
    except SettingsError as error:
        _say(f"the local settings are not valid:\n{error}", stream=sys.stderr)
    except LocalRunError as error:
        _say(str(error), stream=sys.stderr)
    except Exception:
        # Anything else is a bug: one line on the console, the traceback in the file.
        _LOGGER.exception("make run stopped on an unexpected error")
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
