"""Benchmark: an export dequeued, streamed into a blob and acked, against a raw download.

The D365 emulator runs in its own process (HTTPS on loopback) with the same file queued as
export messages, once per measured run; Azurite runs in its own process (data on disk). Each
measured run is a fresh child process, so the peak RSS growth printed is the exporter's alone
(VmHWM, reset with clear_refs before the run). Two modes, on the same file and emulator:

- ``baseline``: a dequeue, then ``requests.get(stream=True)`` of its DownloadLocation with the
  bearer token, the bytes read in 1 MiB chunks and thrown away (no storage at all);
- ``ingest``: no F&O at all: the file read from disk and staged into Azurite in 4 MiB blocks,
  4 at once, then committed: the ceiling Azurite's ingest sets;
- ``app``: ``context.exporter.tick`` of an export route with ``max_messages`` 1: the
  dequeue, the record, the download staged as blocks into Azurite, the commit with metadata,
  the record, the ack, the record.

    python bench/export_stream.py [--size-mib 512] [--repeat 3] [--link-mib-s 0]

``--link-mib-s`` makes the emulator send downloads no faster than that (a WAN link, as a real
environment is reached), for both modes alike.

Targets: app peak RSS growth <= 64 MiB and throughput >= 0.8x the baseline. On loopback the
raw download runs at TLS speed (over 1 GiB/s here) while Azurite, a Node process writing to
disk, takes blocks at about 200 MiB/s whatever the client: the app/ingest ratio shows how close
the exporter comes to that ceiling (``ingest``), and is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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

ACTIVITY_ID = "00000000-0000-0000-0000-0000000000b4"
IMPORT_ID = "00000000-0000-0000-0000-0000000000b5"
"""The job of the import route the settings need (unused; an export route may not take an
import route's job)."""
MODES = ("baseline", "ingest", "app")
INGEST_BLOCK = 4 * MIB
INGEST_BLOCKS = 4
CONTAINER = "bench-exports"
READ_CHUNK = MIB


@dataclass(frozen=True)
class Run:
    """One measured export."""

    mode: str
    seconds: float
    cpu_seconds: float
    rss_growth_mib: float
    size: int

    def mib_per_s(self) -> float:
        """Throughput of this run."""
        return self.size / MIB / self.seconds


# -- the measured child ------------------------------------------------------------------------


def _prepare_baseline(job: dict[str, Any]) -> Callable[[], int]:
    import requests

    session = requests.Session()

    def download() -> int:
        with _download(session, job) as response:
            return sum(len(chunk) for chunk in response.iter_content(chunk_size=READ_CHUNK))

    return download


def _download(session: Any, job: dict[str, Any]) -> Any:
    """Dequeue the next message and open its download (streamed)."""
    headers = {"Authorization": f"Bearer {job['token']}"}
    answer = session.get(
        f"{job['base_url']}/api/connector/dequeue/{ACTIVITY_ID}", headers=headers, timeout=60
    )
    answer.raise_for_status()
    location = answer.json()["DownloadLocation"]
    response = session.get(location, headers=headers, stream=True, timeout=(10, 600))
    response.raise_for_status()
    return response


def _prepare_ingest(job: dict[str, Any]) -> Callable[[], int]:
    from concurrent.futures import ThreadPoolExecutor

    from azure.storage.blob import BlobBlock, BlobServiceClient

    container = BlobServiceClient.from_connection_string(
        job["connection_string"]
    ).get_container_client(CONTAINER)
    if not container.exists():
        container.create_container()

    def ingest() -> int:
        blob = container.get_blob_client(f"ingest/{uuid.uuid4()}.zip")
        ids: list[str] = []
        with Path(job["path"]).open("rb") as source, ThreadPoolExecutor(INGEST_BLOCKS) as pool:
            futures = []
            while chunk := source.read(INGEST_BLOCK):
                ids.append(f"{len(ids):032d}")
                futures.append(pool.submit(blob.stage_block, ids[-1], chunk, length=len(chunk)))
                if len(futures) >= INGEST_BLOCKS:
                    futures.pop(0).result()
            for future in futures:
                future.result()
        blob.commit_block_list([BlobBlock(block_id) for block_id in ids])
        return int(blob.get_blob_properties().size)

    return ingest


def _prepare_app(job: dict[str, Any]) -> Callable[[], int]:
    from shared.config import Settings
    from shared.context import build_context
    from shared.tracking import ExportState

    settings = Settings.from_env(job["settings"])
    context = build_context(settings)
    context.credential.get_token(settings.d365.scope)  # the token is cached from here on

    def export() -> int:
        result = context.exporter.tick()
        page = context.exporter.store.list_records(limit=10)
        acked = [r for r in page.records if r.state is ExportState.ACKED]
        if result.acked != 1 or len(acked) != 1:
            raise RuntimeError(f"the app did not export one message: {result!r} {page!r}")
        return acked[0].size or 0

    return export


def child_main() -> None:
    """Run one export as told on stdin; print seconds and peak RSS growth as JSON."""
    job = json.loads(sys.stdin.read())
    prepare = {"baseline": _prepare_baseline, "ingest": _prepare_ingest, "app": _prepare_app}[
        job["mode"]
    ]
    # Import and build what the run uses before measuring, so the growth is the run's.
    measure_upload(prepare(job))


# -- the parent --------------------------------------------------------------------------------


def _app_settings(job: dict[str, Any]) -> dict[str, str]:
    """The app's settings for one run: a status table of its own (one record per run)."""
    route = {
        "name": "bench-out",
        "activity_id": ACTIVITY_ID,
        "container": CONTAINER,
        "prefix": "out/{message_id}/",
        "max_messages": 1,
    }
    unused = {"name": "unused", "prefix": "unused/", "activity_id": IMPORT_ID, "company": "X"}
    return app_settings(job, [unused], "export", EXPORT_ROUTES=json.dumps([route]))


def _measure(mode: str, job: dict[str, Any], emulator_pid: str, ca_file: str) -> Run:
    """One run in a child process (for measure_rounds; the emulator's RSS is not measured:
    it only reads the file it sends)."""
    if mode == "app":
        job = {**job, "settings": _app_settings(job)}
    # Azurite writes every block to disk: no run starts with another's write-back pending.
    os.sync()
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
                f"  round {index} {mode:<8} {run.seconds:6.2f} s  {run.mib_per_s():6.1f} MiB/s  "
                f"cpu {run.cpu_seconds:5.2f} s  RSS +{run.rss_growth_mib:5.1f} MiB"
            )
    ratios = [r["app"].mib_per_s() / r["baseline"].mib_per_s() for r in rounds]
    ratio = statistics.median(ratios)
    ceiling = [r["app"].mib_per_s() / r["ingest"].mib_per_s() for r in rounds]
    rss = max(r["app"].rss_growth_mib for r in rounds)
    for mode in MODES:
        runs = [r[mode] for r in rounds]
        print(
            f"{mode:<8} median {statistics.median(r.mib_per_s() for r in runs):6.1f} MiB/s, "
            f"peak RSS growth {max(r.rss_growth_mib for r in runs):.1f} MiB"
        )
    rss_ok, ratio_ok = rss <= RSS_TARGET_MIB, ratio >= THROUGHPUT_TARGET
    print(f"{'PASS' if rss_ok else 'FAIL'}  app peak RSS growth {rss:.1f} MiB (target <= 64 MiB)")
    print(
        f"{'PASS' if ratio_ok else 'FAIL'}  app/baseline throughput {ratio:.2f}x, median of "
        f"{', '.join(f'{r:.2f}' for r in ratios)} (target >= {THROUGHPUT_TARGET}x)"
    )
    print(
        f"INFO  app/ingest throughput {statistics.median(ceiling):.2f}x, median of "
        f"{', '.join(f'{r:.2f}' for r in ceiling)} (Azurite's ingest is the ceiling)"
    )
    return rss_ok and ratio_ok


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--link-mib-s", type=float, default=0.0, help="download speed limit (default none)"
    )


