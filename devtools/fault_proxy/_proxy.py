"""The proxy: one loopback listener per Azurite service, a thread per client connection."""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from devtools.azurite import Azurite, connection_string
from devtools.lifecycle import Service

from ._http import (
    BodyCopier,
    Framing,
    MessageError,
    RequestHead,
    read_request_head,
    read_response_head,
)
from ._plan import FaultCounts, FaultDrawer, FaultKind, FaultPlan, RequestInfo, StorageService
from ._replies import server_busy

_LOGGER = logging.getLogger(__name__)
_CLIENT_IDLE_SECONDS = 120.0
_UPSTREAM_TIMEOUT = 120.0
OBSERVED_BODY_LIMIT = 1024 * 1024
"""Request payload bytes kept for an observer (the rest is counted, not kept)."""


@dataclass(frozen=True)
class Exchange:
    """One request the proxy handled, as an observer sees it.

    :param request_body: the payload (chunk framing removed), at most
        :data:`OBSERVED_BODY_LIMIT` bytes.
    :param status: Azurite's answer (the proxy's own 503 for ``SERVER_BUSY``); None when
        the request never reached Azurite (``RESET_BEFORE``).
    :param fault: what the proxy did to it; for ``RESET_AFTER`` Azurite applied the request
        and the client never got the answer.
    :param started_at/finished_at: ``time.monotonic()`` when the request head arrived and
        when the exchange ended.
    """

    service: StorageService
    method: str
    target: str
    request_body: bytes
    status: int | None
    fault: FaultKind | None
    started_at: float
    finished_at: float

    def __repr__(self) -> str:
        return f"Exchange({self.service} {self.method} {self.target[:60]} -> {self.status})"


Observer = Callable[[Exchange], None]


class _ConnectionEndedError(Exception):
    """This client connection is over (reset on purpose, closed, or broken)."""


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN: the client sees 'connection reset by peer'."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Listener(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, proxy: FaultProxy, service: StorageService, upstream_port: int) -> None:
        super().__init__((proxy.host, 0), _ConnectionHandler)
        self.proxy = proxy
        self.service = service
        self.upstream = (proxy.upstream_host, upstream_port)


class _ConnectionHandler(socketserver.BaseRequestHandler):
    """Relays the requests of one client connection, one at a time (keep-alive)."""

    server: _Listener
    request: socket.socket

    def setup(self) -> None:
        self.request.settimeout(_CLIENT_IDLE_SECONDS)
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = self.request.makefile("rb")
        self.server.proxy._track(self.request, add=True)

    def handle(self) -> None:
        try:
            while self._relay_one():
                pass
        except (_ConnectionEndedError, MessageError, OSError) as exc:
            _LOGGER.debug("proxy connection ended service=%s: %r", self.server.service, exc)

    def finish(self) -> None:
        self.server.proxy._track(self.request, add=False)
        with contextlib.suppress(OSError):
            self._reader.close()

    # -- one exchange ----------------------------------------------------------------------

    def _relay_one(self) -> bool:
        """Relay one request; False when the connection is over."""
        request = read_request_head(self._reader)
        if request is None:
            return False
        started = time.monotonic()
        if request.head.has_token("Expect", "100-continue"):
            # Answer it here: the body is read before anything goes upstream.
            self.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            request = RequestHead(
                request.head.without("Expect"), request.method, request.target, request.version
            )
        service = self.server.service
        proxy = self.server.proxy
        fault, delay = proxy._drawer.draw(RequestInfo(service, request.method, request.target))
        if fault is FaultKind.SERVER_BUSY:
            body = self._drain(request)
            self.request.sendall(server_busy(service, request, keep_alive=request.keep_alive))
            self._observe(request, body, 503, fault, started)
            return request.keep_alive
        if fault is FaultKind.RESET_BEFORE:
            body = self._drain(request)
            self._observe(request, body, None, fault, started)
            self._reset_client()
        if fault is FaultKind.LATENCY:
            time.sleep(delay)
        return self._forward(request, fault, started)

    def _drain(self, request: RequestHead) -> bytes:
        """Read the request body without forwarding it; what an observer may see of it."""
        copier = BodyCopier(None, capture_limit=self.server.proxy._capture_limit)
        copier.copy(self._reader, request.framing, request.head.get("Content-Length"))
        return bytes(copier.captured)

    def _observe(
        self,
        request: RequestHead,
        body: bytes,
        status: int | None,
        fault: FaultKind | None,
        started: float,
    ) -> None:
        self.server.proxy._observe(
            Exchange(
                service=self.server.service,
                method=request.method,
                target=request.target,
                request_body=body,
                status=status,
                fault=fault,
                started_at=started,
                finished_at=time.monotonic(),
            )
        )

    def _reset_client(self) -> NoReturn:
        with contextlib.suppress(OSError):
            self._reader.close()
        _reset(self.request)
        raise _ConnectionEndedError("reset on purpose")

    def _forward(self, request: RequestHead, fault: FaultKind | None, started: float) -> bool:
        proxy = self.server.proxy
        try:
            upstream = socket.create_connection(self.server.upstream, timeout=_UPSTREAM_TIMEOUT)
        except OSError as exc:
            _LOGGER.warning("proxy cannot reach %s: %r", self.server.upstream, exc)
            self._reset_client()
        with upstream, upstream.makefile("rb") as upstream_reader:
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sent = BodyCopier(upstream.sendall, capture_limit=proxy._capture_limit)
            try:
                upstream.sendall(request.head.to_bytes())
                sent.copy(self._reader, request.framing, request.head.get("Content-Length"))
                response = read_response_head(upstream_reader)
                while response.status < 200:  # 1xx interim answers
                    if fault is not FaultKind.RESET_AFTER:
                        self.request.sendall(response.head.to_bytes())
                    response = read_response_head(upstream_reader)
            except (MessageError, OSError) as exc:
                # The client or Azurite went away mid-exchange (a killed host, a stopped Azurite).
                _LOGGER.debug(
                    "proxy upstream failed %s %s: %r", request.method, request.target, exc
                )
                self._reset_client()
            framing = response.framing(request.method)
            lost_ack = fault is FaultKind.RESET_AFTER
            forward = None if lost_ack else self.request.sendall
            if forward is not None:
                forward(response.head.to_bytes())
            try:
                BodyCopier(forward).copy(
                    upstream_reader, framing, response.head.get("Content-Length")
                )
            except (MessageError, OSError) as exc:
                _LOGGER.debug("proxy relay failed %s %s: %r", request.method, request.target, exc)
                self._reset_client()
        self._observe(request, bytes(sent.captured), response.status, fault, started)
        if lost_ack:
            self._reset_client()
        return request.keep_alive and not response.closes and framing is not Framing.UNTIL_CLOSE


