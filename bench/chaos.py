"""Chaos benchmark (issue 7): files through the whole app while storage fails, F&O fails and
the host process is killed; afterwards no accepted file version may be lost or sent twice.

Setup, all on loopback:

- Azurite, with the fault proxy (``devtools.fault_proxy``) in front of it; the app's
  ``IntegrationStorage`` points at the proxy, which fails a share of storage requests (503
  ``ServerBusy``, resets before forwarding, resets after Azurite applied the request: lost
  acknowledgements) and delays a few more.
- The D365 emulator, processing fast, answering a share of F&O calls with 429, a 5xx, or a
  dropped connection (before or after it read the body; after, it has stored the file).
- The app's local host as a subprocess (``devtools.host_process``), killed with SIGKILL at
  random moments (each host once it has begun work on a file, or after its warm-up) and
  started again; each new host fires for every blob still in the inbound
  container, as Event Grid re-delivers events a dead host never acknowledged.

Load: valid files on three routes; invalid ones (no route, empty, wrong extension); and
re-uploads of a path with new content shortly after its first version (some empty files get
their content this way). Every version carries a unique token, so the emulator's stored
messages tell which version F&O received, and how often.

Then faults stop, the host keeps running, and the run drains until every version is settled
or the drain window passes. Outcomes come from the app's HTTP API only: the paged listing
(``/api/messages?limit=&continuation=``) and ``/api/messages?blob=`` per path.

Invariants (the exit code is 1 when one fails):

- **lost == 0**: a version with no record (unless it was overwritten before any delivery saw
  it, and F&O never got it), or whose record is not final after the drain window;
- **duplicates == 0**: no version reached F&O twice;
- **outcome unknown <= ambiguous sends**, and only on their paths: ``EnqueueFailed``
  "outcome unknown" only where F&O may have the file for a reason outside the app: a send
  hit by a kill (the host had read the blob to send it and had not recorded F&O's answer when
  it died; see ``sends_hit_by_kills``), or an enqueue connection the emulator dropped or
  answered with a gateway's 502/504 (the client cannot tell whether F&O kept the file);
- **wrong outcomes == 0**: an invalid file not ``Rejected``; a valid latest version
  ``Rejected``; a record naming a message F&O does not hold for that version, or a final
  F&O state other than the emulator's; F&O holding a version whose record says it was never
  sent.

Usage: ``python bench/chaos.py [--files 300] [--kills 10] [--seed 7]
[--storage-fault-rate 0.12] [--d365-fault-rate 0.3] [--drain-timeout 300] [--small]``
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from azure.core.exceptions import AzureError  # noqa: E402
from azure.data.tables import TableServiceClient  # noqa: E402
from azure.storage.blob import BlobServiceClient, ContainerClient  # noqa: E402

from devtools.azurite import Azurite, free_port  # noqa: E402
from devtools.d365_emulator import App, Emulator, Job, Knobs, Message, RecordedRequest  # noqa: E402
from devtools.d365_emulator._faults import Fault, FaultInjector  # noqa: E402
from devtools.fault_proxy import (  # noqa: E402
    WRITE_METHODS,
    Exchange,
    FaultKind,
    FaultPlan,
    FaultProxy,
    StorageService,
)
from shared.tracking import TrackedFile, TrackingStore  # noqa: E402

# -- the environment ----------------------------------------------------------------------------

TENANT_ID = "faketenant"
CLIENT_ID = "00000000-0000-0000-0000-0000000000c1"
CLIENT_SECRET = "fake-secret-not-real"  # noqa: S105 - the emulator's fake app
CUSTOMERS_ID = "00000000-0000-0000-0000-00000000a001"
JOURNAL_ID = "00000000-0000-0000-0000-00000000a002"
PACKAGE_ID = "00000000-0000-0000-0000-00000000a003"
INBOUND = "d365-inbound"
# FaultPlan's longest latency spike (1.0 s) and a margin: after it, nothing a dead host sent
# is still on its way.
_IN_FLIGHT_SECONDS = 1.5
COMPANY = "USMF"
ROUTES = [
    {
        "name": "customers",
        "prefix": "customers/{company}/",
        "activity_id": CUSTOMERS_ID,
        "entity": "CustomersV3",
        "extensions": [".xml"],
    },
    {
        "name": "journal",
        "prefix": "general-journal/{company}/",
        "activity_id": JOURNAL_ID,
        "entity": "General journal",
        "extensions": [".xml"],
    },
    {"name": "packages", "prefix": "packages/", "activity_id": PACKAGE_ID, "company": COMPANY},
]
POLL_SCHEDULE = "*/2 * * * * *"
POLL_INTERVAL_MAX = 2.0
D365_HTTP_TIMEOUT = 10
# Short, so a killed tick's poll lease (budget + D365_HTTP_TIMEOUT + 30 s, shared/context.py)
# ends within the run.
POLL_TICK_BUDGET = 10
# The local host's listing of the inbound container stands in for Event Grid, which does not go
# through the app's storage: faults there would only slow the stand-in down.
NOT_THE_TRIGGER_LISTING = rf"^(?!/devstoreaccount1/{INBOUND}\?.*comp=list)"
# Tried in turn when the requested CLAIM_LEASE is refused by the settings' own check.
LEASE_CANDIDATES = (20, 30, 40, 60, 90, 120, 150, 180, 190, 200, 240, 300, 600)
OUTCOME_UNKNOWN = "outcome unknown"
GATEWAY_STATUSES = frozenset({502, 504})
FNO_FINAL_STATES = (
    "processed",
    "processedwitherrors",
    "preprocessingerror",
    "postprocessingfailed",
)
GUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
TOKEN = re.compile(rb"chaos-token-[0-9a-f]+-\d+-v\d+")
API_TIMEOUT = (5.0, 30.0)
# After F&O answers an enqueue, the worker needs a moment to record the answer, storage
# retries included. A kill that comes before the message id reached a table, and within
# ANSWER_WINDOW seconds of the answer, hit the send; so did a kill within ERROR_ANSWER_GRACE
# seconds of an error answer (the worker may not have released the claim yet).
ANSWER_WINDOW = 30.0
ERROR_ANSWER_GRACE = 15.0
# A record write just before a kill may be the mark that a send begins, before the blob read.
WRITE_WINDOW = 5.0
# F&O calls the chaos must contain: faults stay on past the planned window until F&O saw
# this many under them (for at most one more window). 30 % faults over 20 calls leave none
# with a chance of 0.08 %.
MIN_FNO_CALLS = 20
# A host is killed once it has begun work on a file, or this long after it was ready: under
# load and storage faults a new host took 8-10 s to build its app context and claim a file.
HOST_WARM_UP = 20.0


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# -- options ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChaosOptions:
    """What one run does; ``small()`` is the quick variant the test suite runs."""

    files: int = 300
    seed: int = 7
    kills: int = 10
    storage_fault_rate: float = 0.12
    storage_latency_rate: float = 0.03
    d365_fault_rate: float = 0.30
    drain_timeout: float = 300.0
    load_seconds: float | None = None
    chaos_tail: float | None = None
    claim_lease: int = 40
    work_dir: Path | None = None

    @classmethod
    def small(cls, **overrides: Any) -> ChaosOptions:
        """40 files, 3 kills, 10 % storage faults, a 60 s drain window."""
        values: dict[str, Any] = {
            "files": 40,
            "kills": 3,
            "storage_fault_rate": 0.10,
            "drain_timeout": 60.0,
            "load_seconds": 15.0,
        }
        return cls(**(values | overrides))

    @property
    def upload_seconds(self) -> float:
        """How long the uploads are spread over (default: four files a second)."""
        return self.load_seconds if self.load_seconds is not None else max(10.0, self.files / 4)

    @property
    def chaos_seconds(self) -> float:
        """How long faults and kills last: the uploads and a tail (default half of them, at
        least 20 s) while the app still works on the last files."""
        tail = (
            self.chaos_tail if self.chaos_tail is not None else max(20.0, self.upload_seconds / 2)
        )
        return self.upload_seconds + tail


# -- the load -----------------------------------------------------------------------------------


class FileKind(enum.StrEnum):
    """What a version is, and so what the app must make of it."""

    CUSTOMERS = "customers"
    JOURNAL = "journal"
    PACKAGE = "package"
    NO_ROUTE = "no route"
    EMPTY = "empty"
    WRONG_EXTENSION = "wrong extension"

    @property
    def is_valid(self) -> bool:
        """Whether the app must send a version of this kind to F&O."""
        return self in (FileKind.CUSTOMERS, FileKind.JOURNAL, FileKind.PACKAGE)


FIRST_UPLOAD_MIX: Mapping[FileKind, float] = {
    FileKind.CUSTOMERS: 0.32,
    FileKind.JOURNAL: 0.25,
    FileKind.PACKAGE: 0.16,
    FileKind.NO_ROUTE: 0.11,
    FileKind.EMPTY: 0.08,
    FileKind.WRONG_EXTENSION: 0.08,
}
REUPLOAD_SHARE = 0.15
REUPLOAD_AFTER_SEND_LATEST = 20.0


@dataclass(frozen=True)
class PlannedUpload:
    """One blob version to upload ``at`` seconds into the run, or as soon as F&O has received
    the version whose token is ``after_token`` (the earlier version is then in flight)."""

    at: float
    path: str
    kind: FileKind
    number: int
    version: int
    data: bytes
    token: str | None
    after_token: str | None = None


def _customers(token: str, number: int) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f"<!-- {token} -->\n<Document>\n  <CUSTCUSTOMERV3ENTITY>\n"
        f"    <CUSTOMERACCOUNT>CH-{number:05d}</CUSTOMERACCOUNT>\n"
        "    <CUSTOMERGROUPID>10</CUSTOMERGROUPID>\n"
        "    <SALESCURRENCYCODE>USD</SALESCURRENCYCODE>\n"
        f"    <ORGANIZATIONNAME>Chaos {token}</ORGANIZATIONNAME>\n"
        "    <PARTYTYPE>Organization</PARTYTYPE>\n"
        "    <ADDRESSCOUNTRYREGIONID>USA</ADDRESSCOUNTRYREGIONID>\n"
        "  </CUSTCUSTOMERV3ENTITY>\n</Document>\n"
    ).encode()


def _journal(token: str, number: int) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<Document>\n  <LEDGERJOURNALENTITY>\n'
        f"    <JOURNALBATCHNUMBER>{number:05d}</JOURNALBATCHNUMBER>\n"
        "    <LINENUMBER>1</LINENUMBER>\n    <JOURNALNAME>GenJrn</JOURNALNAME>\n"
        f"    <DESCRIPTION>{token}</DESCRIPTION>\n"
        "    <TRANSDATE>2026-01-15T00:00:00</TRANSDATE>\n"
        "    <ACCOUNTTYPE>Ledger</ACCOUNTTYPE>\n"
        "    <ACCOUNTDISPLAYVALUE>601500-001-022</ACCOUNTDISPLAYVALUE>\n"
        "    <DEBITAMOUNT>10.00</DEBITAMOUNT>\n    <CREDITAMOUNT>0</CREDITAMOUNT>\n"
        "    <CURRENCYCODE>USD</CURRENCYCODE>\n"
        "  </LEDGERJOURNALENTITY>\n</Document>\n"
    ).encode()


def _package(token: str) -> bytes:
    # Stored, not deflated, so the token stays readable in the bytes F&O receives.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(
            "Manifest.xml",
            f"<DataManagementPackageManifest>{token}</DataManagementPackageManifest>",
        )
    return buffer.getvalue()


def _content(kind: FileKind, token: str, number: int) -> tuple[str, bytes]:
    """(path, bytes) of a first upload."""
    name = f"chaos-{number:04d}"
    builders: dict[FileKind, Callable[[], tuple[str, bytes]]] = {
        FileKind.CUSTOMERS: lambda: (f"customers/{COMPANY}/{name}.xml", _customers(token, number)),
        FileKind.JOURNAL: lambda: (
            f"general-journal/{COMPANY}/{name}.xml",
            _journal(token, number),
        ),
        FileKind.PACKAGE: lambda: (f"packages/{name}.zip", _package(token)),
        FileKind.NO_ROUTE: lambda: (f"unrouted/{name}.xml", _customers(token, number)),
        FileKind.EMPTY: lambda: (f"customers/{COMPANY}/{name}.xml", b""),
        FileKind.WRONG_EXTENSION: lambda: (
            f"customers/{COMPANY}/{name}.csv",
            _customers(token, number),
        ),
    }
    return builders[kind]()


def plan_uploads(
    files: int, seconds: float, rng: random.Random, run_id: str
) -> list[PlannedUpload]:
    """``files`` versions, sorted by time: first uploads of every kind, and re-uploads of
    valid or empty paths with new, valid content: half of those of valid paths as soon as F&O
    has the first version (20 s after it at the latest), the others 0.2 to 3 s after it."""
    reuploads = round(files * REUPLOAD_SHARE)
    kinds = rng.choices(
        list(FIRST_UPLOAD_MIX), weights=list(FIRST_UPLOAD_MIX.values()), k=files - reuploads
    )
    plan: list[PlannedUpload] = []
    for number, kind in enumerate(kinds):
        token = f"chaos-token-{run_id}-{number}-v1"
        path, data = _content(kind, token, number)
        plan.append(
            PlannedUpload(
                rng.uniform(0, seconds), path, kind, number, 1, data, token if data else None
            )
        )
    candidates = [u for u in plan if u.kind.is_valid or u.kind is FileKind.EMPTY]
    for first in rng.sample(candidates, min(reuploads, len(candidates))):
        kind = FileKind.CUSTOMERS if first.kind is FileKind.EMPTY else first.kind
        token = f"chaos-token-{run_id}-{first.number}-v2"
        _, data = _content(kind, token, first.number)
        if first.kind.is_valid and rng.random() < 0.5:
            at, after = first.at + REUPLOAD_AFTER_SEND_LATEST, first.token
        else:
            at, after = first.at + rng.uniform(0.2, 3.0), None
        plan.append(PlannedUpload(at, first.path, kind, first.number, 2, data, token, after))
    return sorted(plan, key=lambda u: u.at)


@dataclass
class UploadedVersion:
    """A version as uploaded (directly to Azurite, not through the proxy)."""

    upload: PlannedUpload
    etag: str
    uploaded_at: float
    overwritten: bool = False

    @property
    def key(self) -> tuple[str, str]:
        """(path, ETag without quotes): how records are matched to versions."""
        return self.upload.path, self.etag


def _bare_etag(etag: str | None) -> str:
    return (etag or "").strip('"')


class Uploader(threading.Thread):
    """Uploads the plan on schedule, straight to Azurite (the user's side has no faults).

    :param received: whether F&O has received the version with a given token.
    """

    def __init__(
        self,
        container: ContainerClient,
        plan: Sequence[PlannedUpload],
        start: float,
        received: Callable[[str], bool],
    ) -> None:
        super().__init__(name="chaos-uploader", daemon=True)
        self._container = container
        self._plan = plan
        self._start = start
        self._received = received
        self.versions: list[UploadedVersion] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        pending = list(self._plan)
        try:
            while pending:
                now = time.monotonic() - self._start
                due = [u for u in pending if u.at <= now or self._triggered(u)]
                for upload in due:
                    self._upload(upload)
                    pending.remove(upload)
                if not due:
                    time.sleep(min(0.05, max(0.0, pending[0].at - now)))
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def _triggered(self, upload: PlannedUpload) -> bool:
        return upload.after_token is not None and self._received(upload.after_token)

    def _upload(self, upload: PlannedUpload) -> None:
        blob = self._container.get_blob_client(upload.path)
        result = blob.upload_blob(upload.data, overwrite=True)
        self.versions.append(UploadedVersion(upload, _bare_etag(result["etag"]), time.monotonic()))


# -- F&O: faults and the enqueue calls the emulator saw -------------------------------------------


@dataclass
class EnqueueCall:
    """One enqueue request at the emulator, from its first byte to its recording."""

    started: float
    ended: float | None = None
    status: int | None = None
    path: str | None = None
    token: str | None = None
    message_id: str | None = None
    dropped: bool = False


class EnqueueLog:
    """The emulator's enqueue calls with their times (the handler thread ties the hooks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, EnqueueCall] = {}
        self._tokens: set[str] = set()
        self.calls: list[EnqueueCall] = []

    def received(self, token: str) -> bool:
        """Whether an enqueue call carried the version with ``token`` (kept or not)."""
        with self._lock:
            return token in self._tokens

    def started(self) -> None:
        """A request for the enqueue route arrived (before its body is read)."""
        call = EnqueueCall(started=time.monotonic())
        with self._lock:
            self._open[threading.get_ident()] = call
            self.calls.append(call)

    def answered(self, message_id: str) -> None:
        """F&O stored the file under ``message_id`` (the answer may still be lost)."""
        with self._lock:
            call = self._open.get(threading.get_ident())
            if call is not None:
                call.message_id = message_id.lower()

    def finished(self, request: RecordedRequest) -> None:
        """The emulator recorded the request: answered (``status``) or dropped (None)."""
        with self._lock:
            call = self._open.pop(threading.get_ident(), None)
        if call is None:
            return
        call.ended = time.monotonic()
        call.status = request.status
        call.dropped = request.status is None
        external_id = next(
            (v for k, v in request.headers.items() if k.lower() == "x-ms-dyn-externalidentifier"),
            None,
        )
        call.path = unquote(external_id) if external_id else None
        found = TOKEN.search(request.body or b"")
        call.token = found.group().decode() if found else None
        if call.token:
            with self._lock:
                self._tokens.add(call.token)


class FnoFaults(FaultInjector):
    """The emulator's fault draws for this run: one seeded roll per F&O call picks a drop
    before the body, a drop after it (the file is stored), a 429, a 5xx, or nothing. Only the
    calls made while ``enabled`` are counted: those of the chaos."""

    ERROR_STATUSES = (500, 502, 503, 504)

    def __init__(self, seed: int, rate: float, enqueues: EnqueueLog) -> None:
        super().__init__(seed)
        self._chaos_lock = threading.Lock()
        self._chaos_random = random.Random(seed)
        self._rate = rate
        self._enqueues = enqueues
        self._decided = threading.local()
        self.enabled = True
        self.calls: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def before_body(self, knobs: Knobs, operation: str) -> Fault | None:
        """Draw this call's fault; a drop before the body happens now."""
        if operation == "enqueue":
            self._enqueues.started()
        enabled = self.enabled
        with self._chaos_lock:
            if enabled:
                self.calls[operation] += 1
            roll = self._chaos_random.random()
            status = self._chaos_random.choice(self.ERROR_STATUSES)
        fault, label = None, ""
        if enabled:
            share = self._rate / 6
            if roll < share:
                fault, label = Fault.DROP_BEFORE_BODY, "dropped before the body"
            elif roll < 2 * share:
                fault, label = Fault.DROP_AFTER_BODY, "dropped after the body"
            elif roll < 4 * share:
                fault, label = Fault.THROTTLE, "429"
            elif roll < 6 * share:
                fault, label = Fault.ERROR, str(status)
        if fault is not None:
            with self._chaos_lock:
                self.faults[label] += 1
        self._decided.fault, self._decided.status = fault, status
        return fault if fault is Fault.DROP_BEFORE_BODY else None

    def calls_seen(self) -> int:
        """F&O calls made while the faults were on."""
        with self._chaos_lock:
            return sum(self.calls.values())

    def after_body(self, knobs: Knobs, operation: str) -> Fault | None:
        """The fault drawn before the body, when it acts after it."""
        fault = getattr(self._decided, "fault", None)
        if fault is Fault.ERROR:
            knobs.error_status = self._decided.status
        return None if fault is Fault.DROP_BEFORE_BODY else fault


class ChaosEmulator(Emulator):
    """The emulator with the run's fault draws, and its enqueue calls timed and tied to the
    versions they carried."""

    def __init__(self, *args: Any, faults: FnoFaults, enqueues: EnqueueLog, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.faults = self.chaos_faults = faults
        self.enqueues = enqueues
        serve_enqueue = self.fno.enqueue

        def enqueue(call: Any) -> Any:
            reply = serve_enqueue(call)
            found = GUID.search(reply.body or b"") if reply.status == 200 else None
            if found:
                enqueues.answered(found.group().decode())
            return reply

        self.fno.enqueue = enqueue  # type: ignore[method-assign]

    def record(self, request: RecordedRequest) -> None:
        """Keep the request, and close its enqueue call."""
        super().record(request)
        if request.operation == "enqueue":
            self.enqueues.finished(request)

    def messages_by_token(self) -> tuple[dict[str, list[Message]], int]:
        """F&O's stored messages by the version token in their body, and how many had none."""
        found: dict[str, list[Message]] = defaultdict(list)
        untokened = 0
        for message in self.messages.values():
            body = Path(message.body_path).read_bytes() if message.body_path else b""
            match = TOKEN.search(body)
            if match:
                found[match.group().decode()].append(message)
            else:
                untokened += 1
        return found, untokened


# -- storage: sends begun, message ids recorded ---------------------------------------------------


class StorageLog:
    """Proxy observer: what the app's storage traffic shows about its sends, whatever the table
    layout.

    - ``reads``: a worker reads an inbound blob's content only to send it, so a GET of one
      starts a send;
    - ``writes``: table write attempts that mention a watched path (a record of it: the claim,
      the mark that a send begins, its outcome), whatever their answer: a worker retrying the
      mark, which may have landed with its answer lost, is still on its way to the send;
    - ``first_written``: when a message id first reached a table in such a write (one Azurite
      applied, lost acknowledgements included).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: tuple[str, ...] = ()
        self.first_written: dict[str, float] = {}
        self.reads: list[tuple[float, str]] = []
        self.writes: list[tuple[float, str]] = []

    def watch(self, paths: Sequence[str]) -> None:
        """Note the writes that mention these paths from now on."""
        self._paths = tuple(paths)

    def wrote_since(self, moment: float) -> bool:
        """Whether a write attempt on a watched path's record came after ``moment``."""
        with self._lock:
            return any(at > moment for at, _ in self.writes)

    def __call__(self, exchange: Exchange) -> None:
        if exchange.service is StorageService.BLOB and exchange.method == "GET":
            target = urlsplit(exchange.target)
            prefix = f"/devstoreaccount1/{INBOUND}/"
            if target.path.startswith(prefix) and "comp=" not in target.query:
                path = unquote(target.path[len(prefix) :])
                with self._lock:
                    self.reads.append((exchange.started_at, path))
            return
        if exchange.service is not StorageService.TABLE or exchange.method not in WRITE_METHODS:
            return
        body = exchange.request_body
        mentioned = [p for p in self._paths if p.encode() in body]
        applied = exchange.status is not None and 200 <= exchange.status < 300
        target = exchange.target.encode()
        guids = (
            [m.group().decode().lower() for m in GUID.finditer(target + body)] if applied else []
        )
        with self._lock:
            self.writes += [(exchange.finished_at, p) for p in mentioned]
            for guid in guids:
                self.first_written.setdefault(guid, exchange.finished_at)


# -- the host process ---------------------------------------------------------------------------


class HostProcess:
    """``python -m devtools.host_process`` on a fixed port, killed and started at will."""

    def __init__(self, env: Mapping[str, str], port: int, log_dir: Path) -> None:
        self._env = dict(env)
        self.port = port
        self._log_dir = log_dir
        self._process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.ready_at = 0.0

    @property
    def url(self) -> str:
        """The host's root URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs(self) -> list[Path]:
        """One log file per start."""
        return sorted(self._log_dir.glob("host-*.log"))

    def start(self, *, timeout: float = 60.0) -> None:
        """Start a host and wait until its HTTP server answers."""
        self.starts += 1
        log = self._log_dir / f"host-{self.starts:02d}.log"
        command = [
            sys.executable, "-m", "devtools.host_process", "--http-port", str(self.port),
            "--poll-blobs", "--blob-scan-interval", "0.5", "--fire-existing", "--max-parallel", "4",
        ]  # fmt: skip
        with log.open("wb") as handle:
            self._process = subprocess.Popen(
                command, cwd=ROOT, env=self._env, stdout=handle, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        # devtools.host_process prints this line once the host serves.
        while b"ready http=" not in log.read_bytes():
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"the host did not start (log {log}):\n{tail}")
            time.sleep(0.05)
        self.ready_at = time.monotonic()

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finally blocks, as a crash or an OOM kill."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=30)
            self._process = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s (idempotent)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None


# -- reading outcomes through the app's HTTP API -------------------------------------------------


class StatusReader:
    """The app's own status API: the paged listing and the per-blob lookup."""

    def __init__(self, base_url: str) -> None:
        self._base = f"{base_url}/api/messages"
        self._session = requests.Session()

    def list_all(self) -> list[dict[str, Any]]:
        """Every record, page by page.

        :raises requests.HTTPError: a page failed.
        """
        records: list[dict[str, Any]] = []
        params = {"limit": "1000"}
        while True:
            response = self._session.get(self._base, params=params, timeout=API_TIMEOUT)
            response.raise_for_status()
            page = response.json()
            records += page["items"]
            if not page.get("continuation"):
                return records
            params = {"limit": "1000", "continuation": page["continuation"]}

    def latest(self, path: str) -> dict[str, Any] | None:
        """The latest record of a path (``?blob=``), None when it has none."""
        response = self._session.get(self._base, params={"blob": path}, timeout=API_TIMEOUT)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json())

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()


# -- judging the outcome ------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    """One SIGKILL of the host."""

    at: float


@dataclass
class VersionOutcome:
    """What became of one uploaded version."""

    version: UploadedVersion
    record: dict[str, Any] | None
    fno_messages: list[Message]

    @property
    def state(self) -> str:
        """The record's state, or why there is none."""
        if self.record is not None:
            return str(self.record.get("state"))
        return "never seen" if self.unseen else "no record"

    @property
    def unseen(self) -> bool:
        """Overwritten before any delivery saw it, and never sent: nothing to track."""
        return self.record is None and self.version.overwritten and not self.fno_messages

    @property
    def final(self) -> bool:
        """The record is final."""
        return self.record is not None and bool(self.record.get("terminal"))

    @property
    def settled(self) -> bool:
        """Nothing more is expected to happen to this version."""
        return self.final or self.unseen

    @property
    def outcome_unknown(self) -> bool:
        """``EnqueueFailed`` "outcome unknown"."""
        return (
            self.record is not None
            and self.record.get("state") == "EnqueueFailed"
            and str(self.record.get("last_error") or "").startswith(OUTCOME_UNKNOWN)
        )

    def problem(self) -> str | None:
        """Why this outcome is wrong (beyond lost or duplicated), None when it is right."""
        if self.record is None or not self.final:
            return None
        return self._routing_problem() or self._fno_problem()

    def _routing_problem(self) -> str | None:
        upload = self.version.upload
        state = str((self.record or {}).get("state"))
        if not upload.kind.is_valid and state != "Rejected":
            return f"{upload.kind} file ended {state}, not Rejected"
        if upload.kind.is_valid and state == "Rejected" and not self.version.overwritten:
            return f"valid latest version Rejected: {(self.record or {}).get('last_error')}"
        return None

    def _fno_problem(self) -> str | None:
        record = self.record or {}
        state = str(record.get("state"))
        message_id = str(record.get("message_id") or "").lower()
        held = {m.message_id.lower(): m for m in self.fno_messages}
        if message_id and message_id not in held:
            return f"record names message {message_id}, which F&O does not hold for this version"
        never_sent = state == "Rejected" or (state == "EnqueueFailed" and not self.outcome_unknown)
        if held and never_sent:
            return f"F&O holds it ({', '.join(held)}) but the record says {state}"
        if message_id and state.lower() in FNO_FINAL_STATES:
            fno_state = held[message_id].state
            if fno_state.lower() != state.lower():
                return f"record says {state}, F&O says {fno_state}"
        return None


def judge(
    versions: Sequence[UploadedVersion],
    records: Sequence[Mapping[str, Any]],
    messages: Mapping[str, list[Message]],
) -> list[VersionOutcome]:
    """Match every version to its record (path and ETag) and to F&O's messages (token)."""
    by_key = {(str(r.get("blob")), _bare_etag(r.get("blob_etag"))): dict(r) for r in records}
    return [
        VersionOutcome(
            version=v,
            record=by_key.get(v.key),
            fno_messages=messages.get(v.upload.token or "", []) if v.upload.token else [],
        )
        for v in versions
    ]


@dataclass(frozen=True)
class SendHits:
    """Which kills hit a send, and the paths of those sends."""

    kills_hitting_a_send: int
    sends_hit: int
    paths: frozenset[str]
    flags: tuple[bool, ...]


@dataclass(frozen=True)
class _Step:
    """One step of a send: the worker wrote the record, read the blob, or called enqueue."""

    at: float
    kind: str
    call: EnqueueCall | None = None


def sends_hit_by_kills(
    kills: Sequence[Kill], storage: StorageLog, calls: Sequence[EnqueueCall]
) -> SendHits:
    """The sends each kill cut short. A kill ends the host that ran since the kill before it.
    That host was sending a path if it wrote (or tried to write) the path's record, read its
    blob or called enqueue with it; the send was over at the kill if F&O's answer had been
    recorded (its message id reached a table before the kill), else it was still open if its
    latest step came shortly before the kill: a record write (or an attempt at one: the mark
    may have landed, its answer lost) within ``WRITE_WINDOW`` (it may be the mark
    that the send begins), a blob read or a message id answer within ``ANSWER_WINDOW``, an
    error or a drop within ``ERROR_ANSWER_GRACE``, or a call not answered yet."""
    hits: set[tuple[int, str]] = set()
    previous = float("-inf")
    for index, kill in enumerate(kills):
        steps: dict[str, list[_Step]] = defaultdict(list)
        for kind, log in (("write", storage.writes), ("read", storage.reads)):
            for at, path in log:
                if previous < at <= kill.at:
                    steps[path].append(_Step(at, kind))
        for call in calls:
            if call.path in steps and previous < call.started <= kill.at:
                steps[call.path].append(_Step(call.started, "call", call))
        hits.update(
            (index, path)
            for path, path_steps in steps.items()
            if _open_at(path_steps, kill.at, storage.first_written)
        )
        previous = kill.at
    hit_kills = {index for index, _ in hits}
    return SendHits(
        kills_hitting_a_send=len(hit_kills),
        sends_hit=len(hits),
        paths=frozenset(path for _, path in hits),
        flags=tuple(i in hit_kills for i in range(len(kills))),
    )


def _open_at(steps: Sequence[_Step], kill_at: float, written: Mapping[str, float]) -> bool:
    """Whether a send with these steps was still open when the host died at ``kill_at``."""
    for step in steps:
        message_id = step.call.message_id if step.call else None
        if message_id and written.get(message_id, float("inf")) <= kill_at:
            return False
    last = max(steps, key=lambda s: s.at)
    if last.call is None:
        window = WRITE_WINDOW if last.kind == "write" else ANSWER_WINDOW
        return kill_at - last.at <= window
    call = last.call
    if call.ended is None or call.ended >= kill_at:
        return True
    window = ANSWER_WINDOW if call.message_id else ERROR_ANSWER_GRACE
    return kill_at - call.ended <= window


@dataclass(frozen=True)
class SendTimeline:
    """One path's sends in words, times in seconds from the start of the chaos."""

    start: float
    kills: Sequence[Kill]
    storage: StorageLog
    calls: Sequence[EnqueueCall]

    def describe(self, path: str) -> str:
        """Blob reads, enqueue calls (status, message id, when it was written) and kills."""
        reads = [f"{at - self.start:.1f}" for at, p in self.storage.reads if p == path]
        writes = [f"{at - self.start:.1f}" for at, p in self.storage.writes if p == path]
        calls = [self._call(c) for c in self.calls if c.path == path]
        kills = [f"{k.at - self.start:.1f}" for k in self.kills]
        return (
            f"record write attempts at {', '.join(writes) or '-'} s; blob reads at "
            f"{', '.join(reads) or '-'} s; enqueue calls {'; '.join(calls) or '-'}; "
            f"kills at {', '.join(kills) or '-'} s"
        )

    def _call(self, call: EnqueueCall) -> str:
        ended = "-" if call.ended is None else f"{call.ended - self.start:.1f}"
        status = "dropped" if call.dropped else str(call.status)
        text = f"{call.started - self.start:.1f}-{ended} s {status}"
        if call.message_id:
            written = self.storage.first_written.get(call.message_id)
            text += f" {call.message_id[:8]} written at " + (
                "never" if written is None else f"{written - self.start:.1f} s"
            )
        return text


def _examples(items: list[str]) -> str:
    return f"; e.g. {', '.join(items[:3])}" if items else ""


def schedule_disagreements(store: TrackingStore) -> list[str]:
    """Records not final (or still to archive) without a schedule entry, and schedule entries
    without such a record: each is a file no one would ever move on, or polling for nothing."""
    records: list[TrackedFile] = []
    continuation = None
    while True:
        page = store.list_records(limit=1000, continuation=continuation)
        records.extend(page.records)
        if page.continuation is None:
            break
        continuation = page.continuation
    far = datetime.now(UTC) + timedelta(days=3650)
    scheduled = {entry.record_id for entry in store.schedule.due(far)}
    open_records = {r.record_id: r for r in records if not r.state.is_terminal or r.archive_pending}
    found = [
        f"{r.blob} {r.state.value} not scheduled"
        for rid, r in open_records.items()
        if rid not in scheduled
    ]
    found += [f"entry {rid} without an open record" for rid in scheduled - set(open_records)]
    return found


@dataclass
class ChaosReport:
    """The figures of one run; ``invariants`` says which held."""

    versions: int = 0
    paths: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    storage_requests: int = 0
    storage_exposed: int = 0
    storage_faults: dict[str, int] = field(default_factory=dict)
    storage_failure_rate: float = 0.0
    fno_calls: int = 0
    fno_faults: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    kill_times: tuple[float, ...] = ()
    kill_hits: tuple[bool, ...] = ()
    kills_hitting_a_send: int = 0
    sends_hit: int = 0
    enqueue_drops: int = 0
    unexplained_unknown: int = 0
    unexplained_examples: list[str] = field(default_factory=list)
    deliveries: int | None = None
    final: int = 0
    unseen: int = 0
    overwritten_seen: int = 0
    overwritten_sent: int = 0
    states: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    lost_examples: list[str] = field(default_factory=list)
    enqueues_per_version: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    outcome_unknown: int = 0
    wrong_outcomes: int = 0
    wrong_examples: list[str] = field(default_factory=list)
    untokened_messages: int = 0
    latest_lookups: tuple[int, int] = (0, 0)
    latest_mismatches: list[str] = field(default_factory=list)
    audits: int = 0
    disagreements: int = 0
    disagreement_examples: list[str] = field(default_factory=list)
    drain_seconds: float | None = None
    drain_window: float = 0.0
    run_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ambiguous_sends(self) -> int:
        """Sends where F&O may hold the file for a reason outside the app."""
        return self.sends_hit + self.enqueue_drops

    @property
    def invariants(self) -> dict[str, bool]:
        """Each invariant and whether it held."""
        return {
            "lost == 0": self.lost == 0,
            "duplicates == 0": self.duplicates == 0,
            "outcome unknown <= ambiguous sends": self.outcome_unknown <= self.ambiguous_sends,
            "outcome unknown only on paths with an ambiguous send": self.unexplained_unknown == 0,
            "wrong outcomes == 0": self.wrong_outcomes == 0,
            "record and schedule agree": self.disagreements == 0,
        }

    @property
    def ok(self) -> bool:
        """Every invariant held."""
        return all(self.invariants.values())

    def lines(self) -> list[str]:
        """The report as printed."""
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items()))
        storage = ", ".join(f"{k} {n}" for k, n in self.storage_faults.items())
        fno = ", ".join(f"{k} {n}" for k, n in sorted(self.fno_faults.items()))
        fno_rate = sum(self.fno_faults.values()) / self.fno_calls if self.fno_calls else 0.0
        kill_marks = " ".join(
            f"{t:.1f}s{'*' if hit else ''}"
            for t, hit in zip(self.kill_times, self.kill_hits, strict=True)
        )
        states = ", ".join(f"{k} {n}" for k, n in sorted(self.states.items()))
        per_version = ", ".join(f"{k}: {n}" for k, n in sorted(self.enqueues_per_version.items()))
        delivered = "n/a" if self.deliveries is None else str(self.deliveries)
        drain = (
            f"{self.drain_seconds:.1f} s"
            if self.drain_seconds is not None
            else f"not drained within {self.drain_window:.0f} s"
        )
        lines = [
            f"files uploaded: {self.versions} versions on {self.paths} paths ({kinds}); "
            f"overwritten versions the app had seen: {self.overwritten_seen}, that F&O had "
            f"received: {self.overwritten_sent}",
            f"storage faults: {storage} in {self.storage_exposed} requests open to faults "
            f"during the chaos, of {self.storage_requests} in all (failure rate "
            f"{self.storage_failure_rate:.1%} of those open to faults)",
            f"F&O faults: {fno} of {self.fno_calls} calls during the chaos ({fno_rate:.1%})",
            f"kills: {self.kills} (SIGKILL at {kill_marks or '-'}; * = hit a send)",
            f"kills that hit a send: {self.kills_hitting_a_send} ({self.sends_hit} sends hit)",
            f"blob deliveries: {delivered} invocations of enqueue_blob",
            f"files final: {self.final} of {self.versions} versions ({states}); "
            f"never seen (overwritten before delivery, never sent): {self.unseen}",
            f"lost: {self.lost}",
            f"F&O enqueues per accepted version: {per_version or '-'}",
            f"duplicates: {self.duplicates}",
            f"outcome unknown: {self.outcome_unknown} (ambiguous sends: {self.sends_hit} hit by "
            f"kills + {self.enqueue_drops} enqueues dropped or answered 502/504 by F&O = "
            f"{self.ambiguous_sends}); on a path without an ambiguous send: "
            f"{self.unexplained_unknown}",
            f"wrong outcomes: {self.wrong_outcomes}",
            f"record/schedule disagreements: {self.disagreements} in {self.audits} audits "
            f"(after each kill and after the drain){_examples(self.disagreement_examples)}",
            f"F&O messages without a version token: {self.untokened_messages}",
            f"?blob= lookups answering the latest version: {self.latest_lookups[0]} of "
            f"{self.latest_lookups[1]} paths",
            f"time to drain: {drain}",
            f"run time: {self.run_seconds:.0f} s",
        ]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"lost: {e}" for e in self.lost_examples]
        lines += [f"wrong: {e}" for e in self.wrong_examples]
        lines += [
            f"outcome unknown without an ambiguous send: {e}" for e in self.unexplained_examples
        ]
        lines += [f"?blob= not the latest: {e}" for e in self.latest_mismatches[:10]]
        lines += [
            f"invariant {name}: {'OK' if held else 'FAILED'}"
            for name, held in self.invariants.items()
        ]
        return lines


