"""Benchmark: a burst of small files through the enqueuer, beside a raw download-and-POST.

All on loopback, in this run: Azurite, and the D365 emulator in its own process (HTTPS,
messages final at once). The app's storage clients log every request (``storage_options``
hooks, once per HTTP request inside the SDK's retry loop), and each request is attributed to
the file it names (blob path, or record id in a table key or body).

1. ``--files`` small files are uploaded at once to the inbound container.
2. **Baseline**: each blob downloaded and sent with ``D365Client.enqueue`` (bytes), at the
   same concurrency, with a client and credential of its own; run before and after the app,
   and the two runs' mean is the baseline.
3. **App**: each blob delivered to ``context.enqueuer.handle`` by a pool of ``--concurrency``
   threads; the time until every file is ``Enqueued``, and per file: table writes (a batch
   transaction counts once), table reads, blob calls.
4. **Rest of life**: one poll tick that brings every file to its final state and archives it;
   per file the same counts, and the tick's shared calls (lease, schedule query).
5. ``GET /api/messages/{id}`` through ``shared.views.files.get_message``, for every file, while
   ``Enqueued`` and once final: table reads and blob calls per request.

Targets: per accepted file at most 4 table writes and 3 blob calls; time to all ``Enqueued`` at
most 1.5x the baseline; at most 2 table reads per ``GET /api/messages/{id}``.

The emulator answers at once by default; ``--latency-ms`` delays every F&O answer (a real
environment takes far longer than storage, which shrinks the ratio).

Usage: ``python bench/enqueue_burst.py [--files 500] [--concurrency 16] [--size 2048]
[--latency-ms 0]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from azure.storage.blob import BlobServiceClient, ContainerClient  # noqa: E402

from bench._loopback import (  # noqa: E402
    JOBS,
    CpuMeter,
    StorageCall,
    StorageCalls,
    child_pid,
    start_emulator,
)
from devtools.azurite import Azurite  # noqa: E402
from shared.clients.d365 import D365Client  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.context import (  # noqa: E402
    AppContext,
    build_context,
    d365_credential,
)
from shared.tracking import TrackedFile, TrackingState, record_id_for, utcnow  # noqa: E402
from shared.views.files import get_message  # noqa: E402

PACKAGE_ACTIVITY_ID = "00000000-0000-0000-0000-00000000a003"
INBOUND = "burst-inbound"
PREFIX = "packages/"
MAX_TABLE_WRITES = 4
MAX_BLOB_CALLS = 3
MAX_TIME_RATIO = 1.5
MAX_API_READS = 2
_FILE_NAME = re.compile(r"burst-(\d{5})\.zip")
_HEX32 = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
_EXTRA_TICKS = 5


def app_settings(
    connection_string: str, base_url: str, *, concurrency: int, poll_interval: str = "1s"
) -> Settings:
    """The app's settings for this run: one data-package route, fast polls."""
    config = json.loads(JOBS.read_text())
    app = config["apps"][0]
    route = {
        "name": "packages",
        "prefix": PREFIX,
        "activity_id": PACKAGE_ACTIVITY_ID,
        "company": "USMF",
    }
    return Settings.from_env(
        {
            "D365_BASE_URL": base_url,
            "D365_AUTHORITY_HOST": base_url,
            "D365_TENANT_ID": config["tenant_id"],
            "D365_CLIENT_ID": app["client_id"],
            "D365_CLIENT_SECRET": app["client_secret"],
            "D365_ROUTES": json.dumps([route]),
            "IntegrationStorage": connection_string,
            "INBOUND_CONTAINER": INBOUND,
            "STATUS_TABLE": "burst",
            "ARCHIVE_CONTAINER": "burst-archive",
            "ERRORS_CONTAINER": "burst-errors",
            "POLL_CONCURRENCY": str(concurrency),
            "POLL_INTERVAL_MIN": poll_interval,
            "POLL_INTERVAL_MAX": "2s",
        }
    )


