"""A fault-injecting loopback proxy in front of Azurite, for tests and the chaos benchmark.

Storage in Azure fails in ways Azurite never does: ``503 ServerBusy``, connections reset
before the request reached the service, connections reset *after* the service applied a
write (the client never learns it succeeded: a lost acknowledgement), and latency spikes.
:class:`FaultProxy` listens on a loopback port per Azurite service (blob, queue, table),
relays HTTP/1.1 requests as bytes, and injects those faults per request from a seeded
:class:`FaultPlan`, optionally filtered by service, method or target::

    with Azurite() as azurite, FaultProxy.for_azurite(
        azurite, plan=FaultPlan.mixed(0.12, latency=0.03), seed=7
    ) as proxy:
        tables = TableServiceClient.from_connection_string(proxy.connection_string)
        ...
        print(proxy.counts().faults)

Writes only: ``FaultPlan(reset_after=1.0, methods=WRITE_METHODS)``; table only:
``services=frozenset({StorageService.TABLE})``. ``proxy.enabled = False`` lets everything
through (still counted).
"""

from ._plan import WRITE_METHODS, FaultCounts, FaultKind, FaultPlan, RequestInfo, StorageService
from ._proxy import OBSERVED_BODY_LIMIT, Exchange, FaultProxy, Observer
from ._replies import SERVER_BUSY, SERVER_BUSY_MESSAGE

__all__ = [
    "OBSERVED_BODY_LIMIT",
    "SERVER_BUSY",
    "SERVER_BUSY_MESSAGE",
    "WRITE_METHODS",
    "Exchange",
    "FaultCounts",
    "FaultKind",
    "FaultPlan",
    "FaultProxy",
    "Observer",
    "RequestInfo",
    "StorageService",
]
