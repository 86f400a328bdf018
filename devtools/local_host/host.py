"""The orchestrator: the HTTP server (routes and the blob webhook), the blob trigger queue's
listener, the timer loops, and the polling fallback of one app."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import azure.functions as func
from azure.core.exceptions import AzureError
from azure.storage.blob import ContainerClient

from devtools.blob_listing import ContainerListing
from devtools.lifecycle import Service
from devtools.local_host.bindings import BlobFunction, read_functions
from devtools.local_host.blob_binding import has_connection_setting
from devtools.local_host.blob_listener import BlobQueueListener
from devtools.local_host.blob_queue import (
    BlobTriggerMessage,
    BlobTriggerQueue,
    function_id,
    queue_name,
)
from devtools.local_host.blob_webhook import EXTENSION_NAME, BlobWebhook
from devtools.local_host.easy_auth import EasyAuth
from devtools.local_host.http_server import (
    WEBHOOK_PREFIX,
    HttpDispatcher,
    HttpServer,
    WebhookHandler,
)
from devtools.local_host.timer_runner import TimerRunner
from devtools.storage_options import STORAGE_OPTIONS
from shared.config.http_auth import PLATFORM_AUTH_SETTING

_LOGGER = logging.getLogger(__name__)

_TIMER_PAST_DUE_AFTER = timedelta(seconds=1)
# How often the blob trigger queue is read besides the webhook's wake-up: messages a previous
# host left, and tries a failure released.
_QUEUE_POLL_SECONDS = 1.0


class LocalHost(Service):
    """Drives an ``azure.functions.FunctionApp``'s functions from their trigger bindings.

    Blob functions run from the host's blob trigger queue (:mod:`.blob_queue`), fed by the
    blob extension's webhook ``/runtime/webhooks/blobs`` (:mod:`.blob_webhook`), where Event
    Grid's events arrive in Azure and ``devtools.event_grid``'s locally. Polling the
    containers is a fallback (``poll_blobs``), for runs without an Event Grid publisher.

    :param app: the app whose ``get_functions()`` are hosted.
    :keyword storage_connection_string: the host's storage: the blob trigger queue, the poison
        queue, the listings of the polling fallback.
    :keyword http_host/http_port: where ``/api/<route>`` and the webhook are served; port 0
        picks a free one.
    :keyword host_id: names the blob trigger queue (``azure-webjobs-blobtrigger-<host id>``),
        as the app's name does in Azure; a host started again with the same id runs the
        messages its predecessor left. None: a new id, so hosts sharing a storage account never
        take each other's messages.
    :keyword poll_blobs: the fallback: list the trigger containers every
        ``blob_scan_interval`` seconds and queue each new blob version (as the
        ``LogsAndContainerScan`` source does), instead of waiting for events.
    :keyword timer_interval: a fixed timer interval in seconds; None follows each timer's
        NCRONTAB schedule.
    :keyword function_key: when set, FUNCTION/ADMIN routes and the webhook need it
        (``x-functions-key`` or ``?code=``); None enforces no keys, as Core Tools does locally.
    :keyword poison_threshold: tries of one blob trigger message before the poison queue (the
        host's ``maxDequeueCount``, 5).
    :keyword max_degree_of_parallelism: blob invocations running at once.
    :keyword fire_existing: with ``poll_blobs``, also queue the blobs present at start.
    :keyword easy_auth: play App Service authentication in front of the app
        (:mod:`.easy_auth`), and set ``WEBSITE_AUTH_ENABLED=True`` while running, as the
        platform does; for ``HTTP_AUTH=entra``.
    :raises UnsupportedBindingError: a function has a binding this host cannot drive.
    :raises ValueError: a ``%SETTING%`` is missing from ``os.environ`` (the text names it), a
        schedule does not parse, ``host_id`` is not valid, or ``fire_existing`` without
        ``poll_blobs``.
    """

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        storage_connection_string: str,
        http_host: str = "127.0.0.1",
        http_port: int = 7071,
        host_id: str | None = None,
        poll_blobs: bool = False,
        blob_scan_interval: float = 1.0,
        timer_interval: float | None = None,
        function_key: str | None = None,
        poison_threshold: int = 5,
        max_degree_of_parallelism: int = 4,
        fire_existing: bool = False,
        easy_auth: EasyAuth | None = None,
    ) -> None:
        if poison_threshold < 1:
            raise ValueError("poison_threshold must be at least 1")
        if fire_existing and not poll_blobs:
            raise ValueError("fire_existing is an option of the polling fallback (poll_blobs)")
        self.host_id = host_id or f"local-{uuid.uuid4().hex[:12]}"
        blob_queue_name = queue_name(self.host_id)
        self._functions = read_functions(app, os.environ, timer_interval=timer_interval)
        self._provide_connection_settings(storage_connection_string)
        self._http_address = (http_host, http_port)
        self._function_key = function_key
        self._blob_scan_interval = blob_scan_interval
        self._fire_existing = fire_existing
        self._blob_pool = ThreadPoolExecutor(max_degree_of_parallelism, "local-host-blob")
        self._queue_wakeup = threading.Event()
        self._queue: BlobTriggerQueue | None = None
        self._listener: BlobQueueListener | None = None
        webhooks: dict[str, WebhookHandler] = {}
        if self._functions.blobs:
            self._queue = BlobTriggerQueue(storage_connection_string, blob_queue_name)
            self._listener = BlobQueueListener(
                self._queue,
                self._functions.blobs,
                poison_connection_string=storage_connection_string,
                max_dequeue_count=poison_threshold,
                pool=self._blob_pool,
            )
            webhooks[EXTENSION_NAME] = BlobWebhook(self._queue, self._queue_wakeup.set)
        self.easy_auth = easy_auth
        self._platform_auth_before: str | None = None
        self._dispatcher = HttpDispatcher(
            self._functions.https, function_key, webhooks=webhooks, easy_auth=easy_auth
        )
        self._listings = [
            (
                f,
                ContainerListing(
                    ContainerClient.from_connection_string(
                        storage_connection_string, f.container, **STORAGE_OPTIONS
                    ),
                    f.prefix,
                    f.name_pattern.fullmatch,
                ),
            )
            for f in (self._functions.blobs if poll_blobs else ())
        ]
        self._timers = [TimerRunner(f) for f in self._functions.timers]
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
    def blob_functions(self) -> tuple[BlobFunction, ...]:
        """The blob-triggered functions, with their containers and binding sources."""
        return self._functions.blobs

    def webhook_url(self, function_name: str) -> str:
        """The URL an Event Grid subscription of ``function_name`` posts to, as in Azure:
        ``/runtime/webhooks/blobs?functionName=Host.Functions.<name>&code=<key>`` (no ``code``
        when the host checks no key).

        :raises RuntimeError: the server is not running.
        """
        query = {"functionName": function_id(function_name)}
        if self._function_key is not None:
            query["code"] = self._function_key
        return f"{self.http_url}{WEBHOOK_PREFIX}{EXTENSION_NAME}?{urlencode(query)}"

    @property
    def http_url(self) -> str:
        """The server's root, e.g. ``http://127.0.0.1:7071``.

        :raises RuntimeError: the server is not running (not started, or no HTTP function).
        """
        if self._server is None:
            raise RuntimeError("the HTTP server is not running")
        return self._server.base_url

    def start(self) -> None:
        """Start the HTTP server, the blob trigger queue's listener, the timer loops, and with
        ``poll_blobs`` take the blob baseline and start the scan loop."""
        if self._started:
            raise RuntimeError("a LocalHost starts once")
        self._started = True
        if self.easy_auth is not None:
            self._platform_auth_before = os.environ.get(PLATFORM_AUTH_SETTING)
            os.environ[PLATFORM_AUTH_SETTING] = "True"
        if self._functions.https or self._functions.blobs:
            self._server = HttpServer(self._http_address, self._dispatcher)
            self._spawn("local-host-http", self._server.serve_forever, 0.2)
        if self._listener is not None:
            self._spawn("local-host-blob-queue", self._queue_loop, self._listener)
        if self._listings:
            self._take_baseline()
            self._spawn("local-host-blob-scan", self._scan_loop)
        for runner in self._timers:
            self._spawn(f"local-host-timer-{runner.function.name}", self._timer_loop, runner)
        _LOGGER.info(
            "local host started functions=%s http=%s blob_queue=%s blob_polling=%s",
            ",".join(self.function_names),
            self._server.base_url if self._server else "-",
            self._queue.name if self._queue else "-",
            ",".join(f.container for f, _ in self._listings) or "off",
        )

    def stop(self) -> None:
        """Stop every loop, wait for running invocations, close the server (idempotent)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._queue_wakeup.set()
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
        for _, listing in self._listings:
            listing.container.close()
        if self._queue is not None:
            self._queue.close()
        if self.easy_auth is not None:
            _restore(PLATFORM_AUTH_SETTING, self._platform_auth_before)
        _LOGGER.info("local host stopped")

    def process_blob_queue(self) -> int:
        """Run the blob trigger queue's visible messages now (those a failure released too),
        and wait until they are done.

        :returns: how many messages were handled.
        """
        return self._listener.run_visible() if self._listener is not None else 0

    def scan_blobs_once(self) -> int:
        """The polling fallback, now: list the blob containers, queue every new blob version,
        and run the queue.

        :returns: how many blob versions were new.
        :raises RuntimeError: the host was not started with ``poll_blobs``.
        """
        if not self._listings:
            raise RuntimeError("blob polling is a fallback: start the host with poll_blobs=True")
        found = self._scan()
        self.process_blob_queue()
        return found

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
                for _, listing in self._listings:
                    listing.take_baseline()

    def _scan(self) -> int:
        self._take_baseline()
        if self._queue is None:  # no blob function, nothing listed
            return 0
        found = 0
        with self._scan_lock:
            for function, listing in self._listings:
                for version in listing.take_new():
                    message = BlobTriggerMessage(
                        function_id=function_id(function.name),
                        blob_type=version.blob_type,
                        container_name=function.container,
                        blob_name=version.name,
                        etag=version.etag,
                    )
                    try:
                        self._queue.send(message)
                    except AzureError as error:
                        listing.seen.pop(version.name, None)  # new again at the next scan
                        _LOGGER.warning(
                            "blob trigger queue write failed blob=%s/%s error=%s",
                            function.container,
                            version.name,
                            type(error).__name__,
                        )
                        continue
                    found += 1
        if found:
            self._queue_wakeup.set()
        return found

    def _scan_loop(self) -> None:
        while not self._stopping.wait(self._blob_scan_interval):
            # A listing that fails (storage busy, a reset) is tried again at the next scan: an
            # exception left to end this thread would stop every later delivery, unseen.
            try:
                self._scan()
            except AzureError as error:
                _LOGGER.warning("blob scan failed, retried error=%s", type(error).__name__)

    def _queue_loop(self, listener: BlobQueueListener) -> None:
        while not self._stopping.is_set():
            # As the host's queue listener: a failed receive is retried, never the end of it.
            try:
                listener.run_visible()
            except AzureError as error:
                _LOGGER.warning("blob queue read failed, retried error=%s", type(error).__name__)
            self._queue_wakeup.wait(_QUEUE_POLL_SECONDS)
            self._queue_wakeup.clear()

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


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