class PoolDiscards(logging.Handler):
    """Counts urllib3's "Connection pool is full, discarding connection" (kept off stderr)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Connection pool is full" in record.getMessage():
            self.count += 1

    def take(self) -> int:
        """The count since the last take."""
        count, self.count = self.count, 0
        return count


# -- attribution and figures --------------------------------------------------------------------


@dataclass(frozen=True)
class PerFile:
    """Requests of one phase, attributed to files."""

    files: int
    table_writes: list[int]
    table_reads: list[int]
    blob_calls: list[int]
    shared: list[StorageCall]

    @classmethod
    def of(cls, calls: Sequence[StorageCall], record_ids: dict[str, int], files: int) -> PerFile:
        """Attribute each request to the one file it names; the rest are shared."""
        writes, reads, blobs = [0] * files, [0] * files, [0] * files
        shared = []
        for call in calls:
            owners = {int(m.group(1)) for m in _FILE_NAME.finditer(call.text)}
            owners |= {record_ids[h] for h in _HEX32.findall(call.text) if h in record_ids}
            if len(owners) != 1:
                shared.append(call)
                continue
            index = owners.pop()
            if call.table_write:
                writes[index] += 1
            elif call.table_read:
                reads[index] += 1
            else:
                blobs[index] += 1
        return cls(files, writes, reads, blobs, shared)

    def lines(self) -> list[str]:
        """The figures, one kind per line."""
        rows = [
            ("table writes", self.table_writes, lambda c: c.table_write),
            ("table reads", self.table_reads, lambda c: c.table_read),
            ("blob calls", self.blob_calls, lambda c: c.blob),
        ]
        return [
            f"{name:<13} per file: mean {statistics.fmean(counts):.2f}, max {max(counts)}, "
            f"min {min(counts)}; shared (not one file's): {sum(1 for c in self.shared if kind(c))}"
            for name, counts, kind in rows
        ]


def _seconds(values: Iterable[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# -- the phases ---------------------------------------------------------------------------------


def upload(container: ContainerClient, names: Sequence[str], size: int, workers: int) -> list[str]:
    """Upload the files at once; returns their ETags."""

    def one(name: str) -> str:
        blob = container.get_blob_client(name)
        return str(blob.upload_blob(os.urandom(size), overwrite=True)["etag"])

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, names))


def baseline_sender(blobs: BlobServiceClient, client: D365Client) -> Callable[[str], object]:
    """Download a blob whole and POST its bytes to the enqueue endpoint."""

    def send(name: str) -> object:
        data = blobs.get_blob_client(INBOUND, name).download_blob().readall()
        return client.enqueue(PACKAGE_ACTIVITY_ID, data, external_id=name).message_id

    return send


def app_sender(context: AppContext) -> Callable[[str], object]:
    """One blob-trigger delivery of a blob."""

    def deliver(name: str) -> object:
        return context.enqueuer.handle(context.blob_service.get_blob_client(INBOUND, name))

    return deliver


def _settled(record: TrackedFile | None) -> bool:
    return (
        record is not None
        and record.state.is_terminal
        and not record.archive_pending
        and record.archived_to is not None
    )


@dataclass
class Options:
    """The command line."""

    files: int
    concurrency: int
    size: int
    latency_ms: int


@dataclass
class Rig:
    """What a run measures with: the app's context with counted storage clients, the
    baseline's own clients, and the meters."""

    context: AppContext
    counter: StorageCalls
    raw_blobs: BlobServiceClient
    raw_client: D365Client
    discards: PoolDiscards
    cpu: CpuMeter


@dataclass(frozen=True)
class Phase:
    """One timed pass over the files."""

    seconds: float
    each: list[float]
    results: list[object]
    cpu: dict[str, float]
    discards: int

    def cpu_text(self, files: int) -> str:
        """CPU per file of each process."""
        return ", ".join(f"{name} {used / files * 1000:.1f} ms" for name, used in self.cpu.items())


def timed_pass(
    rig: Rig, work: Callable[[str], object], names: Sequence[str], workers: int
) -> Phase:
    """Run ``work`` over the names with a pool of ``workers`` threads."""

    def timed(name: str) -> tuple[float, object]:
        started = time.perf_counter()
        result = work(name)
        return time.perf_counter() - started, result

    rig.cpu.lap()
    rig.discards.take()
    started = time.perf_counter()
    with ThreadPoolExecutor(workers, thread_name_prefix="burst") as pool:
        done = list(pool.map(timed, names))
    seconds = time.perf_counter() - started
    return Phase(
        seconds, [t for t, _ in done], [r for _, r in done], rig.cpu.lap(), rig.discards.take()
    )


def run(options: Options) -> bool:
    """The whole benchmark; prints the figures; True when every target is met."""
    discards = PoolDiscards()
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    urllib3_log.addHandler(discards)
    urllib3_log.propagate = False
    workers = options.concurrency
    with tempfile.TemporaryDirectory(prefix="burst-bench-") as folder, Azurite() as azurite:
        emulator = start_emulator(Path(folder), state_seconds=0, latency_ms=options.latency_ms)
        os.environ["REQUESTS_CA_BUNDLE"] = os.environ["SSL_CERT_FILE"] = str(emulator.ca_file)
        try:
            settings = app_settings(
                azurite.connection_string, emulator.base_url, concurrency=workers
            )
            counter = StorageCalls(blob_port=azurite.blob_port, table_port=azurite.table_port)
            context = build_context(settings, storage_options=counter.options())
            raw_client = D365Client(
                settings.d365.base_url, d365_credential(settings.d365), pool_maxsize=workers
            )
            pids: dict[str, int | str] = {"bench": "self", "emulator": emulator.pid}
            azurite_pid = child_pid("node")
            if azurite_pid is not None:
                pids["azurite"] = azurite_pid
            rig = Rig(
                context,
                counter,
                BlobServiceClient.from_connection_string(azurite.connection_string),
                raw_client,
                discards,
                CpuMeter(pids),
            )
            try:
                return _measure(options, rig)
            finally:
                raw_client.close()
                context.close()
        finally:
            emulator.stop()


