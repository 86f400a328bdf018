"""F&O budget benchmark (issue 22): several host processes enqueue and poll files against
the emulator's user-based limits, with the shared budget and without it, in the same run.

Setup, all on loopback: Azurite; the D365 emulator in this process (HTTPS), enforcing F&O's
user-based service protection limits scaled down (``--fno-concurrency`` requests at once,
``--fno-requests`` per ``--fno-window`` seconds, a Retry-After that doubles up to
``--retry-after-max`` while the app keeps calling before it has passed); ``--hosts`` app
processes (``devtools.host_process``), each fed its own share of the uploads by a local Event
Grid subscription (``devtools.event_grid``), all on one status table. Their table endpoint
goes through the fault proxy (``devtools.fault_proxy``, no faults) only to count the budget's
own table requests.

Each phase uploads ``--files`` small CustomersV3 files at once, spread over the hosts, and
waits until every record is final. Phase ``budget``: ``D365_BUDGET=shared`` with
``D365_MAX_CONCURRENCY`` / ``D365_MAX_REQUESTS_PER_5MIN`` below the emulator's limits
(``--app-concurrency``, and 70 % of the emulator's rate scaled to 5 minutes); phase
``off``: ``D365_BUDGET=off``.

Per phase: F&O calls, 429s (and per 100 F&O calls), total time, the largest concurrency
the emulator saw (pushed: refused requests included; and admitted), and the budget's table
requests per F&O call. Targets: at most one 429 per 100 F&O calls with the budget, and not
slower than without it.

Usage: ``python bench/fo_budget.py [--files 120] [--hosts 6] [--fno-concurrency 8]
[--fno-requests 600] [--fno-window 30] [--app-concurrency 6] [--latency-ms 40] [--no-growth]
[--off-timeout 0]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from azure.core.exceptions import ResourceNotFoundError  # noqa: E402
from azure.data.tables import TableServiceClient  # noqa: E402
from azure.storage.blob import BlobServiceClient, ContainerClient  # noqa: E402

from devtools.azurite import Azurite, connection_string, free_port  # noqa: E402
from devtools.d365_emulator import OPERATIONS, App, Emulator, Job, Knobs  # noqa: E402
from devtools.event_grid import EventGridPublisher, Subscription, blob_subject  # noqa: E402
from devtools.fault_proxy import Exchange, FaultProxy, StorageService  # noqa: E402
from devtools.local_host import function_id  # noqa: E402
from shared.tracking import BUDGET_PARTITION, TrackingState  # noqa: E402

TENANT_ID = "faketenant"
CLIENT_ID = "00000000-0000-0000-0000-0000000000c1"
CLIENT_SECRET = "fake-secret-not-real"  # noqa: S105 - the emulator's fake app
CUSTOMERS_ID = "00000000-0000-0000-0000-00000000a001"
INBOUND = "d365-inbound"
SAMPLE = ROOT / "samples" / "customers" / "USMF" / "customers-valid.xml"
_FINAL = frozenset(state.value for state in TrackingState if state.is_terminal)
_HOST_START_SECONDS = 120.0


def _say(text: str) -> None:
    print(text, flush=True)


@dataclass(frozen=True)
class BudgetOptions:
    """One run's load and limits."""

    files: int = 120
    hosts: int = 6
    fno_concurrency: int = 8
    fno_requests: int = 600
    fno_window: float = 30.0
    retry_after_max: int = 5
    no_growth: bool = False
    """F&O's Retry-After does not grow (only the limits refuse): the phase without the budget
    can finish, and the two times compare."""
    app_concurrency: int = 6
    latency_ms: int = 40
    timeout: float = 900.0
    off_timeout: float = 0.0
    """How long the phase without the budget may take; 0: twice the budget's phase, at
    least 60 s (without the budget F&O's growing Retry-After may never let it finish)."""

    @property
    def app_requests_per_5min(self) -> int:
        """70 % of the emulator's rate scaled to F&O's 5-minute window (the bucket's 10 s burst
        on top stays under the emulator's window)."""
        return int(0.7 * self.fno_requests * 300 / self.fno_window)


