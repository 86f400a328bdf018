"""A lease renewed in the background while its holder works, so a holder that dies lets go soon.

A poll tick may run for minutes (its budget, then a call in flight up to its timeout). Taken
for all of that at once, the lease of a tick whose process died would stop polling for as
long. Held instead for a short span and renewed every few seconds by a thread of the holder's
process, it runs out within the span once that process is gone, while a live tick keeps it
(never past ``limit``, the longest a live holder may need). A renewal that fails (storage
answered an error) is tried again at the next interval; a lease found taken by another holder
is lost: :attr:`LeaseRenewer.lost` tells the holder to start no new work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType

from azure.core.exceptions import AzureError

from shared.tracking import Lease, LeaseHeld, utcnow

__all__ = ["LeaseRenewer"]

_LOGGER = logging.getLogger(__name__)


class LeaseRenewer:
    """Renews ``held`` every ``every`` for ``span`` more, up to ``limit``, while entered.

    :param lease: the lease row.
    :param held: the lease as acquired.
    :keyword span: how long each renewal holds it (a dead holder's lease ends within this).
    :keyword every: how often it is renewed (a few renewals per span, so one failure is
        survived).
    :keyword limit: it is never held past this.
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self,
        lease: Lease,
        held: LeaseHeld,
        *,
        span: timedelta,
        every: timedelta,
        limit: datetime,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._lease = lease
        self._held = held
        self._span = span
        self._every = every
        self._limit = limit
        self._clock = clock
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._renew_until_stopped, name=f"lease-{lease.name}", daemon=True
        )

    @property
    def held(self) -> LeaseHeld:
        """The lease as last written (release this one: its ETag is the row's)."""
        with self._lock:
            return self._held

    @property
    def lost(self) -> bool:
        """True once another holder took the lease: start no new work."""
        return self._lost.is_set()

    def __enter__(self) -> LeaseRenewer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self._every.total_seconds()):
            until = min(self._clock() + self._span, self._limit)
            if until <= self.held.until:
                continue  # at the limit: a holder still running then lets the lease run out
            try:
                renewed = self._lease.renew(self.held, until=until)
            except AzureError as exc:
                _LOGGER.warning("lease %s not renewed, tried again: %s", self._lease.name, exc)
                continue
            if renewed is None:
                _LOGGER.warning("lease %s lost to another holder", self._lease.name)
                self._lost.set()
                return
            with self._lock:
                self._held = renewed