def _run(args: argparse.Namespace, work: Path) -> bool:
    path = work / "export.zip"
    print(f"writing {args.size_mib} MiB to {path}")
    _write_file(path, args.size_mib)
    # One message per run, warm-ups included; each ack takes one off the queue.
    runs = (args.repeat + 1) * len(MODES)
    exports = tuple(arg for _ in range(runs) for arg in ("--export", f"{ACTIVITY_ID}={path}"))
    exports += ("--download-mib-s", str(args.link_mib_s))
    jobs = jobs_file(work, activity_id=ACTIVITY_ID, name="Bench export")
    with loopback(work, None, jobs, emulator_args=exports) as (base, emulator_pid, ca_file):
        job = {**base, "path": str(path)}
        rounds = measure_rounds(_measure, MODES, job, emulator_pid, ca_file, repeat=args.repeat)
    link = f"a {args.link_mib_s:g} MiB/s link" if args.link_mib_s else "no link limit"
    print(f"export of {args.size_mib} MiB ({link}), {args.repeat} round(s) after a warm-up:")
    return _report(rounds, args.size_mib)


def main() -> int:
    """Parse the arguments, run the benchmark, print the figures; exit 1 when a target fails."""
    return stream_bench(__doc__, child_main, _run, name="export", repeat=3, options=_options)


if __name__ == "__main__":
    sys.exit(main())
