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
5. ``GET /api/messages/{id}`` through ``shared.status_api.get_message``, for every file, while
   ``Enqueued`` and once final: table reads and blob calls per request.

Targets: per accepted file at most 4 table writes and 3 blob calls; time to all ``Enqueued`` at
most 1.5x the baseline; at most 2 table reads per ``GET /api/messages/{id}``.

Usage: ``python bench/enqueue_burst.py [--files 500] [--concurrency 16] [--size 2048]``
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
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from azure.storage.blob import BlobServiceClient, ContainerClient  # noqa: E402

from bench._loopback import JOBS, StorageCall, StorageCalls, start_emulator  # noqa: E402
from devtools.azurite import Azurite  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.context import AppContext, build_context  # noqa: E402
from shared.credentials import build_credential  # noqa: E402
from shared.d365 import D365Client  # noqa: E402
from shared.status_api import get_message  # noqa: E402
from shared.tracking import TrackedFile, TrackingState, record_id_for, utcnow  # noqa: E402

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


def timed_map(
    work: Callable[[str], object], names: Sequence[str], workers: int
) -> tuple[float, list[float], list[object]]:
    """Run ``work`` over the names with a pool; total seconds, seconds per item, results."""

    def timed(name: str) -> tuple[float, object]:
        started = time.perf_counter()
        result = work(name)
        return time.perf_counter() - started, result

    started = time.perf_counter()
    with ThreadPoolExecutor(workers, thread_name_prefix="burst") as pool:
        done = list(pool.map(timed, names))
    return time.perf_counter() - started, [t for t, _ in done], [r for _, r in done]


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


def api_reads(
    context: AppContext, counter: StorageCalls, message_ids: Sequence[str]
) -> tuple[list[int], list[int], list[int]]:
    """Table reads and other storage calls of each ``GET /api/messages/{id}``, and the
    statuses it answered."""
    reads, others, statuses = [], [], []
    for message_id in message_ids:
        with counter.recording() as calls:
            response = get_message(context, message_id)
        statuses.append(response.status)
        reads.append(sum(1 for c in calls if c.table_read))
        others.append(sum(1 for c in calls if not c.table_read))
    return reads, others, statuses


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


@dataclass
class Rig:
    """What a run measures with: the app's context with counted storage clients, and the
    baseline's own clients."""

    context: AppContext
    counter: StorageCalls
    raw_blobs: BlobServiceClient
    raw_client: D365Client
    discards: PoolDiscards


def run(options: Options) -> bool:
    """The whole benchmark; prints the figures; True when every target is met."""
    discards = PoolDiscards()
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    urllib3_log.addHandler(discards)
    urllib3_log.propagate = False
    workers = options.concurrency
    with tempfile.TemporaryDirectory(prefix="burst-bench-") as folder, Azurite() as azurite:
        emulator = start_emulator(Path(folder), state_seconds=0)
        os.environ["REQUESTS_CA_BUNDLE"] = os.environ["SSL_CERT_FILE"] = str(emulator.ca_file)
        try:
            settings = app_settings(
                azurite.connection_string, emulator.base_url, concurrency=workers
            )
            counter = StorageCalls(blob_port=azurite.blob_port, table_port=azurite.table_port)
            context = build_context(settings, storage_options=counter.options())
            raw_blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
            raw_client = D365Client(
                settings.d365.base_url,
                build_credential(settings.d365),
                pool_maxsize=workers,
            )
            try:
                return _measure(options, Rig(context, counter, raw_blobs, raw_client, discards))
            finally:
                raw_client.close()
                context.close()
        finally:
            emulator.stop()
            print(f"(emulator pid {emulator.pid}, {emulator.base_url})")


