"""Benchmark: streaming a large file to F&O, from disk and from a blob, against plain requests.

The D365 emulator runs in its own process (HTTPS on loopback; it spools bodies to disk), as does
Azurite (data on disk), and each measured upload runs in a fresh child process, so the peak RSS
growth printed is the uploader's alone (VmHWM, reset with clear_refs before the upload). Four
uploads of the same bytes to the same enqueue endpoint:

- ``baseline``: the file on disk, ``requests.post`` of the open file, a bearer token;
- ``client``: the file on disk through ``D365Client.enqueue``;
- ``pipe``: the blob in Azurite streamed into a ``requests.post`` (the SDK's download in 4 MiB
  ranges, each range handed to the socket as it arrives, with a Content-Length);
- ``app``: the whole path: a blob-trigger delivery of the blob to ``context.enqueuer.handle``
  (properties, claim, download in ranges, enqueue, record, stamp), on a status table of its own
  per upload, with the app's own credential (its token fetched before the upload).

    python bench/enqueue_stream.py [--size-mib 512] [--repeat 4]

Targets: client peak RSS growth <= 64 MiB and throughput >= 0.8x the baseline; app peak RSS
growth <= 64 MiB and throughput >= 0.8x the pipe.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench._loopback import start_emulator  # noqa: E402

MIB = 1024 * 1024
RSS_TARGET_MIB = 64.0
THROUGHPUT_TARGET = 0.8
TENANT_ID = "faketenant"
CLIENT_ID = "00000000-0000-0000-0000-0000000000b1"
# A throwaway value for the loopback emulator only; not a secret.
CLIENT_SECRET = "bench-secret-not-real"  # noqa: S105
ACTIVITY_ID = "00000000-0000-0000-0000-0000000000b3"
WRITE_BLOCK = 4 * MIB
PIPE_CHUNK = 4 * MIB
"""Bytes per ranged GET of the pipe's download: what the app's blob client uses too
(shared.clients.storage.STREAM_CHUNK), so both hold the same few MiB."""
INBOUND = "stream-inbound"
BLOB_NAME = "bench/payload.zip"
MODES = ("baseline", "client", "pipe", "app")
PAIRS = (("client", "baseline"), ("app", "pipe"))
"""(measured, its baseline): each pair has both targets."""
R = TypeVar("R")


@dataclass(frozen=True)
class Run:
    """One measured upload."""

    mode: str
    seconds: float
    cpu_seconds: float
    rss_growth_mib: float
    emulator_rss_growth_mib: float
    status: str

    def mib_per_s(self, size_mib: int) -> float:
        """Throughput of this run."""
        return size_mib / self.seconds


# -- the measured child ------------------------------------------------------------------------


def _proc_status_kib(pid: str, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {field} in /proc/{pid}/status")
    return int(match.group(1))


def _reset_peak(pid: str) -> None:
    """Reset VmHWM (the peak RSS) to the current RSS (Linux: clear_refs "5")."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class _FixedToken:
    """A TokenCredential that hands out one token (fetched by the parent)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)


def _enqueue_url(job: dict[str, Any]) -> str:
    return f"{job['base_url']}/api/connector/enqueue/{job['activity_id']}"


def _post(job: dict[str, Any], body: Any) -> str:
    import requests

    with requests.post(
        _enqueue_url(job),
        data=body,
        headers={"Authorization": f"Bearer {job['token']}"},
        timeout=(10, 600),
    ) as response:
        response.raise_for_status()
        return response.text.strip()


def _prepare_baseline(job: dict[str, Any]) -> Callable[[], str]:
    import requests  # noqa: F401 - imported before measuring

    def upload() -> str:
        with Path(job["path"]).open("rb") as body:
            return _post(job, body)

    return upload


def _prepare_client(job: dict[str, Any]) -> Callable[[], str]:
    from shared.clients.d365 import D365Client

    path = Path(job["path"])

    def upload() -> str:
        with D365Client(job["base_url"], _FixedToken(job["token"]), read_timeout=600) as client:
            result = client.enqueue(
                job["activity_id"], lambda: path.open("rb"), external_id=path.name
            )
        return result.message_id

    return upload


class _SizedChunks:
    """A blob download as an iterable body with a length: requests sends it with a
    Content-Length, each chunk as it arrives."""

    def __init__(self, downloader: Any) -> None:
        self._downloader = downloader

    def __len__(self) -> int:
        return int(self._downloader.size)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._downloader.chunks())


def _prepare_pipe(job: dict[str, Any]) -> Callable[[], str]:
    import requests  # noqa: F401 - imported before measuring
    from azure.storage.blob import BlobClient

    blob = BlobClient.from_connection_string(
        job["connection_string"],
        INBOUND,
        BLOB_NAME,
        max_single_get_size=PIPE_CHUNK,
        max_chunk_get_size=PIPE_CHUNK,
    )
    blob.get_blob_properties()  # connection and code paths warm

    def upload() -> str:
        return _post(job, _SizedChunks(blob.download_blob()))

    return upload


def prepare_app(job: dict[str, Any], expect: str) -> Callable[[], str]:
    """The whole path: one blob-trigger delivery to `context.enqueuer.handle`, which must
    leave the record in state `expect`; the upload answers its message or execution id."""
    from shared.config import Settings
    from shared.context import build_context

    settings = Settings.from_env(job["settings"])
    context = build_context(settings)
    context.credential.get_token(settings.d365.scope)  # the token is cached from here on
    blob = context.blob_service.get_blob_client(INBOUND, BLOB_NAME)

    def upload() -> str:
        record = context.enqueuer.handle(blob)
        if record is None or record.state.value != expect:
            raise RuntimeError(f"the app did not take the blob to {expect}: {record!r}")
        return record.message_id or record.execution_id or ""

    return upload


def _prepare_app(job: dict[str, Any]) -> Callable[[], str]:
    return prepare_app(job, "Enqueued")


def child_main() -> None:
    """Run one upload as told on stdin; print seconds and peak RSS growth as JSON."""
    job = json.loads(sys.stdin.read())
    prepare = {
        "baseline": _prepare_baseline,
        "client": _prepare_client,
        "pipe": _prepare_pipe,
        "app": _prepare_app,
    }[job["mode"]]
    # Import and build what the upload uses before measuring, so the growth is the upload's.
    measure_upload(prepare(job))


def measure_upload(upload: Callable[[], Any]) -> None:
    """Run the upload; print its seconds, CPU, peak RSS growth and what it returned (its
    ``result``: a status, or the bytes an export moved) as JSON (for child_answer)."""
    before = _proc_status_kib("self", "VmRSS")
    _reset_peak("self")
    started = time.perf_counter()
    cpu_started = time.process_time()
    answer = upload()
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    peak = _proc_status_kib("self", "VmHWM")
    figures = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rss_growth_kib": peak - before,
        "result": answer,
    }
    json.dump(figures, sys.stdout)


# -- the parent: emulator, Azurite, file, runs, report -----------------------------------------


def _write_file(path: Path, size_mib: int) -> None:
    """Random bytes written block by block (never the whole file in memory)."""
    block = os.urandom(WRITE_BLOCK)
    remaining = size_mib * MIB
    with path.open("wb") as handle:
        while remaining:
            count = min(remaining, WRITE_BLOCK)
            # A fresh prefix per block keeps blocks distinct without generating 512 MiB.
            handle.write(os.urandom(16) + block[16:count])
            remaining -= count


def jobs_file(
    work: Path, *, activity_id: str = ACTIVITY_ID, name: str = "Bench package import"
) -> Path:
    """A jobs file of the bench's tenant and app with one job the app may use (by default
    this bench's enqueue job; bench/export_stream.py names its export job)."""
    jobs = work / "jobs.json"
    jobs.write_text(
        json.dumps(
            {
                "tenant_id": TENANT_ID,
                "apps": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}],
                "jobs": [
                    {
                        "activity_id": activity_id,
                        "name": name,
                        "allowed_client_ids": [CLIENT_ID],
                    }
                ],
            }
        )
    )
    return jobs


