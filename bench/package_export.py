"""Benchmark: a scheduled package export through the whole path, against a raw download and
upload of the same package.

The D365 emulator runs in its own process (HTTPS on loopback) and serves the same file as the
package of every ExportToPackage (``--export-package``, executions final at once); Azurite
runs in its own process (data on disk). Each measured run is a fresh child process, so the
peak RSS growth printed is that run's alone (VmHWM, reset with clear_refs before the run).
Two modes, on the same package and emulator:

- ``raw``: ExportToPackage and GetExportedPackageUrl first (not measured), then the measured
  part: ``requests.get(stream=True)`` of the package's SAS URL, its bytes staged into Azurite
  as 4 MiB blocks, 4 at once, and committed: the download-and-upload with nothing else;
- ``app``: ``context.exporter.tick`` with one package export route whose daily slot was
  missed: the slot claimed on the route's row, the record, ExportToPackage, the record,
  GetExecutionSummaryStatus, GetExportedPackageUrl, the package streamed from its SAS URL
  (URL checks) into staged blocks of the target blob, the commit with metadata, the record
  Delivered, the row.

    python bench/package_export.py [--size-mib 512] [--repeat 3] [--link-mib-s 0]

Targets: app peak RSS growth <= 64 MiB and throughput >= 0.8x the raw run's.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.enqueue_stream import (  # noqa: E402
    MIB,
    RSS_TARGET_MIB,
    THROUGHPUT_TARGET,
    _write_file,
    app_settings,
    child_answer,
    jobs_file,
    loopback,
    measure_rounds,
    measure_upload,
    stream_bench,
)

IMPORT_ID = "00000000-0000-0000-0000-0000000000b6"
"""The job of the import route the settings need (unused)."""
MODES = ("raw", "app")
BLOCK = 4 * MIB
BLOCKS_IN_FLIGHT = 4
CONTAINER = "bench-pkgexports"
ROUTE = "bench-daily"
PROJECT = "CustomersExport"


@dataclass(frozen=True)
class Run:
    """One measured package export."""

    mode: str
    seconds: float
    cpu_seconds: float
    rss_growth_mib: float
    size: int

    def mib_per_s(self) -> float:
        """Throughput of this run."""
        return self.size / MIB / self.seconds


# -- the measured child ------------------------------------------------------------------------


def _package_url(session: Any, job: dict[str, Any]) -> str:
    """ExportToPackage, then its package's SAS URL (the execution is final at once)."""
    headers = {"Authorization": f"Bearer {job['token']}"}
    actions = (
        f"{job['base_url']}/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
    )
    execution = f"raw-{uuid.uuid4().hex}"
    body = {
        "definitionGroupId": PROJECT,
        "packageName": execution,
        "executionId": execution,
        "reExecute": False,
        "legalEntityId": "USMF",
    }
    session.post(
        actions + "ExportToPackage", json=body, headers=headers, timeout=60
    ).raise_for_status()
    answer = session.post(
        actions + "GetExportedPackageUrl",
        json={"executionId": execution},
        headers=headers,
        timeout=60,
    )
    answer.raise_for_status()
    return str(answer.json()["value"])


def _prepare_raw(job: dict[str, Any]) -> Callable[[], int]:
    from concurrent.futures import ThreadPoolExecutor

    import requests
    from azure.storage.blob import BlobBlock, BlobServiceClient

    session = requests.Session()
    url = _package_url(session, job)
    container = BlobServiceClient.from_connection_string(
        job["connection_string"]
    ).get_container_client(CONTAINER)
    if not container.exists():
        container.create_container()

    def download_and_upload() -> int:
        blob = container.get_blob_client(f"raw/{uuid.uuid4()}.zip")
        ids: list[str] = []
        buffer = bytearray()
        with (
            session.get(url, stream=True, timeout=(10, 600)) as response,
            ThreadPoolExecutor(BLOCKS_IN_FLIGHT) as pool,
        ):
            response.raise_for_status()
            futures: list[Any] = []

            def stage(data: bytes) -> None:
                ids.append(f"{len(ids):032d}")
                futures.append(pool.submit(blob.stage_block, ids[-1], data, length=len(data)))
                if len(futures) >= BLOCKS_IN_FLIGHT:
                    futures.pop(0).result()

            for chunk in response.iter_content(chunk_size=BLOCK):
                buffer += chunk
                while len(buffer) >= BLOCK:
                    stage(bytes(buffer[:BLOCK]))
                    del buffer[:BLOCK]
            if buffer:
                stage(bytes(buffer))
            for future in futures:
                future.result()
        blob.commit_block_list([BlobBlock(block_id) for block_id in ids])
        return int(blob.get_blob_properties().size)

    return download_and_upload


def _prepare_app(job: dict[str, Any]) -> Callable[[], int]:
    from shared.config import Settings
    from shared.context import build_context
    from shared.tracking import PackageExportRecord, PackageExportState

    settings = Settings.from_env(job["settings"])
    context = build_context(settings)
    context.credential.get_token(settings.d365.scope)  # the token is cached from here on
    packages = context.exporter.packages
    assert packages is not None
    # The route's daily slot was missed: the tick claims it at once.
    missed = datetime.now(UTC) - timedelta(days=2)
    packages.store.claim_slot(packages.store.route_run(ROUTE), slot=missed, execution_id="")

    def export() -> int:
        context.exporter.tick()
        page = context.exporter.store.list_records(limit=10)
        done = [
            r
            for r in page.records
            if isinstance(r, PackageExportRecord) and r.state is PackageExportState.DELIVERED
        ]
        if len(done) != 1:
            raise RuntimeError(f"the app did not deliver one package: {page!r}")
        return done[0].size or 0

    return export


