"""Benchmark: a large package through the whole package path, against a raw PUT of the same
blob to the same SAS endpoint.

The D365 emulator runs in its own process (HTTPS on loopback; its blob endpoint spools PUT
bodies to disk), as does Azurite (data on disk), and each measured run is a fresh child
process, so the peak RSS growth printed is that run's alone (VmHWM, reset before the run).
Two runs of the same package blob (a zip of Manifest.xml, PackageHeader.xml and one large
entity file) in Azurite:

- ``raw``: the blob streamed from Azurite into one ``requests.put`` to a SAS URL of the
  emulator's (GetAzureWriteUrl called before measuring), ``x-ms-blob-type: BlockBlob``;
- ``app``: the whole package path, a blob-trigger delivery to ``context.enqueuer.handle`` on
  a package route: properties, claim, the manifest read by range, GetAzureWriteUrl, the
  upload in 4 MiB blocks and its block list, the import lease, the ``Importing`` write and
  ImportFromPackage, with a status table and a route name of its own per run (so each run is
  a new claim and execution id).

    python bench/package_import.py [--size-mib 512] [--repeat 3]

Targets: app peak RSS growth <= 64 MiB and throughput >= 0.8x the raw PUT's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.enqueue_stream import (  # noqa: E402
    BLOB_NAME,
    CLIENT_ID,
    CLIENT_SECRET,
    INBOUND,
    MIB,
    PIPE_CHUNK,
    TENANT_ID,
    WRITE_BLOCK,
    Run,
    _judge,
    _SizedChunks,
    app_settings,
    loopback,
    measure_rounds,
    measure_upload,
    prepare_app,
    run_child,
    stream_bench,
)

ENTITY = "Bench entity"
PROJECT = "BenchPackage"
MODES = ("raw", "app")
_MANIFEST = (
    '<?xml version="1.0" encoding="utf-8"?><DataManagementPackageManifest '
    'xmlns="http://schemas.microsoft.com/dynamics/2015/01/DataManagement">'
    f"<DefinitionGroupName>{PROJECT}</DefinitionGroupName><PackageEntityList>"
    f"<DataManagementPackageEntityData><EntityName>{ENTITY}</EntityName>"
    "<InputFilePath>Bench.csv</InputFilePath></DataManagementPackageEntityData>"
    "</PackageEntityList></DataManagementPackageManifest>"
)
_HEADER = (
    '<?xml version="1.0" encoding="utf-8"?><DataManagementPackageHeader '
    'xmlns="http://schemas.microsoft.com/dynamics/2015/01/DataManagement">'
    "<PackageVersion>2</PackageVersion></DataManagementPackageHeader>"
)


# -- the measured child ------------------------------------------------------------------------


def _action(job: dict[str, Any], action: str, body: dict[str, Any]) -> Any:
    import requests

    url = f"{job['base_url']}/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
    response = requests.post(
        url + action,
        json=body,
        headers={"Authorization": f"Bearer {job['token']}"},
        timeout=(10, 60),
    )
    response.raise_for_status()
    return response.json()["value"]


def _prepare_raw(job: dict[str, Any]) -> Callable[[], str]:
    import requests
    from azure.storage.blob import BlobClient

    sas_url = json.loads(_action(job, "GetAzureWriteUrl", {"uniqueFileName": uuid.uuid4().hex}))[
        "BlobUrl"
    ]
    blob = BlobClient.from_connection_string(
        job["connection_string"],
        INBOUND,
        BLOB_NAME,
        max_single_get_size=PIPE_CHUNK,
        max_chunk_get_size=PIPE_CHUNK,
    )
    blob.get_blob_properties()  # connection and code paths warm

    def upload() -> str:
        with requests.put(
            sas_url,
            data=_SizedChunks(blob.download_blob()),
            headers={"x-ms-blob-type": "BlockBlob", "Content-Type": "application/zip"},
            timeout=(10, 600),
        ) as response:
            response.raise_for_status()
            return str(response.status_code)

    return upload


def child_main() -> None:
    """Run one upload as told on stdin; print seconds and peak RSS growth as JSON."""
    job = json.loads(sys.stdin.read())
    if job["mode"] == "raw":
        measure_upload(_prepare_raw(job))
    else:
        measure_upload(prepare_app(job, "Importing"))


# -- the parent --------------------------------------------------------------------------------


def _write_package(path: Path, size_mib: int) -> None:
    """A package zip whose entity file is `size_mib` MiB of random blocks (stored), written
    block by block."""
    block = os.urandom(WRITE_BLOCK)
    info = zipfile.ZipInfo("Bench.csv", time.localtime()[:6])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("Manifest.xml", _MANIFEST)
        archive.writestr("PackageHeader.xml", _HEADER)
        with archive.open(info, "w", force_zip64=True) as entry:
            remaining = size_mib * MIB
            while remaining:
                count = min(remaining, WRITE_BLOCK)
                entry.write(os.urandom(16) + block[16:count])
                remaining -= count


def _jobs_file(work: Path) -> Path:
    jobs = work / "jobs.json"
    jobs.write_text(
        json.dumps(
            {
                "tenant_id": TENANT_ID,
                "apps": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}],
                "jobs": [
                    {
                        "activity_id": "00000000-0000-0000-0000-0000000000b4",
                        "entity": ENTITY,
                        "name": "Bench entity (makes it known to the package import)",
                        "allowed_client_ids": [CLIENT_ID],
                    }
                ],
            }
        )
    )
    return jobs


def _app_settings(job: dict[str, Any]) -> dict[str, str]:
    run = uuid.uuid4().hex[:12]
    route = {
        "name": f"bench-{run}",
        "prefix": "bench/",
        "api": "package",
        "definition_group": PROJECT,
        "company": "USMF",
        "max_bytes": "1GiB",
    }
    # The emulator's blob endpoint (GetAzureWriteUrl's SAS URLs) is on its own loopback host.
    return app_settings(job, [route], "package", D365_SAS_HOSTS="127.0.0.1")


def _measure(mode: str, job: dict[str, Any], emulator_pid: str, ca_file: str) -> Run:
    if mode == "app":
        job = {**job, "settings": _app_settings(job)}
    run = run_child(__file__, mode, job, emulator_pid, ca_file)
    if mode == "app":
        _wait_for_execution(job, run.status)
    return run


def _wait_for_execution(job: dict[str, Any], execution_id: str) -> None:
    """Wait until the emulator has unpacked the package (after the import call answered), so
    its disk work does not slow the next run."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = _action(job, "GetExecutionSummaryStatus", {"executionId": execution_id})
        if status not in ("NotRun", "Executing", "Unknown"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"execution {execution_id} did not end")