def summarise(report: ChaosReport, outcomes: Sequence[VersionOutcome]) -> None:
    """Fill the outcome figures of ``report``."""
    report.final = sum(o.final for o in outcomes)
    report.unseen = sum(o.unseen for o in outcomes)
    overwritten = [o for o in outcomes if o.version.overwritten]
    report.overwritten_seen = sum(o.record is not None for o in overwritten)
    report.overwritten_sent = sum(bool(o.fno_messages) for o in overwritten)
    report.states = Counter(_state_label(o) for o in outcomes if o.final)
    lost = [o for o in outcomes if not o.settled]
    report.lost = len(lost)
    report.lost_examples = [_describe(o) for o in lost[:10]]
    accepted = [o for o in outcomes if o.record is not None and o.state != "Rejected"]
    report.enqueues_per_version = Counter(
        f"{min(len(o.fno_messages), 2)}{'+' if len(o.fno_messages) >= 2 else ''}" for o in accepted
    )
    report.duplicates = sum(len(o.fno_messages) > 1 for o in outcomes)
    report.outcome_unknown = sum(o.outcome_unknown for o in outcomes)
    wrong = [(o, p) for o in outcomes if (p := o.problem())]
    report.wrong_outcomes = len(wrong)
    report.wrong_examples = [f"{_describe(o)}: {p}" for o, p in wrong[:10]]


