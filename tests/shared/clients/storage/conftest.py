"""A fresh table on the session's Azurite, its client wired through fault hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from azure.data.tables import TableClient, TableServiceClient

from tests.faults import StorageFaults


@pytest.fixture
def faults() -> StorageFaults:
    """Storage faults for the table client (none until a test adds a rule)."""
    return StorageFaults()


@pytest.fixture
def table(
    storage_connection_string: str, unique_name: str, faults: StorageFaults
) -> Iterator[TableClient]:
    """A fresh table, its client wired through the fault hooks."""
    service = TableServiceClient.from_connection_string(
        storage_connection_string, retry_backoff_factor=0.01, **faults.options()
    )
    client = service.create_table(unique_name)
    yield client
    client.close()


@pytest.fixture
def same_as_sdk() -> Callable[[Exception, Exception], None]:
    """Asserts that two exceptions are alike: type, status, error code, index and message."""
    return _same_error


def _same_error(lean: Exception, sdk: Exception) -> None:
    assert type(lean) is type(sdk)
    for name in ("status_code", "error_code", "index", "reason"):
        assert getattr(lean, name, None) == getattr(sdk, name, None), name
    assert _stable(lean.message) == _stable(sdk.message)  # type: ignore[attr-defined]


def _stable(message: str) -> list[str]:
    """The message's lines without the ones that differ per request."""
    return [line for line in message.split("\n") if not line.startswith(("RequestId:", "Time:"))]