class FaultProxy(Service):
    """A fault-injecting HTTP proxy on loopback in front of Azurite's three services.

    Each request on a client connection (keep-alive, Content-Length or chunked bodies,
    ``$batch`` multipart, all relayed as bytes) draws at most one fault from the plan: a 503
    ``ServerBusy`` answer, a reset before forwarding, a reset after Azurite answered (a lost
    acknowledgement: the write is applied, the client sees a reset), or a latency spike.
    Draws come from one seeded generator (one request at a time gives the same faults for
    the same seed); counts are kept by kind and service. Use as a context manager.

    :keyword blob_port/queue_port/table_port: Azurite's ports.
    :keyword plan: the fractions and the filter; default no faults.
    :keyword seed: seeds the fault draws.
    :keyword enabled: draw faults at all (switch with :attr:`enabled`).
    :keyword observer: called with every :class:`Exchange` (faulted ones too), from the
        connection's thread, once the client got its answer (before the reset, for a reset);
        it must be quick and thread-safe.
    """

    def __init__(
        self,
        *,
        blob_port: int,
        queue_port: int,
        table_port: int,
        plan: FaultPlan | None = None,
        seed: int = 0,
        enabled: bool = True,
        observer: Observer | None = None,
        host: str = "127.0.0.1",
        upstream_host: str = "127.0.0.1",
        capture_limit: int = OBSERVED_BODY_LIMIT,
    ) -> None:
        self.host = host
        self.upstream_host = upstream_host
        self._upstream_ports = {
            StorageService.BLOB: blob_port,
            StorageService.QUEUE: queue_port,
            StorageService.TABLE: table_port,
        }
        self._drawer = FaultDrawer(plan or FaultPlan(), seed=seed, enabled=enabled)
        self._observer = observer
        self._capture_limit = capture_limit if observer else 0
        self._listeners: dict[StorageService, _Listener] = {}
        self._threads: list[threading.Thread] = []
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    @classmethod
    def for_azurite(cls, azurite: Azurite, **options: Any) -> FaultProxy:
        """A proxy in front of a running :class:`Azurite`; ``options`` as for the constructor."""
        return cls(
            blob_port=azurite.blob_port,
            queue_port=azurite.queue_port,
            table_port=azurite.table_port,
            **options,
        )

    # -- control ---------------------------------------------------------------------------

    @property
    def plan(self) -> FaultPlan:
        """The fault plan in force; assign a new one at any time."""
        return self._drawer.plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        self._drawer.plan = plan

    @property
    def enabled(self) -> bool:
        """Whether faults are injected; off, every request passes through (and is counted)."""
        return self._drawer.enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._drawer.enabled = value

    def counts(self) -> FaultCounts:
        """Requests seen and faults injected so far, by kind and by service."""
        return self._drawer.counts()

    def reset_counts(self) -> None:
        """Count from zero again."""
        self._drawer.reset_counts()

    # -- addresses -------------------------------------------------------------------------

    def port(self, service: StorageService) -> int:
        """The loopback port standing in for ``service``.

        :raises RuntimeError: the proxy is not started.
        """
        listener = self._listeners.get(service)
        if listener is None:
            raise RuntimeError("the fault proxy is not started")
        return int(listener.server_address[1])

    @property
    def connection_string(self) -> str:
        """A connection string for the Storage SDKs (Azurite's public dev account) that goes
        through this proxy."""
        return connection_string(
            self.port(StorageService.BLOB),
            self.port(StorageService.QUEUE),
            self.port(StorageService.TABLE),
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Listen on a free loopback port per service."""
        for service, upstream_port in self._upstream_ports.items():
            listener = _Listener(self, service, upstream_port)
            self._listeners[service] = listener
            thread = threading.Thread(
                target=listener.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"fault-proxy-{service}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        _LOGGER.info(
            "fault proxy started %s",
            " ".join(f"{s}={self.port(s)}->{p}" for s, p in self._upstream_ports.items()),
        )

    def stop(self) -> None:
        """Stop listening and end every open connection (idempotent)."""
        for listener in self._listeners.values():
            listener.shutdown()
            listener.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._listeners.clear()
        self._threads.clear()
        with self._connections_lock:
            open_connections = list(self._connections)
        for sock in open_connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- for the connection handlers -------------------------------------------------------

    def _track(self, sock: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(sock)
            else:
                self._connections.discard(sock)

    def _observe(self, exchange: Exchange) -> None:
        if self._observer is None:
            return
        try:
            self._observer(exchange)
        except Exception:
            _LOGGER.exception("fault proxy observer failed")
