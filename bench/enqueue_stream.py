"""Benchmark: streaming a large file through `D365Client.enqueue` against a plain requests.post.

The D365 emulator runs in its own process (HTTPS on loopback; it spools bodies to disk), and
each measured upload runs in a fresh child process, so the peak RSS growth printed is the
uploader's alone. Both uploads send the same file from disk to the same enqueue endpoint with
the same bearer token.

    python bench/enqueue_stream.py [--size-mib 512] [--repeat 4]

Targets: client peak RSS growth <= 64 MiB; client throughput >= 0.8x the baseline.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
RSS_TARGET_MIB = 64.0
THROUGHPUT_TARGET = 0.8
TENANT_ID = "faketenant"
CLIENT_ID = "00000000-0000-0000-0000-0000000000b1"
# A throwaway value for the loopback emulator only; not a secret.
CLIENT_SECRET = "bench-secret-not-real"  # noqa: S105
ACTIVITY_ID = "00000000-0000-0000-0000-0000000000b3"
WRITE_BLOCK = 4 * MIB
MODES = ("baseline", "client")


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


def _upload_baseline(job: dict[str, str]) -> str:
    import requests

    url = f"{job['base_url']}/api/connector/enqueue/{job['activity_id']}"
    with (
        Path(job["path"]).open("rb") as body,
        requests.post(
            url,
            data=body,
            headers={"Authorization": f"Bearer {job['token']}"},
            timeout=(10, 600),
        ) as response,
    ):
        response.raise_for_status()
        return response.text.strip()


def _upload_client(job: dict[str, str]) -> str:
    from shared.d365 import D365Client

    path = Path(job["path"])
    with D365Client(job["base_url"], _FixedToken(job["token"]), read_timeout=600) as client:
        result = client.enqueue(job["activity_id"], lambda: path.open("rb"), external_id=path.name)
    return result.message_id


def child_main() -> None:
    """Run one upload as told on stdin; print seconds and peak RSS growth as JSON."""
    job = json.loads(sys.stdin.read())
    upload = {"baseline": _upload_baseline, "client": _upload_client}[job["mode"]]
    # Import what the upload uses before measuring, so the growth is the upload's.
    import requests  # noqa: F401

    import shared.d365  # noqa: F401

    before = _proc_status_kib("self", "VmRSS")
    _reset_peak("self")
    started = time.perf_counter()
    cpu_started = time.process_time()
    status = upload(job)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    peak = _proc_status_kib("self", "VmHWM")
    result = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rss_growth_kib": peak - before,
        "status": status,
    }
    json.dump(result, sys.stdout)


# -- the parent: emulator, file, runs, report --------------------------------------------------


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


def _start_emulator(work: Path) -> tuple[subprocess.Popen[str], str, str]:
    jobs = work / "jobs.json"
    jobs.write_text(
        json.dumps(
            {
                "tenant_id": TENANT_ID,
                "apps": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}],
                "jobs": [
                    {
                        "activity_id": ACTIVITY_ID,
                        "name": "Bench package import",
                        "allowed_client_ids": [CLIENT_ID],
                    }
                ],
            }
        )
    )
    ca_file = work / "ca.pem"
    emulator = subprocess.Popen(
        [
            sys.executable,
            *("-m", "devtools.d365_emulator", "--port", "0"),
            *("--jobs", str(jobs), "--ca-file", str(ca_file)),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert emulator.stdout is not None
    deadline = time.monotonic() + 30
    for line in emulator.stdout:
        match = re.search(r"base URL:\s+(\S+)", line)
        if match:
            return emulator, match.group(1), str(ca_file)
        if time.monotonic() > deadline:
            break
    emulator.terminate()
    raise RuntimeError("the emulator did not report its base URL")


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


def _measure(mode: str, job: dict[str, str], emulator_pid: str, ca_file: str) -> Run:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "REQUESTS_CA_BUNDLE": ca_file}
    # The emulator spools every upload to disk: start each run with no dirty pages pending,
    # so one run's write-back does not slow the next.
    os.sync()
    _reset_peak(emulator_pid)
    emulator_before = _proc_status_kib(emulator_pid, "VmRSS")
    done = subprocess.run(
        [sys.executable, __file__, "--child"],
        input=json.dumps({**job, "mode": mode}),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} upload failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    emulator_growth = _proc_status_kib(emulator_pid, "VmHWM") - emulator_before
    return Run(
        mode=mode,
        seconds=result["seconds"],
        cpu_seconds=result["cpu_seconds"],
        rss_growth_mib=result["rss_growth_kib"] / 1024,
        emulator_rss_growth_mib=emulator_growth / 1024,
        status=result["status"],
    )


def _measure_rounds(
    job: dict[str, str], emulator_pid: str, ca_file: str, repeat: int
) -> list[dict[str, Run]]:
    """One unmeasured warm-up per mode, then `repeat` rounds of both modes, alternating which
    goes first, so drift over the run favours neither."""
    for mode in MODES:
        _measure(mode, job, emulator_pid, ca_file)
    rounds = []
    for index in range(repeat):
        order = MODES if index % 2 == 0 else MODES[::-1]
        rounds.append({mode: _measure(mode, job, emulator_pid, ca_file) for mode in order})
    return rounds


def _report(rounds: list[dict[str, Run]], size_mib: int) -> bool:
    ratios = []
    for index, pair in enumerate(rounds, start=1):
        for run in pair.values():
            print(
                f"  round {index} {run.mode:<8} {run.seconds:6.2f} s  "
                f"{run.mib_per_s(size_mib):6.1f} MiB/s  cpu {run.cpu_seconds:5.2f} s  "
                f"uploader RSS +{run.rss_growth_mib:5.1f} MiB  "
                f"emulator RSS +{run.emulator_rss_growth_mib:5.1f} MiB"
            )
        ratios.append(pair["client"].mib_per_s(size_mib) / pair["baseline"].mib_per_s(size_mib))
    for mode in MODES:
        runs = [pair[mode] for pair in rounds]
        print(
            f"{mode:<8} median {statistics.median(r.mib_per_s(size_mib) for r in runs):6.1f} "
            f"MiB/s, best {max(r.mib_per_s(size_mib) for r in runs):6.1f} MiB/s, median CPU "
            f"{statistics.median(r.cpu_seconds for r in runs):.2f} s"
        )
    ratio = statistics.median(ratios)
    rss = max(pair["client"].rss_growth_mib for pair in rounds)
    rss_ok = rss <= RSS_TARGET_MIB
    ratio_ok = ratio >= THROUGHPUT_TARGET
    print(
        f"{'PASS' if rss_ok else 'FAIL'}  client peak RSS growth {rss:.1f} MiB "
        f"(target <= {RSS_TARGET_MIB:.0f} MiB)"
    )
    print(
        f"{'PASS' if ratio_ok else 'FAIL'}  client/baseline throughput {ratio:.2f}x, median of "
        f"the rounds' ratios {', '.join(f'{r:.2f}' for r in ratios)} "
        f"(target >= {THROUGHPUT_TARGET}x)"
    )
    return rss_ok and ratio_ok


def main() -> int:
    """Parse the arguments, run the benchmark, print the figures; exit 1 when a target fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512, help="file size (default 512)")
    parser.add_argument("--repeat", type=int, default=4, help="measured rounds (default 4)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main()
        return 0
    with tempfile.TemporaryDirectory(prefix="enqueue-bench-") as folder:
        work = Path(folder)
        path = work / "payload.bin"
        print(f"writing {args.size_mib} MiB to {path}")
        _write_file(path, args.size_mib)
        emulator, base_url, ca_file = _start_emulator(work)
        try:
            print(f"emulator pid {emulator.pid} at {base_url} (HTTPS, separate process)")
            job = {
                "base_url": base_url,
                "token": _token(base_url, ca_file),
                "activity_id": ACTIVITY_ID,
                "path": str(path),
            }
            rounds = _measure_rounds(job, str(emulator.pid), ca_file, args.repeat)
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)
        print(f"enqueue of {args.size_mib} MiB, {args.repeat} round(s) after a warm-up:")
        return 0 if _report(rounds, args.size_mib) else 1


if __name__ == "__main__":
    sys.exit(main())