def _report(rounds: list[dict[str, Run]], size_mib: float) -> bool:
    for index, by_mode in enumerate(rounds, start=1):
        for mode in MODES:
            run = by_mode[mode]
            print(
                f"  round {index} {mode:<4} {run.seconds:6.2f} s  "
                f"{run.mib_per_s(size_mib):6.1f} MiB/s  cpu {run.cpu_seconds:5.2f} s  "
                f"RSS +{run.rss_growth_mib:5.1f} MiB"
            )
    return _judge(rounds, size_mib, "app", "raw")


def _run(args: argparse.Namespace, work: Path) -> bool:
    path = work / "package.zip"
    print(f"writing a package with a {args.size_mib} MiB entity file to {path}")
    _write_package(path, args.size_mib)
    size_mib = path.stat().st_size / MIB
    with loopback(work, path, _jobs_file(work)) as (job, emulator_pid, ca_file):
        rounds = measure_rounds(_measure, MODES, job, emulator_pid, ca_file, repeat=args.repeat)
    print(f"package of {size_mib:.1f} MiB, {args.repeat} round(s) after a warm-up:")
    return _report(rounds, size_mib)


def main() -> int:
    """Parse the arguments, run the benchmark, print the figures; exit 1 when a target fails."""
    return stream_bench(
        __doc__, child_main, _run, name="package", repeat=3, size_help="entity file size (512)"
    )


if __name__ == "__main__":
    sys.exit(main())