@dataclass(frozen=True)
class PhaseReport:
    """What one phase measured."""

    name: str
    files: int
    final: int
    seconds: float
    fno_calls: int
    throttled: int
    max_pushed: int
    max_admitted: int
    budget_table_calls: int

    def line(self) -> str:
        """The phase in one line."""
        per_100 = 100 * self.throttled / max(1, self.fno_calls)
        table = self.budget_table_calls / max(1, self.fno_calls)
        return (
            f"{self.name:<7} files {self.final}/{self.files} final in {self.seconds:7.1f} s | "
            f"F&O calls {self.fno_calls:6d} | 429s {self.throttled:5d} ({per_100:5.2f} per 100) | "
            f"most at once {self.max_pushed:3d} pushed, {self.max_admitted:3d} admitted | "
            f"budget table calls {self.budget_table_calls:5d} ({table:.3f} per F&O call)"
        )


class _BudgetRequests:
    """Counts the table requests of the budget's partition that pass the proxy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def __call__(self, exchange: Exchange) -> None:
        text = unquote(exchange.target) + exchange.request_body.decode("utf-8", "replace")
        if f"'{BUDGET_PARTITION}'" in text or f'"{BUDGET_PARTITION}"' in text:
            with self._lock:
                self.count += 1


def _settings(options: BudgetOptions, emulator: Emulator, phase: str, budget: bool) -> dict:
    route = {
        "name": "customers",
        "prefix": f"{phase}/",
        "activity_id": CUSTOMERS_ID,
        "entity": "CustomersV3",
        "company": "USMF",
        "extensions": [".xml"],
    }
    return {
        "D365_BASE_URL": emulator.base_url,
        "D365_AUTHORITY_HOST": emulator.authority_host,
        "D365_TENANT_ID": TENANT_ID,
        "D365_CLIENT_ID": CLIENT_ID,
        "D365_CLIENT_SECRET": CLIENT_SECRET,
        "D365_ROUTES": json.dumps([route]),
        "D365_HTTP_TIMEOUT": "30s",
        "D365_BUDGET": "shared" if budget else "off",
        "D365_MAX_CONCURRENCY": str(options.app_concurrency),
        "D365_MAX_REQUESTS_PER_5MIN": str(options.app_requests_per_5min),
        "INBOUND_CONTAINER": INBOUND,
        "STATUS_TABLE": f"fob{phase}",
        "ARCHIVE_CONTAINER": f"fob-{phase}-archive",
        "ERRORS_CONTAINER": f"fob-{phase}-errors",
        "POLL_SCHEDULE": "*/2 * * * * *",
        "EXPORT_SCHEDULE": "0 0 0 1 1 *",
        "POLL_TICK_BUDGET": "20s",
        "POLL_INTERVAL_MIN": "1s",
        "POLL_INTERVAL_MAX": "2s",
        "MAX_PENDING_AGE": "1h",
        "CLAIM_LEASE": "2m",
    }


@contextmanager
def _hosts(count: int, env: dict[str, str], work: Path) -> Iterator[list[str]]:
    """``count`` host processes; yields their base URLs, stops them after."""
    processes: list[tuple[subprocess.Popen[bytes], Path, int]] = []
    try:
        for index in range(count):
            port = free_port()
            log = work / f"host-{index}.log"
            command = [
                sys.executable, "-m", "devtools.host_process", "--http-port", str(port),
                "--timer-interval", "2", "--max-parallel", "4", "--log-level", "WARNING",
            ]  # fmt: skip
            with log.open("wb") as handle:
                process = subprocess.Popen(
                    command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
                )
            processes.append((process, log, port))
        deadline = time.monotonic() + _HOST_START_SECONDS
        for process, log, _ in processes:
            while b"ready http=" not in log.read_bytes():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"a host did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
        yield [f"http://127.0.0.1:{port}" for _, _, port in processes]
    finally:
        for process, _, _ in processes:
            process.terminate()
        for process, _, _ in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _final_count(tables: TableServiceClient, table: str) -> int:
    rows = tables.get_table_client(table).query_entities(
        "PartitionKey eq 'files' and RowKey lt '~'", select=["state"]
    )
    try:
        return sum(1 for row in rows if row.get("state") in _FINAL)
    except ResourceNotFoundError:  # no host has built its context yet
        return 0


@dataclass(frozen=True)
class _Services:
    """What both phases share."""

    options: BudgetOptions
    emulator: Emulator
    azurite: Azurite
    counter: _BudgetRequests
    host_storage: str
    """The hosts' storage: Azurite, its table endpoint through the counting proxy."""
    work: Path