def _token(base_url: str, ca_file: str) -> str:
    from azure.identity import ClientSecretCredential

    os.environ["REQUESTS_CA_BUNDLE"] = ca_file
    with ClientSecretCredential(
        TENANT_ID,
        CLIENT_ID,
        CLIENT_SECRET,
        authority=base_url,
        disable_instance_discovery=True,
    ) as credential:
        return credential.get_token(f"{base_url.lower()}/.default").token


def _upload_blob(connection_string: str, path: Path) -> float:
    """Put the file into Azurite as the inbound blob; returns the seconds it took."""
    from azure.storage.blob import BlobServiceClient

    container = BlobServiceClient.from_connection_string(connection_string).get_container_client(
        INBOUND
    )
    container.create_container()
    started = time.perf_counter()
    with path.open("rb") as data:
        container.upload_blob(BLOB_NAME, data, length=path.stat().st_size, max_concurrency=4)
    return time.perf_counter() - started


def app_settings(
    job: dict[str, Any], routes: list[dict[str, Any]], name: str, **more: str
) -> dict[str, str]:
    """The app's settings for one run against the loopback stack (shared with the package
    and export benches): ``routes`` as D365_ROUTES, a status table of its own (so each run is
    a new claim, not a duplicate delivery of a version already sent), containers named
    after ``name``, then ``more``."""
    return {
        "D365_BASE_URL": job["base_url"],
        "D365_AUTHORITY_HOST": job["base_url"],
        "D365_TENANT_ID": TENANT_ID,
        "D365_CLIENT_ID": CLIENT_ID,
        "D365_CLIENT_SECRET": CLIENT_SECRET,
        "D365_ROUTES": json.dumps(routes),
        "IntegrationStorage": job["connection_string"],
        "INBOUND_CONTAINER": INBOUND,
        "STATUS_TABLE": name + uuid.uuid4().hex[:16],
        "ARCHIVE_CONTAINER": f"{name}-archive",
        "ERRORS_CONTAINER": f"{name}-errors",
        **more,
    }