def _state_label(outcome: VersionOutcome) -> str:
    record = outcome.record or {}
    if outcome.outcome_unknown:
        return "EnqueueFailed (outcome unknown)"
    if record.get("state") == "Rejected":
        return f"Rejected ({record.get('reject_reason')})"
    return str(record.get("state"))


def _describe(outcome: VersionOutcome) -> str:
    upload = outcome.version.upload
    record = outcome.record or {}
    error = str(record.get("last_error") or "")[:160]
    return (
        f"{upload.path} v{upload.version} ({upload.kind}, etag {outcome.version.etag}): "
        f"{outcome.state}, F&O messages {len(outcome.fno_messages)}"
        + (f", last_error {error!r}" if error else "")
    )


def count_deliveries(logs: Sequence[Path]) -> int | None:
    """Invocations of the blob function across the host logs; None when none is found."""
    total = 0
    for log in logs:
        text = log.read_text(errors="replace")
        total += len(re.findall(r"invocation function=enqueue_blob .*trigger=blob", text))
    return total or None


# -- the run ------------------------------------------------------------------------------------


def app_settings(emulator: Emulator, storage: str, run_id: str, claim_lease: int) -> dict[str, str]:
    """The app settings of the host: like tests/e2e, fast polling, a short claim lease."""
    return {
        "D365_BASE_URL": emulator.base_url,
        "D365_AUTHORITY_HOST": emulator.authority_host,
        "D365_TENANT_ID": TENANT_ID,
        "D365_CLIENT_ID": CLIENT_ID,
        "D365_CLIENT_SECRET": CLIENT_SECRET,
        "D365_ROUTES": json.dumps(ROUTES),
        "D365_HTTP_TIMEOUT": f"{D365_HTTP_TIMEOUT}s",
        "IntegrationStorage": storage,
        "AzureWebJobsStorage": storage,
        "INBOUND_CONTAINER": INBOUND,
        "STATUS_TABLE": f"chaos{run_id}",
        "ARCHIVE_CONTAINER": f"chaos-{run_id}-archive",
        "ERRORS_CONTAINER": f"chaos-{run_id}-errors",
        "POLL_SCHEDULE": POLL_SCHEDULE,
        "EXPORT_SCHEDULE": POLL_SCHEDULE,
        "RETENTION_SCHEDULE": "0 30 2 * * *",
        "POLL_TICK_BUDGET": f"{POLL_TICK_BUDGET}s",
        "POLL_INTERVAL_MIN": "1s",
        "POLL_INTERVAL_MAX": f"{POLL_INTERVAL_MAX:g}s",
        "MAX_PENDING_AGE": "1h",
        "CLAIM_LEASE": f"{claim_lease}s",
    }


