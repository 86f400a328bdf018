"""The client's HTTP session: a write timeout for request bodies, a pool sized to the
caller's concurrency.

Why a write timeout needs its own connection class: urllib3 2.x sends a request under the
*connect* timeout. `HTTPConnectionPool._make_request` sets ``conn.timeout`` to the connect
timeout, `HTTPConnection.request` applies it to the socket and sends the headers and every
chunk of the body (one ``sendall`` each), and only then does the pool set the read timeout,
which `getresponse` applies. So a large file sent to an F&O that reads slowly (back-pressure)
broke off after the connect timeout, although the connection was sound. The connections here
apply `write_timeout` to each send instead; the response is still read under the read timeout.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager, ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection

from ..sessions import PinnedSession, Verify
from ._trust import TrustStore

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "D365Adapter",
    "Timeouts",
    "WriteTimeout",
    "new_session",
    "validate_pool_maxsize",
]

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to establish a connection (TCP and TLS) to F&O or its Entra tenant."""


@dataclass(frozen=True)
class Timeouts:
    """The client's three timeouts, in seconds.

    :param connect: to establish a connection (TCP and TLS).
    :param read: for each wait on the response (until its first byte and between reads).
    :param write: for each send of the request: the headers, then every chunk of the body.
    """

    connect: float
    read: float
    write: float

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(
                    f"{name}_timeout must be a positive number of seconds, got {value!r}"
                )

    def of(self, kind: str) -> float:
        """The timeout named `kind` ("connect", "read" or "write")."""
        return float(getattr(self, kind))


class WriteTimeout(requests.exceptions.Timeout):
    """A send of the request (headers or a chunk of the body) did not finish within the write
    timeout: the server stopped taking data. The request was not sent whole."""

    def __init__(self, *args: Any, timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout = timeout


class _SendTimeoutError(TimeoutError):
    """Raised inside urllib3 when a send exceeds the write timeout. A builtin `TimeoutError`
    (an `OSError`), so urllib3 discards the connection as for any socket error."""

    def __init__(self, timeout: float, size: int | None) -> None:
        what = f"sending {size} bytes" if size is not None else "a send"
        super().__init__(f"Write timed out: {what} took longer than {timeout:g} s")
        self.timeout = timeout


class _WriteTimeoutConnection(HTTPConnection):
    """Applies `write_timeout` to every send; urllib3 applies the read timeout afterwards."""

    def __init__(self, *args: Any, write_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.write_timeout = write_timeout

    def send(self, data: Any) -> None:
        """Send `data` (the headers or one chunk of the body) within the write timeout."""
        if self.sock is None:
            # A plain-HTTP connection opens inside its first send: connect under the connect
            # timeout urllib3 has set on `self.timeout`, before switching to the write timeout.
            self.connect()
        assert self.sock is not None
        self.sock.settimeout(self.write_timeout)
        try:
            super().send(data)
        except TimeoutError as exc:
            size = len(data) if isinstance(data, bytes | bytearray | memoryview) else None
            raise _SendTimeoutError(self.write_timeout, size) from exc


class _WriteTimeoutHTTPSConnection(_WriteTimeoutConnection, HTTPSConnection):
    """The TLS variant (`HTTPSConnection.connect` wraps the socket before the first send)."""


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WriteTimeoutConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WriteTimeoutHTTPSConnection


class D365Adapter(HTTPAdapter):
    """An `HTTPAdapter` whose connections send under `write_timeout` and whose pools keep up
    to `pool_maxsize` connections per host.

    More concurrent calls than `pool_maxsize` still run, each on an extra connection that is
    closed afterwards (urllib3 logs "Connection pool is full, discarding connection").
    A send that exceeds the write timeout raises `WriteTimeout`.

    `verify` (the session's) is checked once, here: requests would look the CA bundle up on
    disk for every request (a few ``stat`` calls each). A request with another ``verify`` or a
    client certificate is checked as requests does.
    """

    # Pickling keeps these; `__setstate__` rebuilds the pool manager from them.
    __attrs__: ClassVar[list[str]] = [*HTTPAdapter.__attrs__, "_write_timeout", "_trust"]

    def __init__(self, *, write_timeout: float, pool_maxsize: int, verify: Verify = True) -> None:
        # Set before HTTPAdapter.__init__, which builds the pool manager.
        self._write_timeout = write_timeout
        self._trust = TrustStore.check(verify)
        super().__init__(pool_maxsize=validate_pool_maxsize(pool_maxsize))

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Verify, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The pool key as requests builds it, without looking the checked bundle up again."""
        if not self._trust.covers(verify, cert):
            return super().build_connection_pool_key_attributes(request, verify, cert)
        host, pool = super().build_connection_pool_key_attributes(request, bool(verify), cert)
        return host, pool | self._trust.pool_key()

    def cert_verify(self, conn: Any, url: str, verify: Verify, cert: Any) -> None:
        """Set the connection pool's TLS checks as requests does, from the bundle checked once."""
        if not self._trust.covers(verify, cert):
            super().cert_verify(conn, url, verify, cert)
            return
        self._trust.apply(conn, https=url.lower().startswith("https"))

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        """Build the pool manager with the write-timeout connection pools."""
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self._use_write_timeout(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """The proxy manager for `proxy`; an HTTP(S) proxy's pools send under the write
        timeout too (a SOCKS proxy's keep urllib3's behaviour)."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):
            self._use_write_timeout(manager)
        return manager

    def _use_write_timeout(self, manager: PoolManager) -> None:
        # PoolManager builds a pool as pool_classes_by_scheme[scheme](host, port, **kw); the
        # pool hands its extra keywords to every connection it opens.
        manager.pool_classes_by_scheme = {
            "http": functools.partial(_HTTPPool, write_timeout=self._write_timeout),
            "https": functools.partial(_HTTPSPool, write_timeout=self._write_timeout),
        }

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        """Send like `HTTPAdapter.send`; a send past the write timeout raises `WriteTimeout`."""
        try:
            return super().send(request, *args, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            timed_out = _send_timeout_in(exc)
            if timed_out is None:
                raise
            raise WriteTimeout(
                f"{request.method} {_host_of(request)}: {timed_out}",
                request=request,
                timeout=timed_out.timeout,
            ) from exc


def validate_pool_maxsize(value: int) -> int:
    """`value` when it is a positive int.

    :raises ValueError: naming `pool_maxsize` otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"pool_maxsize must be a positive int, got {value!r}")
    return value


def new_session(*, write_timeout: float, pool_maxsize: int) -> requests.Session:
    """A session with a `D365Adapter` for http and https that reads proxy and CA-bundle
    settings from the environment once (:class:`~shared.clients.sessions.PinnedSession`: the
    proxies decided per host, for F&O's and the SAS URLs' alike), and checks the CA bundle
    once."""
    session = PinnedSession()
    adapter = D365Adapter(
        write_timeout=write_timeout, pool_maxsize=pool_maxsize, verify=session.verify
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _send_timeout_in(exc: BaseException) -> _SendTimeoutError | None:
    """The `_SendTimeoutError` inside a requests error: urllib3 wraps it in a ProtocolError
    ("Connection aborted.", error), which requests wraps in a ConnectionError."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if isinstance(current, _SendTimeoutError):
            return current
        if id(current) in seen:
            continue
        seen.add(id(current))
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


def _host_of(request: requests.PreparedRequest) -> str:
    # Scheme, host and port only: the path may carry ids and the query anything.
    url = requests.utils.urlparse(request.url or "")
    return f"{url.scheme}://{url.netloc}"
