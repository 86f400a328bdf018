"""What the benchmarks share: the D365 emulator as its own process, and a log of every storage
request the SDK clients make (for counting them per file).

Both stay on loopback. The emulator's output goes to a file in the work folder, so its log
never fills a pipe nobody reads.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "devtools" / "d365_emulator" / "jobs.example.json"
"""Tenant, app and jobs of the example configuration (the apps' secrets are fake)."""

_STARTUP_SECONDS = 30.0


@dataclass
class EmulatorProcess:
    """A D365 emulator running as a child process (HTTPS on loopback)."""

    process: subprocess.Popen[bytes]
    base_url: str
    ca_file: Path

    @property
    def pid(self) -> int:
        """The emulator's process id."""
        return self.process.pid

    def stop(self) -> None:
        """Stop the process (it removes its spool folder on SIGTERM)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_emulator(
    work: Path,
    *,
    jobs: Path = JOBS,
    latency_ms: int = 0,
    state_seconds: float | None = None,
    extra_args: tuple[str, ...] = (),
) -> EmulatorProcess:
    """Start ``python -m devtools.d365_emulator`` on a free loopback port and wait for it.

    :param work: folder for its CA file and log.
    :keyword jobs: the tenant, apps and jobs (JSON).
    :keyword latency_ms: delay before every F&O answer.
    :keyword state_seconds: seconds a message spends in each non-final state (default: the
        emulator's).
    :keyword extra_args: further command-line flags (e.g. ``--export``).
    :raises RuntimeError: it did not report its base URL in time.
    """
    ca_file = work / "emulator-ca.pem"
    log = work / "emulator.log"
    command = [
        sys.executable, "-m", "devtools.d365_emulator", "--port", "0", "--tls",
        "--ca-file", str(ca_file), "--jobs", str(jobs), "--latency-ms", str(latency_ms),
    ]  # fmt: skip
    if state_seconds is not None:
        command += ["--state-seconds", str(state_seconds)]
    command += extra_args
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + _STARTUP_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        match = re.search(r"base URL:\s+(\S+)", log.read_text(errors="replace"))
        if match and ca_file.exists():
            return EmulatorProcess(process, match.group(1), ca_file)
        time.sleep(0.1)
    process.kill()
    process.wait(timeout=10)
    raise RuntimeError(f"the D365 emulator did not start; its output:\n{log.read_text()[-2000:]}")


# -- CPU time of the processes taking part -------------------------------------------------------


def cpu_seconds(pid: int | str = "self") -> float:
    """User plus system CPU seconds a process (all its threads) has used so far (Linux)."""
    after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of proc(5), utime and stime, counted after the ")" of the name.
    return (int(after_name[11]) + int(after_name[12])) / os.sysconf("SC_CLK_TCK")


def child_pid(name: str) -> int | None:
    """The process id of this process's child whose command name contains ``name``."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        command, rest = text.split("(", 1)[1].rsplit(")", 1)
        if rest.split()[1] == me and name in command:
            return int(stat.parent.name)
    return None


class CpuMeter:
    """CPU seconds of named processes over a stretch of time.

    :param pids: name -> process id (or "self").
    """

    def __init__(self, pids: dict[str, int | str]) -> None:
        self._pids = pids
        self._start = self._now()

    def _now(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def lap(self) -> dict[str, float]:
        """CPU seconds of each process since the previous lap (or the start)."""
        now = self._now()
        used = {name: now[name] - self._start[name] for name in now}
        self._start = now
        return used


# -- storage requests ---------------------------------------------------------------------------

TABLE = "table"
BLOB = "blob"
_READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class StorageCall:
    """One HTTP request a storage client sent (each SDK retry is a request of its own).

    :ivar text: the decoded path and query, plus the body when it is text (a table write or
        a batch transaction): what tells which file the request was for.
    """

    service: str
    method: str
    text: str

    @property
    def table_write(self) -> bool:
        """A write to the table (a batch transaction counts once)."""
        return self.service == TABLE and self.method not in _READ_METHODS

    @property
    def table_read(self) -> bool:
        """A read of the table (a point read, or one page of a query)."""
        return self.service == TABLE and self.method in _READ_METHODS

    @property
    def blob(self) -> bool:
        """Any request to the blob service."""
        return self.service == BLOB


class StorageCalls:
    """Logs the requests of the storage clients built with :meth:`options`, while recording.

    azure-core runs ``raw_request_hook`` once per HTTP request inside the retry loop, after a
    batch transaction's body is built.

    :param blob_port: the blob endpoint's port on 127.0.0.1.
    :param table_port: the table endpoint's port on 127.0.0.1.
    """

    def __init__(self, *, blob_port: int, table_port: int) -> None:
        self._services = {f"127.0.0.1:{blob_port}": BLOB, f"127.0.0.1:{table_port}": TABLE}
        self._lock = threading.Lock()
        self._calls: list[StorageCall] = []
        self._recording = False

    def options(self) -> dict[str, Callable[[Any], None]]:
        """Client options for the blob and table clients (``storage_options``)."""
        return {"raw_request_hook": self._record}

    @contextmanager
    def recording(self) -> Iterator[list[StorageCall]]:
        """Record the requests made inside the block; the list is complete once it ends."""
        calls: list[StorageCall] = []
        with self._lock:
            self._calls, self._recording = calls, True
        try:
            yield calls
        finally:
            with self._lock:
                self._recording = False

    def _record(self, pipeline_request: Any) -> None:
        if not self._recording:
            return
        request = pipeline_request.http_request
        address = request.url.split("://", 1)[-1]
        netloc, _, path = address.partition("/")
        service = self._services.get(netloc)
        if service is None:
            return
        body = request.body
        if isinstance(body, bytes | bytearray):
            body = bytes(body).decode("utf-8", "replace")
        text = unquote(path) + ("\n" + body if isinstance(body, str) else "")
        with self._lock:
            if self._recording:
                self._calls.append(StorageCall(service, request.method, text))