def child_main() -> None:
    """Run one export as told on stdin; print seconds and peak RSS growth as JSON."""
    job = json.loads(sys.stdin.read())
    prepare = {"raw": _prepare_raw, "app": _prepare_app}[job["mode"]]
    # Import and build what the run uses before measuring, so the growth is the run's.
    measure_upload(prepare(job))


# -- the parent --------------------------------------------------------------------------------


def _app_settings(job: dict[str, Any]) -> dict[str, str]:
    """The app's settings for one run: a status table of its own (a route row of its own)."""
    route = {
        "name": ROUTE,
        "definition_group": PROJECT,
        "legal_entity": "USMF",
        "schedule": "0 0 0 * * *",
        "container": CONTAINER,
        "prefix": "out/{message_id}/",
    }
    unused = {"name": "unused", "prefix": "unused/", "activity_id": IMPORT_ID, "company": "X"}
    return app_settings(
        job,
        [unused],
        "pkgexport",
        PACKAGE_EXPORT_ROUTES=json.dumps([route]),
        D365_SAS_HOSTS="127.0.0.1",
    )


def _measure(mode: str, job: dict[str, Any], emulator_pid: str, ca_file: str) -> Run:
    """One run in a child process (for measure_rounds)."""
    if mode == "app":
        job = {**job, "settings": _app_settings(job)}
    os.sync()  # Azurite writes every block to disk: no run starts with write-back pending
    result = child_answer(__file__, {**job, "mode": mode}, ca_file)
    return Run(
        mode=mode,
        seconds=result["seconds"],
        cpu_seconds=result["cpu_seconds"],
        rss_growth_mib=result["rss_growth_kib"] / 1024,
        size=result["result"],
    )


def _report(rounds: list[dict[str, Run]], size_mib: int) -> bool:
    for index, by_mode in enumerate(rounds, start=1):
        for mode in MODES:
            run = by_mode[mode]
            if run.size != size_mib * MIB:
                raise RuntimeError(f"{mode} moved {run.size} bytes, not {size_mib} MiB")
            print(
                f"  round {index} {mode:<4} {run.seconds:6.2f} s  {run.mib_per_s():6.1f} MiB/s  "
                f"cpu {run.cpu_seconds:5.2f} s  RSS +{run.rss_growth_mib:5.1f} MiB"
            )
    ratios = [r["app"].mib_per_s() / r["raw"].mib_per_s() for r in rounds]
    ratio = statistics.median(ratios)
    rss = max(r["app"].rss_growth_mib for r in rounds)
    for mode in MODES:
        runs = [r[mode] for r in rounds]
        print(
            f"{mode:<4} median {statistics.median(r.mib_per_s() for r in runs):6.1f} MiB/s, "
            f"peak RSS growth {max(r.rss_growth_mib for r in runs):.1f} MiB"
        )
    rss_ok, ratio_ok = rss <= RSS_TARGET_MIB, ratio >= THROUGHPUT_TARGET
    print(f"{'PASS' if rss_ok else 'FAIL'}  app peak RSS growth {rss:.1f} MiB (target <= 64 MiB)")
    print(
        f"{'PASS' if ratio_ok else 'FAIL'}  app/raw throughput {ratio:.2f}x, median of "
        f"{', '.join(f'{r:.2f}' for r in ratios)} (target >= {THROUGHPUT_TARGET}x)"
    )
    return rss_ok and ratio_ok


def _options(parser: Any) -> None:
    parser.add_argument(
        "--link-mib-s", type=float, default=0.0, help="download speed limit (default none)"
    )


def _run(args: Any, work: Path) -> bool:
    path = work / "package.zip"
    print(f"writing {args.size_mib} MiB to {path}")
    _write_file(path, args.size_mib)
    emulator = (
        "--export-package", str(path),
        "--package-export-seconds", "0",
        "--package-url-delay-seconds", "0",
        "--download-mib-s", str(args.link_mib_s),
    )  # fmt: skip
    jobs = jobs_file(work, activity_id=IMPORT_ID, name="Bench package export")
    with loopback(work, None, jobs, emulator_args=emulator) as (base, emulator_pid, ca_file):
        rounds = measure_rounds(_measure, MODES, base, emulator_pid, ca_file, repeat=args.repeat)
    link = f"a {args.link_mib_s:g} MiB/s link" if args.link_mib_s else "no link limit"
    print(
        f"package export of {args.size_mib} MiB ({link}), {args.repeat} round(s) after a warm-up:"
    )
    return _report(rounds, args.size_mib)


def main() -> int:
    """Parse the arguments, run the benchmark, print the figures; exit 1 when a target fails."""
    return stream_bench(
        __doc__, child_main, _run, name="package-export", repeat=3, options=_options
    )


if __name__ == "__main__":
    sys.exit(main())
