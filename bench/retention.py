"""Benchmark: a retention run over a table of final records, 90 % of them expired, and a poll
tick and a console first page while it runs beside the same without it.

Prints, measured in this run against Azurite and the D365 emulator (its own process, HTTPS,
20 ms per F&O call):

1. how long the table took to fill (record, blob-path and message-id index rows of each
   record, 100 to a transaction on 16 threads: ``bench/_seeding.py``);
2. a poll tick over ``--pending`` messages and the console's first page (the last 24 hours,
   50 records, through :func:`shared.views.files.list_messages`) without any deletion: the
   median of ``--repeat`` of each;
3. the retention run (:class:`shared.flows.retention.Retention`, at its pace of at most
   :data:`ROWS_PER_SECOND` rows a second and :data:`BUSY_SHARE` of the time with a
   transaction in flight, unless ``--rows-per-second`` / ``--busy-share`` say otherwise; 0:
   no bound): rows deleted, seconds, rows and ``$batch`` requests a second;
4. the same tick and page while the run deletes (medians), then again once it is over, and
   the ratio of the first to the median without deletion (before and after: the machine's
   other load drifts); target: at most 1.2x each.

Every expired record is final, its blob modified and its row last written 100 days ago; the
kept ones within the last 30 days. The pending messages are unknown to the emulator, which
answers ``Enqueued`` for them, so each tick polls them all; the tick's clock moves on an hour
a tick, so every entry is due at every tick.

Usage: ``python bench/retention.py [--records 1000000] [--pending 500] [--repeat 9]
[--rows-per-second 500]``. The full million (three million rows) takes Azurite about an hour
to fill on a 2-core machine and, at the default pace, one and a half hours to delete:
``--records 50000`` finishes in a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from azure.data.tables import TableClient, TableServiceClient  # noqa: E402
from azure.identity import ClientSecretCredential  # noqa: E402

from bench._loopback import JOBS, start_emulator  # noqa: E402
from bench._seeding import create_rows  # noqa: E402
from devtools.azurite import Azurite  # noqa: E402
from shared.clients.d365 import D365Client  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.config.retention import RetentionSettings  # noqa: E402
from shared.context import AppContext, build_context  # noqa: E402
from shared.flows.enqueue import Enqueuer  # noqa: E402
from shared.flows.policies import PollPolicy  # noqa: E402
from shared.flows.poll import Poller  # noqa: E402
from shared.flows.retention import (  # noqa: E402
    BUSY_SHARE,
    ROWS_PER_SECOND,
    Retention,
    RetentionReport,
    steps_for,
)
from shared.tracking import (  # noqa: E402
    ExportRetention,
    RecordRetention,
    TrackedFile,
    TrackingState,
    record_id_for,
    record_row_key,
    to_entity,
    utcnow,
)
from shared.tracking._codec import index_entity  # noqa: E402
from shared.tracking._keys import blob_index_key, message_key  # noqa: E402
from shared.views.files import list_messages  # noqa: E402

RATIO_TARGET = 1.2
EXPIRED_AGE = timedelta(days=100)
KEPT_SPREAD = timedelta(days=30)
RETENTION_DAYS = 90
ACTIVITY_ID = "00000000-0000-0000-0000-00000000a001"


def settings(connection_string: str, emulator_url: str) -> Settings:
    """The app's settings on Azurite, with a table of this run's own."""
    route = {"name": "customers", "prefix": "customers/{company}/", "activity_id": ACTIVITY_ID}
    config = json.loads(JOBS.read_text())
    return Settings.from_env(
        {
            "D365_BASE_URL": emulator_url,
            "D365_AUTHORITY_HOST": emulator_url,
            "D365_TENANT_ID": config["tenant_id"],
            "D365_CLIENT_ID": config["apps"][0]["client_id"],
            "D365_CLIENT_SECRET": config["apps"][0]["client_secret"],
            "D365_ROUTES": json.dumps([route]),
            "IntegrationStorage": connection_string,
            "STATUS_TABLE": "bench" + uuid.uuid4().hex[:12],
        }
    )


def seed_final(table: TableClient, count: int, expired_fraction: float) -> None:
    """``count`` final records with their two index rows (3 rows each), 100 to a transaction."""
    now = utcnow()
    expired = int(count * expired_fraction)

    def row(i: int) -> dict[str, Any]:
        n, kind = divmod(i, 3)
        if n < expired:
            modified = now - EXPIRED_AGE - timedelta(seconds=n)
        else:
            modified = now - KEPT_SPREAD * (n - expired) / max(1, count - expired)
        blob = f"customers/USMF/file-{n:07d}.xml"
        record_id = record_id_for(blob, f"etag-{n}")
        key = record_row_key(modified, record_id)
        message_id = str(uuid.UUID(int=n))
        if kind == 1:
            return index_entity(blob_index_key(blob, key), key)
        if kind == 2:
            return index_entity(message_key(message_id), key)
        return to_entity(
            TrackedFile(
                record_id=record_id,
                row_key=key,
                blob=blob,
                blob_etag=f"etag-{n}",
                state=TrackingState.PROCESSED,
                received_at=modified,
                updated_at=modified,
                completed_at=modified,
                enqueued_at=modified,
                route="customers",
                company="USMF",
                size=2048,
                message_id=message_id,
                d365_status="Processed",
                activity_id=ACTIVITY_ID,
                archived_to=f"d365-archive/Processed/{blob}",
                history=(("Received", modified.isoformat()), ("Processed", modified.isoformat())),
            )
        )

    create_rows(table, row, count * 3)


def seed_pending(context: AppContext, count: int) -> None:
    """``count`` enqueued messages on the schedule, as the enqueuer leaves them."""
    now = utcnow()
    for i in range(count):
        context.store.claim(
            f"customers/USMF/pending-{i}.xml",
            f"etag-p{i}",
            modified_at=now,
            state=TrackingState.ENQUEUED,
            schedule_at=now,
            message_id=str(uuid.uuid4()),
            enqueued_at=now,
            activity_id=ACTIVITY_ID,
        )


class HourPerTick:
    """The tick's clock: an hour later at every tick, so every entry is due each time."""

    def __init__(self) -> None:
        self.ticks = 0

    def __call__(self) -> datetime:
        return utcnow() + timedelta(hours=self.ticks)


