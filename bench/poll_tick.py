"""Benchmark: one poller tick over 2,000 pending messages, F&O answering in 20 ms per call.

Prints, all measured in this run against Azurite and the D365 emulator (a separate process,
HTTPS, 20 ms latency per F&O call):

1. a tick with the default settings beside a sequential baseline (concurrency 1);
   target: default at least 8x faster;
2. a tick with 50,000 finished messages in the table beside one with none;
   target: ratio at most 1.2 (a tick never reads the finished history);
3. a tick over 10,000 pending messages, and how its time grows from the 2,000 of run 1
   (no target: printed as the growth of the tick time and of the time per message).

The messages are unknown to the emulator, which answers ``Enqueued`` for them (its documented
choice for an unknown id), so every message is polled: the full cost of a tick's reads and
F&O calls. Such a poll changes nothing, so it writes nothing (the schedule's later poll times
follow from each entry's anchor); the tick's only writes are its lease's.

Each run has a status table of its own. Pending messages are claimed as the enqueuer leaves
them once F&O took them (record, blob-path index and schedule entry in one transaction);
finished ones are written 100 to a transaction, as finished records with no schedule entry.

Usage: ``python bench/poll_tick.py [--pending 2000] [--finished 50000] [--big-pending 10000]
[--latency-ms 20] [--quick]``; ``--quick`` skips runs 2 and 3 (the big ones).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from azure.data.tables import TableClient, TableServiceClient  # noqa: E402
from azure.identity import ClientSecretCredential  # noqa: E402
from azure.storage.blob import BlobServiceClient  # noqa: E402

from bench._loopback import JOBS, start_emulator  # noqa: E402
from bench._seeding import create_rows  # noqa: E402
from devtools.azurite import Azurite  # noqa: E402
from shared.clients.d365 import D365Client  # noqa: E402
from shared.config.routes import ImportRoutes  # noqa: E402
from shared.flows.archive import InboundContainer  # noqa: E402
from shared.flows.enqueue import Enqueuer  # noqa: E402
from shared.flows.policies import PollPolicy  # noqa: E402
from shared.flows.poll import Poller  # noqa: E402
from shared.tracking import (  # noqa: E402
    TrackedFile,
    TrackingState,
    TrackingStore,
    record_id_for,
    record_row_key,
    to_entity,
    utcnow,
)

ACTIVITY_ID = "00000000-0000-0000-0000-00000000a001"
SPEEDUP_TARGET = 8.0
HISTORY_TARGET = 1.2
_SEED_THREADS = 16


def new_store(tables: TableServiceClient, blobs: BlobServiceClient) -> TrackingStore:
    """A store on a fresh table."""
    name = "bench" + uuid.uuid4().hex[:12]
    store = TrackingStore(
        tables.get_table_client(name), errors_container=blobs.get_container_client(name)
    )
    store.ensure_ready()
    return store


def seed_pending(store: TrackingStore, count: int) -> None:
    """``count`` enqueued messages, all due now: claimed as F&O took them, on the schedule."""
    now = utcnow() - timedelta(seconds=5)

    def one(i: int) -> None:
        store.claim(
            f"bench/pending-{i}.xml",
            f"etag-{i}",
            modified_at=now,
            received_at=now,
            state=TrackingState.ENQUEUED,
            schedule_at=now,
            message_id=str(uuid.uuid4()),
            d365_status="Enqueued",
            enqueued_at=now,
            activity_id=ACTIVITY_ID,
        )

    with ThreadPoolExecutor(_SEED_THREADS) as pool:
        list(pool.map(one, range(count)))


def seed_finished(table: TableClient, count: int) -> None:
    """``count`` finished records (the table's own row layout), 100 to a transaction."""
    done = utcnow() - timedelta(days=1)

    def record(i: int) -> dict:
        blob = f"bench/done-{i}.xml"
        record_id = record_id_for(blob, f"etag-{i}")
        modified = done - timedelta(milliseconds=i)
        return to_entity(
            TrackedFile(
                record_id=record_id,
                row_key=record_row_key(modified, record_id),
                blob=blob,
                blob_etag=f"etag-{i}",
                state=TrackingState.PROCESSED,
                received_at=modified,
                updated_at=done,
                completed_at=done,
                enqueued_at=modified,
                message_id=str(uuid.uuid4()),
                d365_status="Processed",
                activity_id=ACTIVITY_ID,
                archived_to=f"archive/Processed/{blob}",
                history=(("Received", modified.isoformat()), ("Processed", done.isoformat())),
            )
        )

    create_rows(table, record, count)


def timed_tick(
    store: TrackingStore, client: D365Client, blobs: BlobServiceClient, concurrency: int
) -> float:
    """Seconds of one tick over everything due."""
    inbound = InboundContainer(
        blobs, inbound_container="bench-inbound", archive_container="bench-archive"
    )
    enqueuer = Enqueuer(store, client, ImportRoutes(()), inbound)
    poller = Poller(
        store,
        client,
        enqueuer,
        inbound,
        policy=PollPolicy(concurrency=concurrency, tick_budget=timedelta(minutes=30)),
    )
    started = time.perf_counter()
    report = poller.tick()
    seconds = time.perf_counter() - started
    if report.counts.get("polled") != report.due:
        raise RuntimeError(f"not every message was polled: {report}")
    return seconds


@dataclass(frozen=True)
class Case:
    """One measured tick."""

    label: str
    concurrency: int
    pending: int
    finished: int


def measure(
    case: Case, tables: TableServiceClient, blobs: BlobServiceClient, client: D365Client
) -> float:
    """Seed a fresh table for the case, then time one tick over it."""
    store = new_store(tables, blobs)
    started = time.perf_counter()
    if case.finished:
        seed_finished(tables.get_table_client(store.table_name), case.finished)
    seed_pending(store, case.pending)
    seeded = time.perf_counter() - started
    seconds = timed_tick(store, client, blobs, case.concurrency)
    print(
        f"{case.label:>16}: concurrency={case.concurrency:<3} finished={case.finished:<6} "
        f"pending={case.pending:<6} tick={seconds:.2f}s "
        f"({seconds / case.pending * 1000:.2f} ms per message; seeded in {seeded:.0f}s)",
        flush=True,
    )
    return seconds


def main() -> int:
    """Parse the arguments, run the ticks, print the figures; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=2000)
    parser.add_argument("--finished", type=int, default=50_000)
    parser.add_argument("--big-pending", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="skip the 50,000 and 10,000 runs")
    args = parser.parse_args()
    default = PollPolicy().concurrency
    cases = [
        Case("sequential", 1, args.pending, 0),
        Case("default", default, args.pending, 0),
    ]
    if not args.quick:
        cases += [
            Case("default+history", default, args.pending, args.finished),
            Case("default big", default, args.big_pending, 0),
        ]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, Azurite() as azurite:
        emulator = start_emulator(Path(tmp), latency_ms=args.latency_ms)
        os.environ["REQUESTS_CA_BUNDLE"] = os.environ["SSL_CERT_FILE"] = str(emulator.ca_file)
        config = json.loads(JOBS.read_text())
        app = config["apps"][0]
        credential = ClientSecretCredential(
            config["tenant_id"], app["client_id"], app["client_secret"],
            authority=emulator.base_url, disable_instance_discovery=True,
        )  # fmt: skip
        tables = TableServiceClient.from_connection_string(azurite.connection_string)
        blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
        try:
            with D365Client(emulator.base_url, credential) as client:
                client.get_message_status(str(uuid.uuid4()))  # token and connections warm
                results = {case.label: measure(case, tables, blobs, client) for case in cases}
        finally:
            emulator.stop()

    speedup = results["sequential"] / results["default"]
    speed_ok = speedup >= SPEEDUP_TARGET
    print(
        f"speed-up default vs sequential: {speedup:.1f}x (target >= {SPEEDUP_TARGET:.0f}x) "
        f"{'PASS' if speed_ok else 'FAIL'}"
    )
    history_ok = True
    if args.quick:
        print("tick with finished history, and the big tick: skipped (--quick)")
    else:
        history_ratio = results["default+history"] / results["default"]
        history_ok = history_ratio <= HISTORY_TARGET
        print(
            f"tick with {args.finished} finished vs none: {history_ratio:.2f} "
            f"(target <= {HISTORY_TARGET}) {'PASS' if history_ok else 'FAIL'}"
        )
        growth = results["default big"] / results["default"]
        per_message = growth * args.pending / args.big_pending
        print(
            f"tick over {args.big_pending} pending vs {args.pending}: {growth:.2f}x the time "
            f"for {args.big_pending / args.pending:.1f}x the messages ({per_message:.2f}x the "
            "time per message)"
        )
    print(f"bench took {time.perf_counter() - started:.0f} s")
    return 0 if speed_ok and history_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