def _measure(options: Options, rig: Rig) -> bool:
    n, workers = options.files, options.concurrency
    inbound = rig.raw_blobs.get_container_client(INBOUND)
    inbound.create_container()
    names = [f"{PREFIX}burst-{i:05d}.zip" for i in range(n)]
    started = time.perf_counter()
    etags = upload(inbound, names, options.size, workers)
    print(
        f"uploaded {n} files of {options.size} bytes at once ({workers} threads) in "
        f"{time.perf_counter() - started:.2f} s"
    )
    record_ids = {
        record_id_for(name, etag): i
        for i, (name, etag) in enumerate(zip(names, etags, strict=True))
    }
    baseline, app = baseline_sender(rig.raw_blobs, rig.raw_client), app_sender(rig.context)
    _warm_up(rig, inbound, options, baseline, app)

    base_1 = timed_pass(rig, baseline, names, workers)
    with rig.counter.recording() as calls:
        sent = timed_pass(rig, app, names, workers)
    base_2 = timed_pass(rig, baseline, names, workers)
    records = [r if isinstance(r, TrackedFile) else None for r in sent.results]
    ok = _report_enqueue(
        options,
        base_1=base_1,
        sent=sent,
        base_2=base_2,
        records=records,
        enqueue=PerFile.of(calls, record_ids, n),
    )

    message_ids = [r.raw_message_id or r.message_id or "" for r in records if r is not None]
    reads_enqueued = api_reads(rig, message_ids)
    ok = _rest_of_life(rig, records, record_ids, n) and ok
    reads_final = api_reads(rig, message_ids)
    return _report_api(len(message_ids), reads_enqueued, reads_final) and ok


def _warm_up(
    rig: Rig,
    inbound: ContainerClient,
    options: Options,
    baseline: Callable[[str], object],
    app: Callable[[str], object],
) -> None:
    """Tokens, connection pools and code paths of both senders and the poller, on files of
    their own, finished before anything is measured."""
    workers = options.concurrency
    warmups = [f"{PREFIX}warmup-{i:03d}.zip" for i in range(workers)]
    upload(inbound, warmups, options.size, workers)
    timed_pass(rig, baseline, warmups, workers)
    records = [r for r in timed_pass(rig, app, warmups, workers).results if r]
    _wait_until_due(records)
    rig.context.poller.tick()


def _wait_until_due(records: Iterable[object]) -> None:
    due = [r.next_poll_at for r in records if isinstance(r, TrackedFile) and r.next_poll_at]
    if due:
        time.sleep(max(0.0, (max(due) - utcnow()).total_seconds()) + 0.5)


def _report_enqueue(
    options: Options,
    *,
    base_1: Phase,
    sent: Phase,
    base_2: Phase,
    records: Sequence[TrackedFile | None],
    enqueue: PerFile,
) -> bool:
    n = options.files
    enqueued = sum(1 for r in records if r is not None and r.state is TrackingState.ENQUEUED)
    base_seconds = (base_1.seconds + base_2.seconds) / 2
    ratio = sent.seconds / base_seconds
    print(
        f"enqueue burst: {n} files, concurrency {options.concurrency}, F&O latency "
        f"{options.latency_ms} ms"
    )
    print(
        f"  baseline (download, D365Client.enqueue of the bytes): run 1 {base_1.seconds:.2f} s, "
        f"run 2 {base_2.seconds:.2f} s, mean {base_seconds:.2f} s "
        f"({n / base_seconds:.0f} files/s); per file {_seconds(base_1.each + base_2.each)}"
    )
    print(f"    CPU per file (run 1): {base_1.cpu_text(n)}; pool discards {base_1.discards}")
    print(
        f"  app (context.enqueuer.handle): {sent.seconds:.2f} s until all {enqueued}/{n} "
        f"Enqueued ({n / sent.seconds:.0f} files/s); per file {_seconds(sent.each)}"
    )
    print(f"    CPU per file: {sent.cpu_text(n)}; pool discards {sent.discards}")
    for line in enqueue.lines():
        print(f"  {line}")
    checks = [
        (enqueued == n, f"files Enqueued: {enqueued}/{n}"),
        (
            max(enqueue.table_writes) <= MAX_TABLE_WRITES,
            f"table writes per accepted file: max {max(enqueue.table_writes)}, mean "
            f"{statistics.fmean(enqueue.table_writes):.2f} (target <= {MAX_TABLE_WRITES})",
        ),
        (
            max(enqueue.blob_calls) <= MAX_BLOB_CALLS,
            f"blob calls per accepted file: max {max(enqueue.blob_calls)}, mean "
            f"{statistics.fmean(enqueue.blob_calls):.2f} (target <= {MAX_BLOB_CALLS})",
        ),
        (
            ratio <= MAX_TIME_RATIO,
            f"time to all Enqueued / baseline: {ratio:.2f}x ({sent.seconds:.2f} s / "
            f"{base_seconds:.2f} s; target <= {MAX_TIME_RATIO}x)",
        ),
    ]
    for ok, text in checks:
        print(f"{_verdict(ok)}  {text}")
    return all(ok for ok, _ in checks)