def _measure(options: Options, rig: Rig) -> bool:
    n, workers = options.files, options.concurrency
    context, counter, discards = rig.context, rig.counter, rig.discards
    raw_blobs, raw_client = rig.raw_blobs, rig.raw_client
    inbound = raw_blobs.get_container_client(INBOUND)
    inbound.create_container()
    names = [f"{PREFIX}burst-{i:05d}.zip" for i in range(n)]
    warmups = [f"{PREFIX}warmup-{i:03d}.zip" for i in range(workers)]
    started = time.perf_counter()
    etags = upload(inbound, names, options.size, workers)
    print(
        f"uploaded {n} files of {options.size} bytes at once ({workers} threads) in "
        f"{time.perf_counter() - started:.2f} s"
    )
    upload(inbound, warmups, options.size, workers)
    record_ids = {
        record_id_for(name, etag): i
        for i, (name, etag) in enumerate(zip(names, etags, strict=True))
    }

    baseline, app = baseline_sender(raw_blobs, raw_client), app_sender(context)
    # Warm tokens, connection pools and code paths of both, on files of their own.
    timed_map(baseline, warmups, workers)
    timed_map(app, warmups, workers)
    discards.take()

    base_1, base_1_each, _ = timed_map(baseline, names, workers)
    base_discards = discards.take()
    with counter.recording() as enqueue_calls:
        app_seconds, app_each, results = timed_map(app, names, workers)
    app_discards = discards.take()
    base_2, base_2_each, _ = timed_map(baseline, names, workers)
    base_discards += discards.take()
    records = [r if isinstance(r, TrackedFile) else None for r in results]
    enqueued = sum(1 for r in records if r is not None and r.state is TrackingState.ENQUEUED)
    base_seconds = (base_1 + base_2) / 2
    ratio = app_seconds / base_seconds
    enqueue = PerFile.of(enqueue_calls, record_ids, n)

    print(f"enqueue burst: {n} files, concurrency {workers}")
    print(
        f"  baseline (download, D365Client.enqueue of the bytes): run 1 {base_1:.2f} s, "
        f"run 2 {base_2:.2f} s, mean {base_seconds:.2f} s ({n / base_seconds:.0f} files/s); "
        f"per file {_seconds(base_1_each + base_2_each)}; pool discards {base_discards}"
    )
    print(
        f"  app (context.enqueuer.handle): {app_seconds:.2f} s until all {enqueued}/{n} "
        f"Enqueued ({n / app_seconds:.0f} files/s); per file {_seconds(app_each)}; "
        f"pool discards {app_discards}"
    )
    for line in enqueue.lines():
        print(f"  {line}")
    all_enqueued = enqueued == n
    writes_ok = max(enqueue.table_writes) <= MAX_TABLE_WRITES
    blobs_ok = max(enqueue.blob_calls) <= MAX_BLOB_CALLS
    time_ok = ratio <= MAX_TIME_RATIO
    print(f"{_verdict(all_enqueued)}  files Enqueued: {enqueued}/{n}")
    print(
        f"{_verdict(writes_ok)}  table writes per accepted file: max {max(enqueue.table_writes)}"
        f", mean {statistics.fmean(enqueue.table_writes):.2f} (target <= {MAX_TABLE_WRITES})"
    )
    print(
        f"{_verdict(blobs_ok)}  blob calls per accepted file: max {max(enqueue.blob_calls)}, "
        f"mean {statistics.fmean(enqueue.blob_calls):.2f} (target <= {MAX_BLOB_CALLS})"
    )
    print(
        f"{_verdict(time_ok)}  time to all Enqueued / baseline: {ratio:.2f}x "
        f"({app_seconds:.2f} s / {base_seconds:.2f} s; target <= {MAX_TIME_RATIO}x)"
    )

    message_ids = [r.raw_message_id or r.message_id or "" for r in records if r is not None]
    reads_enqueued, other_enqueued, statuses_enqueued = api_reads(context, counter, message_ids)
    final_ok, tick_lines = _rest_of_life(context, counter, records, record_ids, n)
    reads_final, other_final, statuses_final = api_reads(context, counter, message_ids)
    for line in tick_lines:
        print(line)
    api_ok = max(reads_enqueued + reads_final) <= MAX_API_READS and all(
        s == 200 for s in statuses_enqueued + statuses_final
    )
    print(
        f"  GET /api/messages/{{id}} (get_message), {len(message_ids)} ids: while Enqueued "
        f"table reads mean {statistics.fmean(reads_enqueued):.2f} max {max(reads_enqueued)}; "
        f"once final mean {statistics.fmean(reads_final):.2f} max {max(reads_final)}; other "
        f"storage calls {sum(other_enqueued) + sum(other_final)}; statuses "
        f"{sorted(set(statuses_enqueued + statuses_final))}"
    )
    print(
        f"{_verdict(api_ok)}  table reads per GET /api/messages/{{id}}: max "
        f"{max(reads_enqueued + reads_final)} (target <= {MAX_API_READS})"
    )
    return all_enqueued and writes_ok and blobs_ok and time_ok and final_ok and api_ok


def _rest_of_life(
    context: AppContext,
    counter: StorageCalls,
    records: Sequence[TrackedFile | None],
    record_ids: dict[str, int],
    n: int,
) -> tuple[bool, list[str]]:
    """One poll tick once every file is due; returns whether all ended final and archived."""
    due_at = max((r.next_poll_at for r in records if r and r.next_poll_at), default=None)
    if due_at is not None:
        time.sleep(max(0.0, (due_at - utcnow()).total_seconds()) + 0.5)
    with counter.recording() as calls:
        report = context.poller.tick()
    tick = PerFile.of(calls, record_ids, n)
    keys = [r.row_key for r in records if r is not None]
    settled = sum(1 for key in keys if _settled(context.store.get(key)))
    lines = [
        f"rest of life: one poll tick, {report}",
        f"  files final and archived after it: {settled}/{n}",
        *(f"  {line}" for line in tick.lines()),
        f"  shared calls of the tick: {len(tick.shared)} "
        f"({', '.join(sorted({_shape(c) for c in tick.shared}))})",
    ]
    extra = 0
    while settled < n and extra < _EXTRA_TICKS:
        extra += 1
        time.sleep(1.0)
        context.poller.tick()
        settled = sum(1 for key in keys if _settled(context.store.get(key)))
    if extra:
        lines.append(f"  after {extra} more tick(s): {settled}/{n} final and archived")
    ok = settled == n
    lines.append(f"{_verdict(ok)}  every file final and archived: {settled}/{n}")
    return ok, lines


def _shape(call: StorageCall) -> str:
    """Method and path, keys and queries shortened: what kind of shared call it was."""
    path = re.sub(r"\(.*\)", "(...)", call.text.split("\n", 1)[0].split("?", 1)[0])
    return f"{call.service} {call.method} {path}"


def main() -> int:
    """Parse the arguments, run, print; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500, help="files in the burst (500)")
    parser.add_argument("--concurrency", type=int, default=16, help="deliveries at once (16)")
    parser.add_argument("--size", type=int, default=2048, help="bytes per file (2048)")
    args = parser.parse_args()
    if args.files < 1 or args.files > 99_999 or args.concurrency < 1 or args.size < 1:
        parser.error("--files must be 1 to 99999; --concurrency and --size at least 1")
    started = time.perf_counter()
    ok = run(Options(args.files, args.concurrency, args.size))
    print(f"bench took {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