def shortest_lease(
    settings: Callable[[int], Mapping[str, str]], requested: int
) -> tuple[int, str | None]:
    """The requested CLAIM_LEASE if the app's settings accept it, else the shortest accepted
    candidate, with the settings' reason for refusing the shorter one.

    :raises RuntimeError: the settings refuse something else, or every candidate.
    """
    from shared.config import Settings, SettingsError

    reason = None
    for lease in sorted({requested, *(c for c in LEASE_CANDIDATES if c > requested)}):
        try:
            Settings.from_env(settings(lease))
        except SettingsError as exc:
            others = [p for p in exc.problems if not p.startswith("CLAIM_LEASE")]
            if others:
                raise RuntimeError(f"the chaos run's app settings are refused: {exc}") from exc
            reason = reason or "; ".join(exc.problems)
            continue
        return lease, reason
    raise RuntimeError(f"no CLAIM_LEASE up to {LEASE_CANDIDATES[-1]} s is accepted: {reason}")


def _emulator(options: ChaosOptions) -> ChaosEmulator:
    jobs = [
        Job(CUSTOMERS_ID, "CustomersV3", "Import customers", (CLIENT_ID,)),
        Job(JOURNAL_ID, "General journal", "Import general journal", (CLIENT_ID,)),
        Job(PACKAGE_ID, "", "Import package", (CLIENT_ID,)),
    ]
    knobs = Knobs(
        enqueued_seconds=0.5, preprocessing_seconds=0.5, processing_seconds=0.5, retry_after=1
    )
    enqueues = EnqueueLog()
    faults = FnoFaults(options.seed, options.d365_fault_rate, enqueues)
    return ChaosEmulator(
        jobs,
        [App(CLIENT_ID, CLIENT_SECRET)],
        tenant_id=TENANT_ID,
        tls=True,
        knobs=knobs,
        faults=faults,
        enqueues=enqueues,
    )