def _phase(name: str, budget: bool, services: _Services, timeout: float) -> PhaseReport:
    options, emulator, azurite = services.options, services.emulator, services.azurite
    counter, host_storage, work = services.counter, services.host_storage, services.work
    phase = f"{name}{uuid.uuid4().hex[:6]}"
    env = {**os.environ, **_settings(options, emulator, phase, budget)}
    env["IntegrationStorage"] = env["AzureWebJobsStorage"] = host_storage
    env["REQUESTS_CA_BUNDLE"] = env["SSL_CERT_FILE"] = emulator.ca_bundle or ""
    env["PYTHONPATH"] = str(ROOT)
    inbound = BlobServiceClient.from_connection_string(
        azurite.connection_string
    ).get_container_client(INBOUND)
    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    data = SAMPLE.read_bytes()
    phase_dir = work / phase
    phase_dir.mkdir()
    with ExitStack() as stack:
        urls = stack.enter_context(_hosts(options.hosts, env, phase_dir))
        for index, url in enumerate(urls):
            stack.enter_context(_publisher(inbound, url, f"{phase}/h{index}-"))
        _prepare(emulator, options)
        counter.count = 0
        began = time.monotonic()
        _upload(inbound, phase, options, data)
        final = 0
        while time.monotonic() - began < timeout:
            final = _final_count(tables, f"fob{phase}")
            if final >= options.files:
                break
            time.sleep(1.0)
        seconds = time.monotonic() - began
        calls = [r for r in emulator.requests if _is_fno(r.operation)]
        return PhaseReport(
            name,
            options.files,
            final,
            seconds,
            len(calls),
            sum(1 for r in calls if r.status == 429),
            emulator.limits.max_offered,
            emulator.limits.max_in_flight,
            counter.count,
        )


def _is_fno(operation: str) -> bool:
    return operation in OPERATIONS and not operation.startswith("blob_")


@contextmanager
def _publisher(inbound: ContainerClient, host_url: str, prefix: str) -> Iterator[None]:
    """Event Grid's deliveries of the blobs under ``prefix`` to one host's webhook."""
    subscription = Subscription(
        name="enqueue-blob",
        endpoint=f"{host_url}/runtime/webhooks/blobs?functionName={function_id('enqueue_blob')}",
        subject_begins_with=blob_subject(INBOUND, prefix),
        subject_case_sensitive=True,
    )
    with EventGridPublisher(inbound, subscription, interval=1.0):
        yield


def _prepare(emulator: Emulator, options: BudgetOptions) -> None:
    emulator.reset()
    knobs = emulator.knobs
    knobs.latency_ms = options.latency_ms
    knobs.user_max_concurrent = options.fno_concurrency
    knobs.user_max_requests = options.fno_requests
    knobs.user_window_seconds = options.fno_window
    knobs.user_retry_after_max = options.retry_after_max
    knobs.user_retry_after_growth = not options.no_growth