def _rest_of_life(
    rig: Rig, records: Sequence[TrackedFile | None], record_ids: dict[str, int], n: int
) -> bool:
    """One poll tick once every file is due; prints its figures; True when every file ended
    final and archived."""
    _wait_until_due(records)
    rig.cpu.lap()
    started = time.perf_counter()
    with rig.counter.recording() as calls:
        report = rig.context.poller.tick()
    seconds = time.perf_counter() - started
    cpu = rig.cpu.lap()
    tick = PerFile.of(calls, record_ids, n)
    keys = [r.row_key for r in records if r is not None]
    settled = sum(1 for key in keys if _settled(rig.context.store.get(key)))
    print(f"rest of life: one poll tick, {report} (wall {seconds:.2f} s)")
    print(f"  files final and archived after it: {settled}/{n}")
    print("    CPU per file: " + ", ".join(f"{k} {v / n * 1000:.1f} ms" for k, v in cpu.items()))
    for line in tick.lines():
        print(f"  {line}")
    shapes = Counter(_shape(c) for c in tick.shared)
    print(
        f"  shared calls of the tick: {len(tick.shared)} "
        f"({'; '.join(f'{shape} x{count}' for shape, count in sorted(shapes.items()))})"
    )
    extra = 0
    while settled < n and extra < _EXTRA_TICKS:
        extra += 1
        time.sleep(1.0)
        rig.context.poller.tick()
        settled = sum(1 for key in keys if _settled(rig.context.store.get(key)))
    if extra:
        print(f"  after {extra} more tick(s): {settled}/{n} final and archived")
    print(f"{_verdict(settled == n)}  every file final and archived: {settled}/{n}")
    return settled == n


def api_reads(rig: Rig, message_ids: Sequence[str]) -> tuple[list[int], list[int], set[int]]:
    """Per ``GET /api/messages/{id}``: table reads, other storage calls; the statuses."""
    reads, others, statuses = [], [], set()
    for message_id in message_ids:
        with rig.counter.recording() as calls:
            response = get_message(rig.context, message_id)
        statuses.add(response.status)
        reads.append(sum(1 for c in calls if c.table_read))
        others.append(sum(1 for c in calls if not c.table_read))
    return reads, others, statuses


def _report_api(
    count: int,
    enqueued: tuple[list[int], list[int], set[int]],
    final: tuple[list[int], list[int], set[int]],
) -> bool:
    reads = enqueued[0] + final[0]
    statuses = enqueued[2] | final[2]
    print(
        f"GET /api/messages/{{id}} (views.files.get_message) for {count} ids: while Enqueued "
        f"table reads mean {statistics.fmean(enqueued[0]):.2f} max {max(enqueued[0])}; once "
        f"final mean {statistics.fmean(final[0]):.2f} max {max(final[0])}; other storage "
        f"calls {sum(enqueued[1]) + sum(final[1])}; statuses {sorted(statuses)}"
    )
    ok = max(reads) <= MAX_API_READS and statuses == {200}
    print(
        f"{_verdict(ok)}  table reads per GET /api/messages/{{id}}: max {max(reads)} "
        f"(target <= {MAX_API_READS})"
    )
    return ok


def _shape(call: StorageCall) -> str:
    """Method and path, keys and queries left out: what kind of shared call it was."""
    path = re.sub(r"\(.*\)", "(...)", call.text.split("\n", 1)[0].split("?", 1)[0])
    return f"{call.service} {call.method} {path}"


def main() -> int:
    """Parse the arguments, run, print; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500, help="files in the burst (500)")
    parser.add_argument("--concurrency", type=int, default=16, help="deliveries at once (16)")
    parser.add_argument("--size", type=int, default=2048, help="bytes per file (2048)")
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="F&O's delay before every answer (0)"
    )
    args = parser.parse_args()
    if not 1 <= args.files <= 99_999 or args.concurrency < 1 or args.size < 1:
        parser.error("--files must be 1 to 99999; --concurrency and --size at least 1")
    started = time.perf_counter()
    ok = run(Options(args.files, args.concurrency, args.size, args.latency_ms))
    print(f"bench took {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