class Requests:
    """The retention's storage requests (a raw-request hook), counted by kind."""

    def __init__(self) -> None:
        self.batches = 0
        self.others = 0

    def hook(self, request: Any) -> None:
        """azure-core raw_request_hook."""
        if request.http_request.url.endswith("$batch"):
            self.batches += 1
        else:
            self.others += 1


def main() -> int:
    """Seed, measure, print; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--expired", type=float, default=0.9, help="fraction expired")
    parser.add_argument("--pending", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--rows-per-second", type=float, default=ROWS_PER_SECOND)
    parser.add_argument("--busy-share", type=float, default=BUSY_SHARE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Azurite() as azurite:
        emulator = start_emulator(Path(tmp), latency_ms=args.latency_ms)
        os.environ["REQUESTS_CA_BUNDLE"] = os.environ["SSL_CERT_FILE"] = str(emulator.ca_file)
        try:
            return run(args, azurite.connection_string, emulator.base_url)
        finally:
            emulator.stop()


class Probes:
    """The two things measured beside the deletion: a poll tick and the console's first page."""

    def __init__(self, context: AppContext, emulator_url: str, pending: int) -> None:
        config = json.loads(JOBS.read_text())
        credential = ClientSecretCredential(
            config["tenant_id"], config["apps"][0]["client_id"],
            config["apps"][0]["client_secret"], authority=emulator_url,
            disable_instance_discovery=True,
        )  # fmt: skip
        self._context = context
        self._pending = pending
        self._clock = HourPerTick()
        self.client = D365Client(emulator_url, credential)
        self._poller = Poller(
            context.store,
            self.client,
            Enqueuer(context.store, self.client, context.settings.routes, context.inbound),
            context.inbound,
            policy=PollPolicy(max_pending_age=timedelta(days=3650)),
            clock=self._clock,
        )
        self._since = (utcnow() - timedelta(hours=24)).isoformat()

    def tick(self) -> float:
        """Seconds of one tick (every pending message polled)."""
        self._clock.ticks += 1
        started = time.perf_counter()
        report = self._poller.tick()
        seconds = time.perf_counter() - started
        assert report.counts.get("polled") == self._pending, report
        return seconds

    def page(self) -> float:
        """Seconds of the console's first page."""
        started = time.perf_counter()
        answer = list_messages(self._context, {"limit": "50", "since": self._since})
        seconds = time.perf_counter() - started
        assert answer.status == 200 and len(answer.body["items"]) == 50, answer.body
        return seconds