def _app_settings(job: dict[str, Any]) -> dict[str, str]:
    route = {
        "name": "bench",
        "prefix": "bench/",
        "activity_id": ACTIVITY_ID,
        "company": "USMF",
        "max_bytes": "1GiB",
    }
    return app_settings(job, [route], "stream")


def child_answer(script: str, job: dict[str, Any], ca_file: str) -> dict[str, Any]:
    """Run `script --child` in a fresh process with `job` (its ``mode`` included) on stdin;
    the figures its measure_upload printed (shared with bench/export_stream.py)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "REQUESTS_CA_BUNDLE": ca_file}
    done = subprocess.run(
        [sys.executable, script, "--child"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{job['mode']} run failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


def run_child(script: str, mode: str, job: dict[str, Any], emulator_pid: str, ca_file: str) -> Run:
    """Run `script --child` for one measured upload and read its figures and the emulator's
    (shared with bench/package_import.py)."""
    # The emulator spools every upload to disk: start each run with no dirty pages pending,
    # so one run's write-back does not slow the next.
    os.sync()
    _reset_peak(emulator_pid)
    emulator_before = _proc_status_kib(emulator_pid, "VmRSS")
    result = child_answer(script, {**job, "mode": mode}, ca_file)
    emulator_growth = _proc_status_kib(emulator_pid, "VmHWM") - emulator_before
    return Run(
        mode=mode,
        seconds=result["seconds"],
        cpu_seconds=result["cpu_seconds"],
        rss_growth_mib=result["rss_growth_kib"] / 1024,
        emulator_rss_growth_mib=emulator_growth / 1024,
        status=result["result"],
    )


def _measure(mode: str, job: dict[str, Any], emulator_pid: str, ca_file: str) -> Run:
    if mode == "app":
        job = {**job, "settings": _app_settings(job)}
    return run_child(__file__, mode, job, emulator_pid, ca_file)


def measure_rounds(
    measure: Callable[[str, dict[str, Any], str, str], R],
    modes: tuple[str, ...],
    job: dict[str, Any],
    emulator_pid: str,
    ca_file: str,
    *,
    repeat: int,
) -> list[dict[str, R]]:
    """One unmeasured warm-up per mode, then `repeat` rounds of every mode, alternating the
    order, so drift over the run favours none."""
    for mode in modes:
        measure(mode, job, emulator_pid, ca_file)
    rounds = []
    for index in range(repeat):
        order = modes if index % 2 == 0 else modes[::-1]
        rounds.append({mode: measure(mode, job, emulator_pid, ca_file) for mode in order})
    return rounds


@contextmanager
def loopback(
    work: Path, path: Path | None, jobs: Path, *, emulator_args: tuple[str, ...] = ()
) -> Iterator[tuple[dict[str, Any], str, str]]:
    """Azurite holding `path` as the inbound blob (none when `path` is None) and the emulator
    of `jobs` (with `emulator_args`, e.g. ``--export``), each in its own process; yields the
    job's base (URL, token, connection string), the emulator's pid and CA."""
    from devtools.azurite import Azurite

    (work / "azurite").mkdir()
    with Azurite(location=work / "azurite") as azurite:
        if path is not None:
            seconds = _upload_blob(azurite.connection_string, path)
            print(f"uploaded it to Azurite as {INBOUND}/{BLOB_NAME} in {seconds:.1f} s")
        emulator = start_emulator(work, jobs=jobs, extra_args=emulator_args)
        try:
            print(f"emulator pid {emulator.pid} at {emulator.base_url} (HTTPS, own process)")
            ca_file = str(emulator.ca_file)
            job = {
                "base_url": emulator.base_url,
                "token": _token(emulator.base_url, ca_file),
                "connection_string": azurite.connection_string,
            }
            yield job, str(emulator.pid), ca_file
        finally:
            emulator.stop()


def _report(rounds: list[dict[str, Run]], size_mib: int) -> bool:
    for index, by_mode in enumerate(rounds, start=1):
        for mode in MODES:
            run = by_mode[mode]
            print(
                f"  round {index} {run.mode:<8} {run.seconds:6.2f} s  "
                f"{run.mib_per_s(size_mib):6.1f} MiB/s  cpu {run.cpu_seconds:5.2f} s  "
                f"uploader RSS +{run.rss_growth_mib:5.1f} MiB  "
                f"emulator RSS +{run.emulator_rss_growth_mib:5.1f} MiB"
            )
    for mode in MODES:
        runs = [by_mode[mode] for by_mode in rounds]
        print(
            f"{mode:<8} median {statistics.median(r.mib_per_s(size_mib) for r in runs):6.1f} "
            f"MiB/s, best {max(r.mib_per_s(size_mib) for r in runs):6.1f} MiB/s, median CPU "
            f"{statistics.median(r.cpu_seconds for r in runs):.2f} s, peak RSS growth "
            f"{max(r.rss_growth_mib for r in runs):.1f} MiB"
        )
    verdicts = [_judge(rounds, size_mib, mode, base) for mode, base in PAIRS]
    return all(verdicts)


def _judge(rounds: list[dict[str, Run]], size_mib: int, mode: str, base: str) -> bool:
    """Both targets of one pair: the mode's peak RSS growth, and its throughput against its
    baseline's (the median of the rounds' ratios)."""
    ratios = [r[mode].mib_per_s(size_mib) / r[base].mib_per_s(size_mib) for r in rounds]
    ratio = statistics.median(ratios)
    rss = max(r[mode].rss_growth_mib for r in rounds)
    rss_ok = rss <= RSS_TARGET_MIB
    ratio_ok = ratio >= THROUGHPUT_TARGET
    print(
        f"{'PASS' if rss_ok else 'FAIL'}  {mode} peak RSS growth {rss:.1f} MiB "
        f"(target <= {RSS_TARGET_MIB:.0f} MiB)"
    )
    print(
        f"{'PASS' if ratio_ok else 'FAIL'}  {mode}/{base} throughput {ratio:.2f}x, median of "
        f"the rounds' ratios {', '.join(f'{r:.2f}' for r in ratios)} "
        f"(target >= {THROUGHPUT_TARGET}x)"
    )
    return rss_ok and ratio_ok


def stream_bench(
    doc: str,
    child: Callable[[], None],
    run: Callable[[argparse.Namespace, Path], bool],
    *,
    name: str,
    repeat: int,
    size_help: str = "file size (default 512)",
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """The ``main()`` of a stream benchmark (shared with bench/package_import.py and
    bench/export_stream.py): parse the arguments, answer as the measured child with
    ``--child``, else ``run(args, work folder)`` and time it; exit 1 when a target fails."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512, help=size_help)
    parser.add_argument(
        "--repeat", type=int, default=repeat, help=f"measured rounds (default {repeat})"
    )
    if options is not None:
        options(parser)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
        return 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"{name}-bench-") as folder:
        ok = run(args, Path(folder))
    print(f"bench took {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


def _run(args: argparse.Namespace, work: Path) -> bool:
    path = work / "payload.bin"
    print(f"writing {args.size_mib} MiB to {path}")
    _write_file(path, args.size_mib)
    with loopback(work, path, jobs_file(work)) as (base, emulator_pid, ca_file):
        job = {**base, "activity_id": ACTIVITY_ID, "path": str(path)}
        rounds = measure_rounds(_measure, MODES, job, emulator_pid, ca_file, repeat=args.repeat)
    print(f"enqueue of {args.size_mib} MiB, {args.repeat} round(s) after a warm-up:")
    return _report(rounds, args.size_mib)


def main() -> int:
    """Parse the arguments, run the benchmark, print the figures; exit 1 when a target fails."""
    return stream_bench(__doc__, child_main, _run, name="enqueue", repeat=4)


if __name__ == "__main__":
    sys.exit(main())