@dataclass(frozen=True)
class _Services:
    """What one run started."""

    proxy: FaultProxy
    emulator: ChaosEmulator
    host: HostProcess
    container: ContainerClient
    storage: StorageLog
    status: TrackingStore
    """The status table read straight from Azurite (never through the proxy)."""


class ChaosRun:
    """One run: the services, the load, the kills, the drain and the judgement."""

    def __init__(self, options: ChaosOptions, *, say: Callable[[str], None] = _say) -> None:
        self.options = options
        self._say = say
        self._rng = random.Random(options.seed)
        self._run_id = uuid.UUID(int=self._rng.getrandbits(128)).hex[:10]
        self._chaos_start = 0.0
        self.report = ChaosReport()

    def execute(self) -> ChaosReport:
        """Run everything; always stops what it started."""
        started = time.monotonic()
        work_dir = self.options.work_dir or Path(tempfile.mkdtemp(prefix="chaos-"))
        work_dir.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            services = self._start(stack, work_dir)
            versions, kills = self._chaos(services)
            self._drain(services, versions)
            self._audit(services)
            self._judge(services, versions, kills)
        self.report.run_seconds = time.monotonic() - started
        return self.report

    def _start(self, stack: ExitStack, work_dir: Path) -> _Services:
        """Azurite, the proxy and the emulator with faults off, and a first host."""
        options = self.options
        storage = StorageLog()
        plan = dataclasses.replace(
            FaultPlan.mixed(options.storage_fault_rate, latency=options.storage_latency_rate),
            target_pattern=NOT_THE_TRIGGER_LISTING,
        )
        azurite = stack.enter_context(Azurite())
        proxy = stack.enter_context(
            FaultProxy.for_azurite(
                azurite, plan=plan, seed=options.seed, enabled=False, observer=storage
            )
        )
        emulator = stack.enter_context(_emulator(options))
        emulator.chaos_faults.enabled = False
        host = self._host(emulator, proxy, work_dir)
        stack.callback(host.stop)
        blobs = stack.enter_context(
            BlobServiceClient.from_connection_string(azurite.connection_string)
        )
        container = blobs.get_container_client(INBOUND)
        container.create_container()
        host.start()
        self._say(f"host logs: {work_dir}")
        tables = stack.enter_context(
            TableServiceClient.from_connection_string(azurite.connection_string)
        )
        status = TrackingStore(tables.get_table_client(f"chaos{self._run_id}"))
        return _Services(proxy, emulator, host, container, storage, status)

    def _host(self, emulator: Emulator, proxy: FaultProxy, work_dir: Path) -> HostProcess:
        def settings(lease: int) -> dict[str, str]:
            return app_settings(emulator, proxy.connection_string, self._run_id, lease)

        lease, refused = shortest_lease(settings, self.options.claim_lease)
        if refused:
            self.report.notes.append(
                f"CLAIM_LEASE {self.options.claim_lease}s refused by the settings ({refused}); "
                f"using {lease}s"
            )
        poll_lease = POLL_TICK_BUDGET + D365_HTTP_TIMEOUT + 30
        recovery = max(lease, poll_lease) + 2 * POLL_INTERVAL_MAX
        window = max(self.options.drain_timeout, recovery + 30)
        if window > self.options.drain_timeout:
            self.report.notes.append(
                f"drain window raised from {self.options.drain_timeout:.0f} s to {window:.0f} s: "
                f"recovery after a kill may wait for CLAIM_LEASE ({lease} s) or the dead "
                f"tick's poll lease ({poll_lease} s), plus the longest poll interval"
            )
        self.report.drain_window = window
        env = {**os.environ, **settings(lease)}
        if emulator.ca_bundle is None:
            raise RuntimeError("the emulator serves no TLS CA")
        env["REQUESTS_CA_BUNDLE"] = env["SSL_CERT_FILE"] = emulator.ca_bundle
        env["PYTHONPATH"] = str(ROOT)
        return HostProcess(env, free_port(), work_dir)

    def _chaos(self, services: _Services) -> tuple[list[UploadedVersion], list[Kill]]:
        """Uploads on schedule while faults are on and the host is killed at random moments."""
        seconds = self.options.upload_seconds
        chaos = self.options.chaos_seconds
        plan = plan_uploads(self.options.files, seconds, self._rng, self._run_id)
        services.storage.watch(sorted({u.path for u in plan if u.kind.is_valid}))
        kill_at = sorted(self._rng.uniform(1.0, chaos) for _ in range(self.options.kills))
        host = services.host
        services.proxy.reset_counts()
        services.proxy.enabled = services.emulator.chaos_faults.enabled = True
        start = self._chaos_start = time.monotonic()
        uploader = Uploader(services.container, plan, start, services.emulator.enqueues.received)
        uploader.start()
        self._say(
            f"chaos for {chaos:.0f} s: {len(plan)} uploads over {seconds:.0f} s, "
            f"{len(kill_at)} kills"
        )
        kills: list[Kill] = []
        for at in kill_at:
            # Each host gets a moment to work before it dies.
            now = time.monotonic()
            time.sleep(max(0.0, start + at - now, host.ready_at + 0.3 - now))
            self._await_work(services)
            host.kill()
            kills.append(Kill(time.monotonic()))
            # A request the host sent before it died may still land (the proxy holds one for up
            # to its longest latency spike, as a network may): audit what it left behind once
            # that has passed, or the audit's two reads can straddle one transaction.
            time.sleep(_IN_FLIGHT_SECONDS)
            # What a dead host left behind: a record and its schedule entry must agree.
            self._audit(services)
            time.sleep(self._rng.uniform(0.2, 1.5))
            host.start()
        uploader.join()
        if uploader.error is not None:
            raise RuntimeError(f"upload failed: {uploader.error!r}") from uploader.error
        time.sleep(max(0.0, start + chaos - time.monotonic()))
        self._await_fno_calls(services, deadline=start + 2 * chaos)
        services.proxy.enabled = services.emulator.chaos_faults.enabled = False
        self._fault_counts(services)
        latest: dict[str, UploadedVersion] = {}
        for version in uploader.versions:
            if version.upload.path in latest:
                latest[version.upload.path].overwritten = True
            latest[version.upload.path] = version
        self.report.kill_times = tuple(k.at - start for k in kills)
        return uploader.versions, kills

    def _await_work(self, services: _Services) -> None:
        """Wait until the running host has begun work on a file (a record write), at most
        ``HOST_WARM_UP`` seconds after it was ready. On a loaded machine a new host needs
        seconds to deliver its first file: a kill before that hits nothing but a start."""
        ready_at = services.host.ready_at
        deadline = ready_at + HOST_WARM_UP
        while not services.storage.wrote_since(ready_at) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _await_fno_calls(self, services: _Services, *, deadline: float) -> None:
        """Keep the faults on past the planned chaos until F&O has seen ``MIN_FNO_CALLS``
        calls under them, or until ``deadline``. Hosts slowed by a loaded machine (each start
        takes seconds, a killed worker's claim waits for its lease) may deliver little while
        the planned window lasts: the chaos would then not have tested F&O's faults at all."""
        faults = services.emulator.chaos_faults
        began = time.monotonic()
        while faults.calls_seen() < MIN_FNO_CALLS and time.monotonic() < deadline:
            time.sleep(0.2)
        held = time.monotonic() - began
        if held >= 0.2:
            self.report.notes.append(
                f"faults kept on {held:.0f} s past the planned chaos, until F&O had seen "
                f"{faults.calls_seen()} calls under them (at least {MIN_FNO_CALLS} wanted)"
            )

    def _audit(self, services: _Services) -> None:
        """Count records and schedule entries that disagree, read straight from Azurite."""
        self.report.audits += 1
        try:
            found = schedule_disagreements(services.status)
        except AzureError as exc:
            self.report.notes.append(f"audit skipped: {type(exc).__name__}")
            return
        self.report.disagreements += len(found)
        self.report.disagreement_examples.extend(found[:3])

    def _fault_counts(self, services: _Services) -> None:
        """The faults of the chaos phase, over the calls of the chaos phase."""
        report = self.report
        counts = services.proxy.counts()
        report.storage_requests = counts.requests
        report.storage_exposed = counts.exposed
        report.storage_faults = {STORAGE_FAULT_LABELS[k]: counts.faults[k] for k in FaultKind}
        report.storage_failure_rate = counts.failure_rate
        faults = services.emulator.chaos_faults
        report.fno_calls = sum(faults.calls.values())
        report.fno_faults = Counter(faults.faults)

    def _drain(self, services: _Services, versions: list[UploadedVersion]) -> None:
        """Faults are off: wait until every version is settled or the window passes."""
        reader = StatusReader(services.host.url)
        start = time.monotonic()
        self._say(f"faults off; draining (window {self.report.drain_window:.0f} s)")
        try:
            while time.monotonic() - start < self.report.drain_window:
                try:
                    records = reader.list_all()
                except requests.RequestException as exc:
                    self._say(f"listing failed, retrying: {exc}")
                    time.sleep(2)
                    continue
                messages, _ = services.emulator.messages_by_token()
                if all(o.settled for o in judge(versions, records, messages)):
                    self.report.drain_seconds = time.monotonic() - start
                    return
                time.sleep(2)
        finally:
            reader.close()

    def _judge(
        self, services: _Services, versions: list[UploadedVersion], kills: list[Kill]
    ) -> None:
        report = self.report
        reader = StatusReader(services.host.url)
        try:
            records = reader.list_all()
            latest = {v.upload.path: v for v in versions}
            for path, version in latest.items():
                answer = reader.latest(path) or {}
                if _bare_etag(answer.get("blob_etag")) != version.etag:
                    report.latest_mismatches.append(
                        f"{path}: latest upload {version.etag}, ?blob= answers "
                        f"{_bare_etag(answer.get('blob_etag')) or 'nothing'} "
                        f"({answer.get('state', 'no record')})"
                    )
            report.latest_lookups = (len(latest) - len(report.latest_mismatches), len(latest))
        finally:
            reader.close()
        emulator = services.emulator
        messages, report.untokened_messages = emulator.messages_by_token()
        outcomes = judge(versions, records, messages)
        summarise(report, outcomes)
        report.versions = len(versions)
        report.paths = len({v.upload.path for v in versions})
        report.kinds = Counter(
            f"{v.upload.kind}{' re-upload' if v.upload.version > 1 else ''}" for v in versions
        )
        calls = emulator.enqueues.calls
        storage = services.storage
        hits = sends_hit_by_kills(kills, storage, calls)
        report.kills = len(kills)
        report.kills_hitting_a_send = hits.kills_hitting_a_send
        report.sends_hit = hits.sends_hit
        report.kill_hits = hits.flags
        # A dropped connection, or a gateway's 502/504: the client cannot tell whether F&O
        # kept the file.
        dropped = [c for c in calls if c.dropped or c.status in GATEWAY_STATUSES]
        report.enqueue_drops = len(dropped)
        ambiguous = hits.paths | {c.path for c in dropped if c.path}
        unexplained = [
            o for o in outcomes if o.outcome_unknown and o.version.upload.path not in ambiguous
        ]
        report.unexplained_unknown = len(unexplained)
        timeline = SendTimeline(self._chaos_start, kills, storage, calls)
        report.unexplained_examples = [
            f"{_describe(o)}; {timeline.describe(o.version.upload.path)}" for o in unexplained[:5]
        ]
        report.deliveries = count_deliveries(services.host.logs)


