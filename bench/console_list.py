"""Benchmark: the console's list view over 50,000 records, beside a plain first page.

Prints, measured in this run against Azurite (the same table, the same process):

1. the first page of the console's default list (``/api/messages?since=<24 h ago>&limit=50``,
   what the page asks for when it opens) beside ``GET /api/messages?limit=50``;
   target: at most 1.5x;
2. for information, the console's filtered first pages (a state, a blob-name prefix, a
   company) and its counts over the last hour, day and 30 days, with and without the chart's
   hours (``interval=hour``: the same one query);
3. the table queries each of them made (their ``$filter``, ``$select`` and pages), to show
   that every one is bounded by row key: none reads the table from end to end.

Both go through :mod:`shared.views.files` and :mod:`shared.views.counts`, the functions the HTTP
routes call, so they include building each record's JSON. The records are spread over 30 days
(one every 52 s), 2 % of them failed, on three routes and companies; they are written 100 to a
transaction.

Usage: ``python bench/console_list.py [--records 50000] [--repeat 15]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from azure.data.tables import TableClient  # noqa: E402

from bench._seeding import create_rows  # noqa: E402
from devtools.azurite import Azurite  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.context import AppContext, build_context  # noqa: E402
from shared.tracking import (  # noqa: E402
    TrackedFile,
    TrackingState,
    record_id_for,
    record_row_key,
    to_entity,
    utcnow,
)
from shared.views.counts import counts  # noqa: E402
from shared.views.files import list_messages  # noqa: E402
from shared.views.response import ApiResponse  # noqa: E402

RATIO_TARGET = 1.5
SPREAD = timedelta(days=30)
ROUTES = (("customers", "USMF"), ("journal", "DEMF"), ("vendors", "GBSI"))
_ACTIVITY_ID = "00000000-0000-0000-0000-00000000a001"


def settings(connection_string: str) -> Settings:
    """The app's settings on Azurite, with a table of this run's own."""
    routes = [
        {"name": name, "prefix": f"{name}/{{company}}/", "activity_id": _ACTIVITY_ID}
        for name, _ in ROUTES
    ]
    return Settings.from_env(
        {
            # Never called: the benchmark reads the status table only.
            "D365_BASE_URL": "https://127.0.0.1:9",
            "D365_TENANT_ID": str(uuid.uuid4()),
            "D365_CLIENT_ID": str(uuid.uuid4()),
            "D365_CLIENT_SECRET": "bench-not-a-secret",
            "D365_ROUTES": json.dumps(routes),
            "IntegrationStorage": connection_string,
            "STATUS_TABLE": "bench" + uuid.uuid4().hex[:12],
        }
    )


def seed(table: TableClient, count: int) -> None:
    """``count`` final records over the last 30 days, 100 to a transaction."""
    now = utcnow()
    step = SPREAD / count

    def record(i: int) -> dict[str, Any]:
        route, company = ROUTES[i % len(ROUTES)]
        blob = f"{route}/{company}/file-{i:06d}.xml"
        record_id = record_id_for(blob, f"etag-{i}")
        modified = now - step * i
        failed = i % 50 == 7
        state = TrackingState.PROCESSED_WITH_ERRORS if failed else TrackingState.PROCESSED
        return to_entity(
            TrackedFile(
                record_id=record_id,
                row_key=record_row_key(modified, record_id),
                blob=blob,
                blob_etag=f"etag-{i}",
                state=state,
                received_at=modified,
                updated_at=modified,
                completed_at=modified,
                enqueued_at=modified,
                route=route,
                company=company,
                size=2048,
                message_id=str(uuid.uuid4()),
                d365_status=state.value,
                activity_id=_ACTIVITY_ID,
                error_count=3 if failed else 0,
                archived_to=f"d365-archive/{state.value}/{blob}",
                history=(("Received", modified.isoformat()), (state.value, modified.isoformat())),
            )
        )

    create_rows(table, record, count)


class Queries:
    """The table queries the clients send (a raw-request hook), for printing."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def hook(self, request: Any) -> None:
        """azure-core raw_request_hook: keep a table query's filter, select and paging."""
        parts = urlsplit(request.http_request.url)
        query = parse_qs(parts.query)
        if request.http_request.method == "GET" and "$filter" in query:
            text = query["$filter"][0]
            for name in ("$select", "$top", "NextRowKey"):
                if name in query:
                    text += f"  {name}={query[name][0][:40]}"
            self.seen.append(text)


def timed(call: Callable[[], ApiResponse], repeat: int) -> tuple[float, ApiResponse]:
    """Median seconds of ``repeat`` calls, and the last answer."""
    times = []
    answer = call()  # warm: connections, caches
    for _ in range(repeat):
        started = time.perf_counter()
        answer = call()
        times.append(time.perf_counter() - started)
        assert answer.status == 200, answer.body
    return statistics.median(times), answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    queries = Queries()
    with Azurite() as azurite:
        context: AppContext = build_context(
            settings(azurite.connection_string), storage_options={"raw_request_hook": queries.hook}
        )
        started = time.perf_counter()
        seed(
            TableClient.from_connection_string(
                azurite.connection_string, context.settings.status_table
            ),
            args.records,
        )
        print(f"seeded {args.records} records in {time.perf_counter() - started:.1f} s")
        now = utcnow()
        day_ago = (now - timedelta(hours=24)).isoformat()

        def listing(**params: str) -> Callable[[], ApiResponse]:
            return lambda: list_messages(context, {"limit": "50", **params})

        def counting(period: timedelta, **params: str) -> Callable[[], ApiResponse]:
            since = (now - period).isoformat()
            return lambda: counts(lambda: context, {"since": since, **params})

        cases = [
            ("plain GET /api/messages?limit=50", listing()),
            ("console list (last 24 h)", listing(since=day_ago)),
            ("console list, failed state", listing(since=day_ago, state="ProcessedWithErrors")),
            ("console list, prefix=journal/DEMF/", listing(since=day_ago, prefix="journal/DEMF/")),
            ("console list, company=GBSI", listing(since=day_ago, company="GBSI")),
            ("counts, last hour", counting(timedelta(hours=1))),
            ("counts, last 24 h", counting(timedelta(hours=24))),
            ("counts, last 30 days", counting(SPREAD)),
            ("counts by hour, last 24 h", counting(timedelta(hours=24), interval="hour")),
            ("counts by hour, last 30 days", counting(SPREAD, interval="hour")),
        ]  # fmt: skip
        results: dict[str, float] = {}
        for label, call in cases:
            queries.seen.clear()
            seconds, answer = timed(call, args.repeat)
            results[label] = seconds
            size = len(answer.body.get("items", [])) or answer.body.get("total")
            made = queries.seen[: max(1, len(queries.seen) // (args.repeat + 1))]
            print(f"{label:>42}: {seconds * 1000:8.1f} ms  ({size} items/total)")
            print(f"{'':>44}query: {made[0]}")
            if len(made) > 1:
                print(f"{'':>44}  then {len(made) - 1} more page(s) of the same query")
        context.close()
    plain = results["plain GET /api/messages?limit=50"]
    console = results["console list (last 24 h)"]
    ratio = console / plain
    met = ratio <= RATIO_TARGET
    print(
        f"console list / plain first page: {ratio:.2f}x (target <= {RATIO_TARGET}x): "
        f"{'met' if met else 'MISSED'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