def retention_run(
    connection_string: str, table_name: str, pace: dict[str, float | None], requests: Requests
) -> Retention:
    """The retention flow on the benchmark's table, its requests counted, one run for all."""
    tables = TableServiceClient.from_connection_string(
        connection_string, raw_request_hook=requests.hook
    )
    records = RecordRetention(tables.get_table_client(table_name), **pace)
    exports = ExportRetention(tables.get_table_client(table_name), **pace)
    return Retention(
        records,
        exports,
        steps_for(RetentionSettings(records_days=RETENTION_DAYS), records, exports),
        budget=timedelta(hours=24),
        lease_span=timedelta(hours=25),
    )


def beside(run: Callable[[], RetentionReport], probes: Probes) -> tuple[Any, float, list, list]:
    """Run ``run`` in a thread, ticking and paging until it ends: its report, its seconds,
    the ticks' and the pages' seconds."""
    result: dict[str, Any] = {}

    def delete() -> None:
        begun = time.perf_counter()
        result["report"] = run()
        result["seconds"] = time.perf_counter() - begun

    worker = threading.Thread(target=delete, name="retention")
    worker.start()
    ticks: list[float] = []
    pages: list[float] = []
    time.sleep(1.0)  # the run's first batches are out
    while worker.is_alive():
        ticks.append(probes.tick())
        pages.append(probes.page())
    worker.join()
    return result["report"], result["seconds"], ticks, pages


def run(args: argparse.Namespace, connection_string: str, emulator_url: str) -> int:
    """The measurements of one run (see the module docstring)."""
    context = build_context(settings(connection_string, emulator_url))
    table_name = context.settings.status_table
    started = time.perf_counter()
    table = TableClient.from_connection_string(connection_string, table_name)
    seed_final(table, args.records, args.expired)
    seconds = time.perf_counter() - started
    print(
        f"seeded {args.records} final records ({args.records * 3} rows) in {seconds:.0f} s "
        f"({args.records * 3 / seconds:.0f} rows/s)",
        flush=True,
    )
    seed_pending(context, args.pending)
    probes = Probes(context, emulator_url, args.pending)
    probes.tick()  # warm: token, connections
    probes.page()
    quiet_ticks = [probes.tick() for _ in range(args.repeat)]
    quiet_pages = [probes.page() for _ in range(args.repeat)]
    print(
        f"without deletion, before: tick {statistics.median(quiet_ticks):.3f} s, "
        f"page {statistics.median(quiet_pages) * 1000:.0f} ms",
        flush=True,
    )

    requests = Requests()
    pace = {"rows_per_second": args.rows_per_second or None, "busy_share": args.busy_share or None}
    retention = retention_run(connection_string, table_name, pace, requests)
    report, seconds, ticks, pages = beside(retention.run, probes)
    rows = report.deleted["records"]
    expired_rows = int(args.records * args.expired) * 3
    print(
        f"retention run: {rows} rows of {expired_rows // 3} expired records deleted in "
        f"{seconds:.1f} s: {rows / seconds:.0f} rows/s, {requests.batches / seconds:.1f} "
        f"$batch/s ({requests.batches} batches, {requests.others} other requests), pace "
        f"{pace}; oldest kept {report.oldest_record}"
    )
    # Again once the run is over: a machine shared with other work drifts meanwhile.
    after_ticks = [probes.tick() for _ in range(args.repeat)]
    after_pages = [probes.page() for _ in range(args.repeat)]
    print(
        f"without deletion, after: tick {statistics.median(after_ticks):.3f} s, "
        f"page {statistics.median(after_pages) * 1000:.0f} ms"
    )
    quiet_tick = statistics.median(quiet_ticks + after_ticks)
    quiet_page = statistics.median(quiet_pages + after_pages)
    probes.client.close()
    context.close()
    if not ticks:
        print("the run ended before a tick could be measured beside it: use more --records")
        return 1
    tick_ratio = statistics.median(ticks) / quiet_tick
    page_ratio = statistics.median(pages) / quiet_page
    met = tick_ratio <= RATIO_TARGET and page_ratio <= RATIO_TARGET
    print(
        f"during deletion ({len(ticks)} of each): tick {statistics.median(ticks):.3f} s "
        f"({tick_ratio:.2f}x), page {statistics.median(pages) * 1000:.0f} ms "
        f"({page_ratio:.2f}x); target <= {RATIO_TARGET}x: {'met' if met else 'MISSED'}"
    )
    rate = rows / seconds
    print(
        f"extrapolated: {expired_rows} rows at {rate:.0f} rows/s take "
        f"{expired_rows / rate / 60:.0f} min; the default 5 min budget deletes about "
        f"{300 * rate:.0f} rows ({100 * rate:.0f} records) a run"
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
