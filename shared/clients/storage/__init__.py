"""The app's Azure Storage clients: service clients plus the version-pinned blob operations."""

from .blobs import (
    MESSAGE_ID_METADATA,
    copy_succeeded,
    download_version,
    is_permanent,
    storage_reason,
    version_properties,
    wait_for_copy,
)
from .services import (
    BLOB_RETRY_BACKOFF,
    CONNECTION_TIMEOUT,
    POOL_SIZE,
    READ_TIMEOUT,
    RETRY_TOTAL,
    STREAM_CHUNK,
    blob_service_client,
    storage_credential,
    table_service_client,
)

__all__ = [
    "BLOB_RETRY_BACKOFF",
    "CONNECTION_TIMEOUT",
    "MESSAGE_ID_METADATA",
    "POOL_SIZE",
    "READ_TIMEOUT",
    "RETRY_TOTAL",
    "STREAM_CHUNK",
    "blob_service_client",
    "copy_succeeded",
    "download_version",
    "is_permanent",
    "storage_credential",
    "storage_reason",
    "table_service_client",
    "version_properties",
    "wait_for_copy",
]