STORAGE_FAULT_LABELS = {
    FaultKind.SERVER_BUSY: "503 ServerBusy",
    FaultKind.RESET_BEFORE: "reset before forwarding",
    FaultKind.RESET_AFTER: "lost ack (reset after forwarding)",
    FaultKind.LATENCY: "latency spike",
}


def run(options: ChaosOptions, *, say: Callable[[str], None] = _say) -> ChaosReport:
    """One chaos run; the report says whether every invariant held."""
    return ChaosRun(options, say=say).execute()


def _parse_args(argv: Sequence[str] | None) -> ChaosOptions:
    parser = argparse.ArgumentParser(
        prog="python bench/chaos.py", description=__doc__.split("\n")[0]
    )
    add = parser.add_argument
    add("--files", type=int, help="blob versions to upload (default 300; --small 40)")
    add("--seed", type=int, help="seeds the load, the kills and every fault draw (default 7)")
    add("--kills", type=int, help="SIGKILLs of the host (default 10; --small 3)")
    add("--storage-fault-rate", type=float, help="share of storage requests that fail (0.12)")
    add("--d365-fault-rate", type=float, help="share of F&O calls that fail (0.3)")
    add("--drain-timeout", type=float, help="seconds to wait for every version to be final (300)")
    add("--load-seconds", type=float, help="seconds the uploads are spread over (files / 4)")
    add("--chaos-tail", type=float, help="seconds faults and kills go on after the uploads")
    add("--claim-lease", type=int, help="CLAIM_LEASE seconds to ask for (20; raised if refused)")
    add("--work-dir", type=Path, help="where host logs go (default a new temporary folder)")
    add("--small", action="store_true", help="a quick run: 40 files, 3 kills, 10 %% storage faults")
    args = vars(parser.parse_args(argv))
    small = args.pop("small")
    given = {k: v for k, v in args.items() if v is not None}
    options = ChaosOptions.small(**given) if small else ChaosOptions(**given)
    if options.files < 1 or options.kills < 0:
        parser.error("--files must be at least 1 and --kills at least 0")
    for name in ("storage_fault_rate", "d365_fault_rate"):
        if not 0 <= getattr(options, name) <= 1:
            parser.error(f"--{name.replace('_', '-')} must be a fraction from 0 to 1")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the figures; 0 when every invariant held, 1 when one failed."""
    options = _parse_args(argv)
    _say(f"chaos run: {dataclasses.asdict(options)}")
    report = run(options)
    _say()
    for line in report.lines():
        _say(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
