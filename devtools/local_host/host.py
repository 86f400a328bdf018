"""The orchestrator: the HTTP server, the blob scan loop and the timer loops of one app."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError
from azure.storage.blob import ContainerClient

from devtools.lifecycle import Service
from devtools.local_host.bindings import BlobFunction, read_functions
from devtools.local_host.blob_binding import convert_blob_client, has_connection_setting
from devtools.local_host.blob_watcher import BlobVersion, BlobWatcher
from devtools.local_host.http_server import HttpDispatcher, HttpServer
from devtools.local_host.invocation import invoke
from devtools.local_host.poison_queue import send_to_poison_queue
from devtools.local_host.timer_runner import TimerRunner

_LOGGER = logging.getLogger(__name__)

_TIMER_PAST_DUE_AFTER = timedelta(seconds=1)


class LocalHost(Service):
    """Drives an ``azure.functions.FunctionApp``'s functions from their trigger bindings.

    :param app: the app whose ``get_functions()`` are hosted.
    :keyword storage_connection_string: the storage account of the blob trigger and poison queue.
    :keyword http_host/http_port: where ``/api/<route>`` is served; port 0 picks a free one.
    :keyword blob_scan_interval: seconds between container listings.
    :keyword timer_interval: a fixed timer interval in seconds; None follows each timer's
        NCRONTAB schedule.
    :keyword function_key: when set, FUNCTION/ADMIN routes need it (``x-functions-key`` or
        ``?code=``); None enforces no keys, as Core Tools does locally.
    :keyword poison_threshold: tries of one blob version before it goes to the poison queue.
    :keyword max_degree_of_parallelism: blob invocations running at once.
    :keyword fire_existing: also fire for the blobs present at start.
    :raises UnsupportedBindingError: a function has a binding this host cannot drive.
    :raises ValueError: a ``%SETTING%`` is missing from ``os.environ`` (the text names it), or a
        schedule does not parse.
    """

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        storage_connection_string: str,
        http_host: str = "127.0.0.1",
        http_port: int = 7071,
        blob_scan_interval: float = 1.0,
        timer_interval: float | None = None,
        function_key: str | None = None,
        poison_threshold: int = 5,
        max_degree_of_parallelism: int = 4,
        fire_existing: bool = False,
    ) -> None:
        if poison_threshold < 1:
            raise ValueError("poison_threshold must be at least 1")
        self._functions = read_functions(app, os.environ, timer_interval=timer_interval)
        self._provide_connection_settings(storage_connection_string)
        self._connection_string = storage_connection_string
        self._http_address = (http_host, http_port)
        self._blob_scan_interval = blob_scan_interval
        self._poison_threshold = poison_threshold
        self._fire_existing = fire_existing
        self._dispatcher = HttpDispatcher(self._functions.https, function_key)
        self._watchers = [
            BlobWatcher(
                f, ContainerClient.from_connection_string(storage_connection_string, f.container)
            )
            for f in self._functions.blobs
        ]
        self._timers = [TimerRunner(f) for f in self._functions.timers]
        self._blob_pool = ThreadPoolExecutor(max_degree_of_parallelism, "local-host-blob")
        self._timer_pool = ThreadPoolExecutor(max(1, len(self._timers)), "local-host-timer")
        self._scan_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: HttpServer | None = None
        self._started = False
        self._baseline_taken = False

    @property
    def function_names(self) -> tuple[str, ...]:
        """The hosted functions, by name."""
        return self._functions.names

    @property
    def http_url(self) -> str:
        """The server's root, e.g. ``http://127.0.0.1:7071``.

        :raises RuntimeError: the server is not running (not started, or no HTTP function).
        """
        if self._server is None:
            raise RuntimeError("the HTTP server is not running")
        return self._server.base_url

    def start(self) -> None:
        """Take the blob baseline, start the HTTP server and the scan and timer loops."""
        if self._started:
            raise RuntimeError("a LocalHost starts once")
        self._started = True
        if self._functions.https:
            self._server = HttpServer(self._http_address, self._dispatcher)
            self._spawn("local-host-http", self._server.serve_forever, 0.2)
        if self._watchers:
            self._take_baseline()
            self._spawn("local-host-blob-scan", self._scan_loop)
        for runner in self._timers:
            self._spawn(f"local-host-timer-{runner.function.name}", self._timer_loop, runner)
        _LOGGER.info(
            "local host started functions=%s http=%s containers=%s",
            ",".join(self.function_names),
            self._server.base_url if self._server else "-",
            ",".join(w.function.container for w in self._watchers) or "-",
        )

    def stop(self) -> None:
        """Stop every loop, wait for running invocations, close the server (idempotent)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self._blob_pool.shutdown(wait=True)
        self._timer_pool.shutdown(wait=True)
        if self._server is not None:
            self._server.server_close()
            self._server = None
        for watcher in self._watchers:
            watcher.container.close()
        _LOGGER.info("local host stopped")

    def scan_blobs_once(self) -> int:
        """List the blob containers now and run the blob functions for every new blob version.

        Waits until those invocations (with their retries) have finished.

        :returns: how many blob versions were run.
        """
        futures = self._scan()
        wait(futures)
        return len(futures)

    def run_timer_once(self) -> int:
        """Run every timer function once now, in this thread; a timer still running is skipped.

        :returns: how many timer functions ran.
        """
        ran = 0
        for runner in self._timers:
            if runner.try_begin("manual"):
                runner.run_claimed(past_due=False)
                ran += 1
        return ran

    def _spawn(self, name: str, target: Callable[..., Any], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _take_baseline(self) -> None:
        with self._scan_lock:
            if self._baseline_taken:
                return
            self._baseline_taken = True
            if not self._fire_existing:
                for watcher in self._watchers:
                    watcher.take_baseline()

    def _scan(self) -> list[Future[None]]:
        self._take_baseline()
        with self._scan_lock:
            return [
                self._blob_pool.submit(self._run_blob, watcher.function, version)
                for watcher in self._watchers
                for version in watcher.take_new()
            ]

    def _scan_loop(self) -> None:
        while not self._stopping.wait(self._blob_scan_interval):
            self._scan()

    def _provide_connection_settings(self, storage_connection_string: str) -> None:
        # The blob converter builds the client from the binding's connection settings, as in
        # Azure. A connection with no setting at all gets the host's storage, as if
        # local.settings.json had it; one that has settings keeps them.
        for function in self._functions.blobs:
            if not has_connection_setting(function.connection, os.environ):
                os.environ[function.connection] = storage_connection_string
                _LOGGER.info(
                    "local host app setting connection=%s set to the host's storage",
                    function.connection,
                )

    def _run_blob(self, function: BlobFunction, version: BlobVersion) -> None:
        # The host's blob retries are immediate by default; the last failure poisons the blob.
        for attempt in range(1, self._poison_threshold + 1):
            # Built by the blob extension's converter from model binding data, as the worker
            # does in Azure (devtools.local_host.blob_binding).
            with convert_blob_client(
                function.connection, function.container, version.name
            ) as client:
                detail = (
                    f"trigger=blob blob={function.container}/{version.name} "
                    f"etag={version.etag} attempt={attempt}"
                )
                outcome = invoke(
                    function.name, function.user_function, detail, **{function.binding_name: client}
                )
            if outcome.succeeded:
                return
        try:
            send_to_poison_queue(
                self._connection_string, function, version, tries=self._poison_threshold
            )
        except AzureError:
            _LOGGER.exception(
                "poison queue write failed function=%s blob=%s/%s",
                function.name,
                function.container,
                version.name,
            )

    def _timer_loop(self, runner: TimerRunner) -> None:
        schedule = runner.function.schedule
        due = schedule.next_after(datetime.now(UTC))
        if runner.function.run_on_startup and runner.try_begin("startup"):
            self._timer_pool.submit(runner.run_claimed, past_due=False)
        while not self._stopping.wait(max(0.0, (due - datetime.now(UTC)).total_seconds())):
            now = datetime.now(UTC)
            if runner.try_begin(f"schedule {due.isoformat()}"):
                past_due = now - due > _TIMER_PAST_DUE_AFTER
                self._timer_pool.submit(runner.run_claimed, past_due=past_due)
            due = schedule.next_after(max(due, now))
