"""How the benchmarks fill a status table fast: rows created 100 to a transaction on 16 threads,
a batch whose answer was lost (Azurite resets a connection now and then under this load) sent
again, and a 409 on that second try taken as the first try having landed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.data.tables import TableClient, TableTransactionError

from shared.tracking import BATCH_SIZE

_THREADS = 16
_TRIES = 5


def create_rows(table: TableClient, row: Callable[[int], Mapping[str, Any]], count: int) -> None:
    """Create ``row(0)`` ... ``row(count - 1)`` in ``table``; a set-up that always finishes."""

    def batch(start: int) -> None:
        operations = [("create", row(i)) for i in range(start, min(start + BATCH_SIZE, count))]
        for attempt in range(_TRIES):
            try:
                table.submit_transaction(operations)
                return
            except TableTransactionError as exc:
                if exc.status_code == 409 and attempt:
                    return  # the try before landed, its answer lost
                raise
            except (ServiceRequestError, ServiceResponseError):
                if attempt == _TRIES - 1:
                    raise

    with ThreadPoolExecutor(_THREADS) as pool:
        list(pool.map(batch, range(0, count, BATCH_SIZE)))
