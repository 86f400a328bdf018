"""Benchmark: one poller tick over 2,000 pending messages, F&O answering in 20 ms per call.

Prints, all measured in this run against Azurite and the D365 emulator (a separate process,
HTTPS, 20 ms latency per F&O call):

1. a tick with the default settings beside a sequential baseline (concurrency 1);
   target: default at least 8x faster;
2. a tick with 50,000 finished messages in the table beside one with none;
   target: ratio at most 1.2 (a tick never reads the finished history).

The messages are unknown to the emulator, which answers ``Enqueued`` for them (its documented
choice for an unknown id), so every message is polled and rescheduled: the full cost of a tick.

Usage: ``python bench/poll_tick.py [--pending 2000] [--finished 50000] [--latency-ms 20]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azure.data.tables import TableServiceClient  # noqa: E402
from azure.identity import ClientSecretCredential  # noqa: E402
from azure.storage.blob import BlobServiceClient  # noqa: E402

from devtools.azurite import Azurite, free_port  # noqa: E402
from shared.d365 import D365Client  # noqa: E402
from shared.enqueuer import Enqueuer  # noqa: E402
from shared.poller import Poller, PollPolicy  # noqa: E402
from shared.routing import RouteTable  # noqa: E402
from shared.source_blob import Archiver  # noqa: E402
from shared.tracking import TrackingState, TrackingStore, utcnow  # noqa: E402

JOBS = ROOT / "devtools" / "d365_emulator" / "jobs.example.json"
ACTIVITY_ID = "00000000-0000-0000-0000-00000000a001"


def start_emulator(port: int, ca_file: Path, latency_ms: int) -> subprocess.Popen[bytes]:
    """The emulator in its own process, so its work does not share our interpreter."""
    command = [
        sys.executable, "-m", "devtools.d365_emulator", "--port", str(port), "--tls",
        "--ca-file", str(ca_file), "--jobs", str(JOBS), "--latency-ms", str(latency_ms),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not (ca_file.exists() and _listening(port)):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("the D365 emulator did not start")
        time.sleep(0.1)
    return process


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def new_store(tables: TableServiceClient, blobs: BlobServiceClient) -> TrackingStore:
    """A store on a fresh table."""
    name = "bench" + uuid.uuid4().hex[:12]
    store = TrackingStore(
        tables.get_table_client(name), errors_container=blobs.get_container_client(name)
    )
    store.ensure_ready()
    return store


def seed_pending(store: TrackingStore, count: int) -> None:
    """``count`` enqueued messages, all due now."""
    now = utcnow() - timedelta(seconds=5)

    def one(i: int) -> None:
        record = store.claim(f"bench/pending-{i}.xml", f"etag-{i}", received_at=now).record
        record = store.update(
            record,
            state=TrackingState.ENQUEUED,
            message_id=str(uuid.uuid4()),
            d365_status="Enqueued",
            enqueued_at=now,
            activity_id=ACTIVITY_ID,
        )
        store.schedule(record, now)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(count)))


def seed_finished(table_client, count: int) -> None:
    """``count`` finished records, written 100 to a transaction."""
    now = utcnow() - timedelta(days=1)
    batch = []
    for i in range(count):
        millis = int(now.timestamp() * 1000) - i
        batch.append(
            (
                "create",
                {
                    "PartitionKey": "record",
                    "RowKey": f"{10**13 - 1 - millis:013d}-{uuid.uuid4().hex}",
                    "record_id": uuid.uuid4().hex,
                    "state": "Processed",
                    "blob": f"bench/done-{i}.xml",
                    "blob_etag": "etag",
                    "received_at": now.isoformat(),
                    "updated_at": now.isoformat(),
                    "message_id": str(uuid.uuid4()),
                },
            )
        )
        if len(batch) == 100:
            table_client.submit_transaction(batch)
            batch = []
    if batch:
        table_client.submit_transaction(batch)


def timed_tick(
    store: TrackingStore, client: D365Client, blobs: BlobServiceClient, concurrency: int
) -> float:
    """Seconds of one tick over everything due."""
    archiver = Archiver(blobs, inbound_container="bench-inbound", archive_container="bench-archive")
    enqueuer = Enqueuer(store, client, RouteTable(()), archiver)
    poller = Poller(
        store,
        client,
        enqueuer,
        archiver,
        policy=PollPolicy(concurrency=concurrency, tick_budget=timedelta(minutes=30)),
    )
    started = time.perf_counter()
    report = poller.tick()
    seconds = time.perf_counter() - started
    if report.counts.get("polled") != report.due:
        raise RuntimeError(f"not every message was polled: {report}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=2000)
    parser.add_argument("--finished", type=int, default=50_000)
    parser.add_argument("--latency-ms", type=int, default=20)
    args = parser.parse_args()
    default_concurrency = PollPolicy().concurrency

    with tempfile.TemporaryDirectory() as tmp, Azurite() as azurite:
        port = free_port()
        ca_file = Path(tmp) / "ca.pem"
        emulator = start_emulator(port, ca_file, args.latency_ms)
        os.environ["REQUESTS_CA_BUNDLE"] = os.environ["SSL_CERT_FILE"] = str(ca_file)
        config = json.loads(JOBS.read_text())
        app = config["apps"][0]
        base_url = f"https://127.0.0.1:{port}"
        credential = ClientSecretCredential(
            config["tenant_id"], app["client_id"], app["client_secret"],
            authority=base_url, disable_instance_discovery=True,
        )  # fmt: skip
        tables = TableServiceClient.from_connection_string(azurite.connection_string)
        blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
        try:
            with D365Client(base_url, credential) as client:
                client.get_message_status(str(uuid.uuid4()))  # token and connections warm
                results = {}
                for label, concurrency, finished in (
                    ("sequential", 1, 0),
                    ("default", default_concurrency, 0),
                    ("default+history", default_concurrency, args.finished),
                ):
                    store = new_store(tables, blobs)
                    if finished:
                        seed_finished(tables.get_table_client(store.table_name), finished)
                    seed_pending(store, args.pending)
                    results[label] = timed_tick(store, client, blobs, concurrency)
                    print(
                        f"{label:>16}: concurrency={concurrency:<3} finished={finished:<6} "
                        f"pending={args.pending} tick={results[label]:.2f}s",
                        flush=True,
                    )
        finally:
            emulator.terminate()
            emulator.wait(timeout=10)

    speedup = results["sequential"] / results["default"]
    history_ratio = results["default+history"] / results["default"]
    speed_ok = speedup >= 8
    history_ok = history_ratio <= 1.2
    verdict = "PASS" if speed_ok else "FAIL"
    print(f"speed-up default vs sequential: {speedup:.1f}x (target >= 8x) {verdict}")
    print(
        f"tick with {args.finished} finished vs none: {history_ratio:.2f} (target <= 1.2) "
        f"{'PASS' if history_ok else 'FAIL'}"
    )
    return 0 if speed_ok and history_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