def _upload(inbound: ContainerClient, phase: str, options: BudgetOptions, data: bytes) -> None:
    names = [f"{phase}/h{i % options.hosts}-file-{i:05d}.xml" for i in range(options.files)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: inbound.upload_blob(name, data, overwrite=True), names))


def _emulator(options: BudgetOptions) -> Emulator:
    knobs = Knobs(enqueued_seconds=0.5, preprocessing_seconds=0.5, processing_seconds=0.5)
    return Emulator(
        [Job(CUSTOMERS_ID, "CustomersV3", "Import customers", (CLIENT_ID,))],
        [App(CLIENT_ID, CLIENT_SECRET)],
        tenant_id=TENANT_ID,
        tls=True,
        knobs=knobs,
    )


def run(
    options: BudgetOptions, *, say: Callable[[str], None] = _say, work: Path | None = None
) -> list[PhaseReport]:
    """Both phases in one run: with the shared budget, then without it."""
    with ExitStack() as stack:
        work = work or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        azurite = stack.enter_context(Azurite())
        counter = _BudgetRequests()
        proxy = stack.enter_context(FaultProxy.for_azurite(azurite, observer=counter))
        host_storage = connection_string(
            azurite.blob_port, azurite.queue_port, proxy.port(StorageService.TABLE)
        )
        inbound = BlobServiceClient.from_connection_string(azurite.connection_string)
        if not inbound.get_container_client(INBOUND).exists():
            inbound.create_container(INBOUND)
        emulator = stack.enter_context(_emulator(options))
        say(
            f"F&O limits (emulator): {options.fno_concurrency} at once, {options.fno_requests} "
            f"per {options.fno_window:g} s, Retry-After "
            + ("fixed" if options.no_growth else f"growing to {options.retry_after_max} s")
            + ", "
            f"{options.latency_ms} ms per call | app budget: D365_MAX_CONCURRENCY="
            f"{options.app_concurrency}, D365_MAX_REQUESTS_PER_5MIN="
            f"{options.app_requests_per_5min} | {options.hosts} hosts, {options.files} files"
        )
        services = _Services(options, emulator, azurite, counter, host_storage, work)
        with_budget = _phase("budget", True, services, options.timeout)
        say(with_budget.line())
        off_timeout = options.off_timeout or max(60.0, 2 * with_budget.seconds)
        without = _phase("off", False, services, off_timeout)
        say(without.line())
        return [with_budget, without]


def verdict(reports: list[PhaseReport]) -> list[str]:
    """The targets missed (empty: all met)."""
    with_budget, without = reports
    missed = []
    if with_budget.final < with_budget.files:
        missed.append("not every file reached a final state with the budget")
    if with_budget.throttled * 100 > with_budget.fno_calls:
        missed.append("more than one 429 per 100 F&O calls with the budget")
    if without.final == without.files and with_budget.seconds > without.seconds:
        missed.append("slower with the budget than without it")
    return missed


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 1 when a target is missed."""
    defaults = BudgetOptions()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--files", type=int, default=defaults.files)
    add("--hosts", type=int, default=defaults.hosts)
    add("--fno-concurrency", type=int, default=defaults.fno_concurrency)
    add("--fno-requests", type=int, default=defaults.fno_requests)
    add("--fno-window", type=float, default=defaults.fno_window)
    add("--retry-after-max", type=int, default=defaults.retry_after_max)
    add("--no-growth", action="store_true", help="F&O's Retry-After does not grow when pushed")
    add("--app-concurrency", type=int, default=defaults.app_concurrency)
    add("--latency-ms", type=int, default=defaults.latency_ms)
    add("--timeout", type=float, default=defaults.timeout)
    add("--off-timeout", type=float, default=defaults.off_timeout)
    args = parser.parse_args(argv)
    options = BudgetOptions(**vars(args))
    reports = run(options)
    missed = verdict(reports)
    _say("targets met" if not missed else "targets missed: " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
