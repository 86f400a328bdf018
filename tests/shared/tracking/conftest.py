"""A tracking store on the session's Azurite, its clients wired through fault hooks."""

from __future__ import annotations

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.tracking import TrackingStore
from tests.faults import StorageFaults


@pytest.fixture
def faults() -> StorageFaults:
    """Storage faults for the store's clients (none until a test adds a rule)."""
    return StorageFaults()


@pytest.fixture
def store(storage_connection_string: str, unique_name: str, faults: StorageFaults) -> TrackingStore:
    """A ready store on a fresh table and errors container."""
    tables = TableServiceClient.from_connection_string(
        storage_connection_string, retry_backoff_factor=0.01, **faults.options()
    )
    blobs = BlobServiceClient.from_connection_string(storage_connection_string)
    result = TrackingStore(
        tables.get_table_client(unique_name),
        errors_container=blobs.get_container_client(unique_name),
    )
    result.ensure_ready()
    return result
