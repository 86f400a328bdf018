"""`D365Client`: the facade of the F&O recurring-integrations API over its call groups."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Self

import requests
from azure.core.credentials import TokenCredential

from ._body import DEFAULT_CHUNK_SIZE
from ._budget import DEFAULT_BUDGET_WAIT, UNLIMITED, CallBudget
from ._engine import USER_AGENT, Engine
from ._exports import ExportCalls
from ._messages import MessageCalls
from ._package_exports import PackageExportCalls
from ._packages import PackageCalls
from ._retry import RetryPolicy
from ._transport import DEFAULT_CONNECT_TIMEOUT

__all__ = ["D365Client"]


class D365Client(MessageCalls, ExportCalls, PackageCalls, PackageExportCalls):
    """Client for one F&O environment's recurring-integrations API.

    :param base_url: the environment root, e.g. ``https://contoso.operations.dynamics.com``.
    :param credential: an azure-identity credential; tokens are requested for
        ``<base_url lower case>/.default``. The client holds a token until it expires within
        5 minutes or passes its ``refresh_on``; a 401 from F&O drops it, so the next call asks
        the credential again.
    :keyword retry: the retry policy; `RetryPolicy()` when None.
    :keyword connect_timeout: seconds to establish a connection (TCP and TLS).
    :keyword read_timeout: seconds to wait for the response: for its first byte once the
        request is sent, and between reads of it.
    :keyword write_timeout: seconds allowed for each send of a request: the headers, then
        every chunk of the body (`chunk_size` bytes), so an F&O that takes a large file
        slowly is given time per chunk, not for the whole file. A send that stalls longer
        raises `D365ConnectionError` naming this option; the body was not sent whole, so
        the call is retried like a lost connection.
    :keyword pool_maxsize: connections kept open to F&O for reuse. Set it to the number of
        calls made at once (the poller's concurrency): more concurrent calls still run, but
        each extra one opens a connection that is closed afterwards.
    :keyword session: a `requests.Session` to use instead of the client's own; the client
        closes only one it created. A session passed in is used as it is (as azure-core
        treats a session it does not own): its adapters decide the pool size and how bodies
        are sent, so `pool_maxsize` and `write_timeout` do not apply to it, and urllib3 sends
        bodies under the connect timeout. Connect and read timeouts apply to every session.
    :keyword user_agent: the User-Agent header.
    :keyword chunk_size: bytes per read when streaming a body in or out.
    :keyword sleep: the function that waits between retries (tests pass a recorder).
    :keyword sas_hosts: hosts (any port) that SAS URLs handed out by F&O may point at besides
        the blob endpoints of F&O's cloud, e.g. a storage emulator's; see
        :mod:`shared.clients.d365._urls` for the rules every URL from F&O is checked against.
    :keyword budget: the :class:`CallBudget` asked for a permit before every attempt sent with
        the F&O token and told of every 429 (default: no limit of its own); a call given no
        permit within ``budget_wait`` seconds, or while the budget says F&O throttles the app
        past that, raises `D365ThrottledError` with nothing sent.
    :keyword budget_wait: seconds a call waits at most for a permit (also bounded by what its
        retry policy has left).
    :raises ValueError: when `base_url` is not an http(s) URL without query string, a
        timeout is not a positive number, `pool_maxsize` is not a positive int, or a host of
        `sas_hosts` is not a host name or IP address.
    """

    def __init__(
        self,
        base_url: str,
        credential: TokenCredential,
        *,
        retry: RetryPolicy | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = 300.0,
        write_timeout: float = 300.0,
        pool_maxsize: int = 16,
        session: requests.Session | None = None,
        user_agent: str = USER_AGENT,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        sleep: Callable[[float], object] = time.sleep,
        sas_hosts: Iterable[str] = (),
        budget: CallBudget = UNLIMITED,
        budget_wait: float = DEFAULT_BUDGET_WAIT,
    ) -> None:
        self._engine = Engine(
            base_url,
            credential,
            retry=retry,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            pool_maxsize=pool_maxsize,
            session=session,
            user_agent=user_agent,
            chunk_size=chunk_size,
            sleep=sleep,
            sas_hosts=sas_hosts,
            budget=budget,
            budget_wait=budget_wait,
        )

    @property
    def base_url(self) -> str:
        """The environment root, without trailing slash."""
        return self._engine.base_url

    @property
    def scope(self) -> str:
        """The token scope requested from the credential."""
        return self._engine.scope

    def reserved(self, operation: str) -> AbstractContextManager[None]:
        """Take the budget's permit for this thread's calls of ``operation`` (e.g.
        ``"enqueue"``) until the block ends, so that what must happen just before the call
        (recording that a send begins) happens only once the call can go: no wait for a
        permit sits between the two.

        :raises D365ThrottledError: no permit within ``budget_wait`` seconds, or the app is
            throttled past it; nothing was sent.
        """
        return self._engine.reserved(operation)

    def __repr__(self) -> str:
        return f"D365Client(base_url={self._engine.base_url!r})"

    def close(self) -> None:
        """Close the HTTP session if the client created it."""
        self._engine.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
