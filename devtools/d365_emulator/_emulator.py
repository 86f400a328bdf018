"""The Emulator: one loopback HTTP(S) server that plays an F&O environment and its Entra
tenant, with a lifecycle clock, recorded requests and fault knobs."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import trustme

from devtools.lifecycle import Service

from ._blobs import BlobStore
from ._clock import Clock
from ._entities import evaluate
from ._entra import Entra
from ._exports import customers_export, export_package
from ._faults import FaultInjector
from ._fno import Call, Environment, FnoApi
from ._handler import EmulatorServer
from ._limits import UserLimits
from ._models import (
    App,
    ExecutionErrorRecord,
    Job,
    Knobs,
    Message,
    Outcome,
    RecordedRequest,
    normalize_guid,
)
from ._package_exports import PackageExports
from ._packages import PackageApi
from ._replies import Reply
from ._store import MessageStore

_LOGGER = logging.getLogger(__name__)
_SUMMARY_BY_STATUS = {"Processed": "Succeeded", "ProcessedWithErrors": "PartiallySucceeded"}


def _evaluate(job: Job, entity: str, company: str, path: Path | None) -> Outcome:
    if job.is_data_package or path is None:
        return Outcome("Processed")
    return evaluate(entity, company, path)


class Emulator(Service):
    """A local F&O environment with its Entra tenant; use as a context manager.

    :param jobs: the recurring data jobs.
    :param apps: the Entra app registrations that may get tokens.
    :keyword tenant_id: the tenant of the authority and the `tid` claim.
    :keyword tls: serve HTTPS with a throwaway CA (see `ca_bundle`).
    :keyword host/port: where to listen; port 0 picks a free one.
    :keyword knobs: initial knobs; `reset()` goes back to these.
    """

    def __init__(
        self,
        jobs: Iterable[Job],
        apps: Iterable[App],
        *,
        tenant_id: str = "faketenant",
        tls: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        knobs: Knobs | None = None,
    ) -> None:
        self._initial_jobs = {job.activity_id: job for job in jobs}
        self._jobs = dict(self._initial_jobs)
        self.tenant_id = tenant_id
        self.tls = tls
        self.host = host
        self.port = port
        self._defaults = (knobs or Knobs()).copy()
        self.knobs = self._defaults.copy()
        self.clock = Clock()
        self.faults = FaultInjector(self.knobs.seed)
        self.entra = Entra(tenant_id, apps)
        self.store = MessageStore(_evaluate)
        self.blobs = BlobStore(self.knobs, lambda: self.base_url, lambda: self.spool_dir)
        self.packages = PackageApi(
            self._jobs, self.clock, self.knobs, lambda: self.base_url, self.blobs
        )
        self.package_exports = PackageExports(
            self.clock, self.knobs, lambda: self.base_url, self.blobs
        )
        self.fno = FnoApi(
            Environment(
                self._jobs,
                self.store,
                self.entra,
                self.clock,
                self.knobs,
                lambda: self.base_url,
                self.packages,
                self.package_exports,
            )
        )
        self.limits = UserLimits()
        self._requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()
        self._connections = 0
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._work_dir: Path | None = None
        self.ca_bundle: str | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Listen and serve in a background thread."""
        self._work_dir = Path(tempfile.mkdtemp(prefix="d365-emulator-"))
        self.spool_dir.mkdir()
        context = self._tls_context() if self.tls else None
        self._server = EmulatorServer((self.host, self.port), self, context)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="d365-emulator",
            daemon=True,
        )
        self._thread.start()
        _LOGGER.info(
            "d365 emulator started base_url=%s authority_host=%s ca_bundle=%s",
            self.base_url,
            self.authority_host,
            self.ca_bundle,
        )

    def stop(self) -> None:
        """Stop serving and delete the work folder (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

    def _tls_context(self) -> ssl.SSLContext:
        assert self._work_dir is not None
        ca = trustme.CA(organization_name="D365 emulator test CA")
        cert = ca.issue_cert(self.host, "localhost", "fno.localhost")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        ca_path = self._work_dir / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        self.ca_bundle = str(ca_path)
        return context

    # -- addresses --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The environment root (the token audience): scheme, host and port, no slash."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def authority_host(self) -> str:
        """The Entra authority host; tokens come from /{tenant}/oauth2/v2.0/token."""
        return self.base_url

    @property
    def scope(self) -> str:
        """The client-credentials scope for this environment."""
        return f"{self.base_url}/.default"

    @property
    def spool_dir(self) -> Path:
        """Where enqueued and exported files are kept."""
        if self._work_dir is None:
            raise RuntimeError("the emulator is not started")
        return self._work_dir / "messages"

    # -- inspection and control -------------------------------------------------------------

    @property
    def jobs(self) -> tuple[Job, ...]:
        """The recurring data jobs."""
        return tuple(self._jobs.values())

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received since the last reset, oldest first."""
        with self._requests_lock:
            return list(self._requests)

    @property
    def messages(self) -> dict[str, Message]:
        """Every message by id, as it is now on the emulator clock."""
        return self.store.snapshot(self.clock.now())

    def received(self, activity_id: str) -> list[Message]:
        """A job's enqueued files in the order F&O received them (its queue's order, which a
        job set to process messages in order follows)."""
        key = normalize_guid(activity_id)
        return [m for m in self.messages.values() if m.activity_id == key]

    def record(self, request: RecordedRequest) -> None:
        """Keep one request (called by the handler)."""
        with self._requests_lock:
            self._requests.append(request)

    @property
    def connections(self) -> int:
        """TCP connections accepted since the last reset (a reused keep-alive one counts once)."""
        with self._requests_lock:
            return self._connections

    def record_connection(self) -> None:
        """Count one accepted connection (called by the server)."""
        with self._requests_lock:
            self._connections += 1

    def set_outcome(
        self,
        activity_or_message_id: str,
        status: str = "ProcessedWithErrors",
        errors: Iterable[ExecutionErrorRecord | Mapping[str, str]] = (),
        summary: str | None = None,
    ) -> None:
        """Force the terminal status (any text, even one F&O never sends) and errors of one
        message, or of every message of a job that has not finished yet."""
        records = tuple(ExecutionErrorRecord.coerce(error) for error in errors)
        outcome = Outcome(status, records, summary or _SUMMARY_BY_STATUS.get(status, "Failed"))
        self.store.force(normalize_guid(activity_or_message_id), outcome)

    def set_job_enabled(self, activity_id: str, enabled: bool) -> None:
        """Enable or disable a job; enabling starts the messages that waited for it."""
        key = normalize_guid(activity_id)
        self._jobs[key] = dataclasses.replace(self._jobs[key], enabled=enabled)
        if enabled:
            self.store.start_pending(key, self.clock.now())

    def add_export(self, activity_id: str, data: bytes) -> str:
        """Queue an exported file on a job for dequeue; answer its correlation id."""
        with tempfile.NamedTemporaryFile(
            dir=self.spool_dir, prefix="export-", delete=False
        ) as handle:
            handle.write(data)
        return self.add_export_file(activity_id, Path(handle.name))

    def lose_export_file(self, message_id: str) -> None:
        """Make an export's download answer 404 from now on (its file gone in F&O), while it
        is still offered on dequeue: an export that fails the same way every time."""
        self.store.lose_export_file(message_id)

    def add_export_file(self, activity_id: str, path: Path) -> str:
        """Queue a file already on disk as an export; `reset()` deletes it, as it does the
        copies `add_export` makes."""
        job = self._jobs[normalize_guid(activity_id)]
        return self.store.add_export(job, path, path.stat().st_size, self.clock.now())

    def add_customers_export(
        self, activity_id: str, *, company: str = "USMF", rows: int = 3, file_format: str = "xml"
    ) -> str:
        """Queue what a CustomersV3 export job produces: its file (``xml``/``csv``) or, with
        ``file_format="package"``, the data package around it."""
        if file_format == "package":
            return self.add_export(activity_id, export_package(company, rows))
        data = customers_export(company, rows, file_format=file_format)
        return self.add_export(activity_id, data)

    def issue_token(
        self,
        client_id: str,
        *,
        audience: str | None = None,
        lifetime_seconds: int | None = None,
        signing_key: Any = None,
    ) -> str:
        """A token as the token endpoint would issue it; override audience, lifetime (negative:
        already expired) or the signing key to provoke each 401."""
        return self.entra.issue_token(
            client_id,
            self.base_url if audience is None else audience,
            host=self.authority_host,
            lifetime=self.knobs.token_lifetime_seconds
            if lifetime_seconds is None
            else lifetime_seconds,
            key=signing_key,
        )

    def reset(self) -> None:
        """Forget requests, connections, messages and forced outcomes; knobs and jobs back to
        their start."""
        for field in dataclasses.fields(Knobs):
            setattr(self.knobs, field.name, getattr(self._defaults, field.name))
        self.faults.reseed(self.knobs.seed)
        self.clock.speed = 1.0
        self.packages.clear()
        self.package_exports.clear()
        self.limits.clear()
        for path in [*self.store.clear(), *self.blobs.clear()]:
            path.unlink(missing_ok=True)
        with self._requests_lock:
            self._requests.clear()
            self._connections = 0
        # In place: the F&O handlers hold this dict.
        self._jobs.clear()
        self._jobs.update(self._initial_jobs)

    # -- Entra routes -----------------------------------------------------------------------

    def serve_oidc(self, call: Call) -> Reply:
        """GET /{tenant}[/v2.0]/.well-known/openid-configuration."""
        version = "v2.0" if call.params.get("version") else "v1"
        return self.entra.openid_configuration(call.params["tenant"], self.authority_host, version)

    def serve_keys(self, call: Call) -> Reply:
        """GET /{tenant}/discovery[/v2.0]/keys."""
        return self.entra.keys(call.params["tenant"])

    def serve_token(self, call: Call) -> Reply:
        """POST /{tenant}/oauth2[/v2.0]/token (form-encoded client credentials); answered
        `knobs.token_delay_seconds` late (a reset ends the wait)."""
        until = time.monotonic() + self.knobs.token_delay_seconds
        while self.knobs.token_delay_seconds > 0 and time.monotonic() < until:
            time.sleep(0.05)
        text = (call.body.data or b"").decode("utf-8", errors="replace")
        form = dict(parse_qsl(text, keep_blank_values=True))
        endpoint = f"{self.authority_host}{call.path}"
        return self.entra.token(
            call.params["tenant"],
            form,
            host=self.authority_host,
            endpoint=endpoint,
            lifetime=self.knobs.token_lifetime_seconds,
        )
