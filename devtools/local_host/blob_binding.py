"""The blob trigger's ``BlobClient``, built the way the Python worker builds it in Azure.

The Functions host sends the worker *model binding data* for an SDK-type blob binding: the
connection name, the container and the blob name (``source`` ``AzureStorageBlobs``, JSON
content). The worker hands it to the ``azurefunctions-extensions-bindings-blob`` converter,
which reads the connection's app settings and builds the client. This module makes the same
data and calls the same converter, so the local host and the tests exercise that code path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.storage.blob import BlobClient
from azurefunctions.extensions.base import Datum
from azurefunctions.extensions.bindings.blob import BlobClient as BlobClientType
from azurefunctions.extensions.bindings.blob import BlobClientConverter

MODEL_BINDING_DATA = "model_binding_data"
# What the host's blob extension puts in the model binding data it sends the worker.
BINDING_SOURCE = "AzureStorageBlobs"
BINDING_VERSION = "1.0"
CONTENT_TYPE = "application/json"
# The forms of a connection setting the extension accepts, in its order (see its utils.py).
_CONNECTION_SUFFIXES = ("", "__serviceUri", "__blobServiceUri")


@dataclass(frozen=True)
class ModelBindingData:
    """The fields of the worker's ``ModelBindingData`` message the converter reads."""

    content: str
    version: str = BINDING_VERSION
    source: str = BINDING_SOURCE
    content_type: str = CONTENT_TYPE


def model_binding_datum(connection: str, container: str, blob_name: str) -> Datum:
    """The datum the worker passes to the converter for one blob of a trigger."""
    content = json.dumps(
        {"Connection": connection, "ContainerName": container, "BlobName": blob_name}
    )
    return Datum(value=ModelBindingData(content=content), type=MODEL_BINDING_DATA)


def convert_blob_client(
    connection: str,
    container: str,
    blob_name: str,
    *,
    trigger_metadata: Mapping[str, Any] | None = None,
) -> BlobClient:
    """Build the trigger's ``BlobClient`` with the extension's own converter.

    The converter reads the app settings of ``connection`` from ``os.environ``: a connection
    string, or ``<connection>__blobServiceUri`` (or ``__serviceUri``) with
    ``__credential``/``__clientId`` for a managed identity.

    :raises ValueError: the connection has no setting (the extension's message names it).
    """
    client = BlobClientConverter.decode(
        model_binding_datum(connection, container, blob_name),
        trigger_metadata=trigger_metadata,
        pytype=BlobClientType,
    )
    if not isinstance(client, BlobClient):
        raise TypeError(f"the blob converter returned {type(client).__name__}, not a BlobClient")
    return client


def has_connection_setting(connection: str, environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` holds a setting the extension would build ``connection`` from."""
    return any(connection + suffix in environ for suffix in _CONNECTION_SUFFIXES)
