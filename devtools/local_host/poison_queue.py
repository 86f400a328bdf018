"""The blob trigger's poison queue: where a blob goes after its last failed try."""

from __future__ import annotations

import contextlib
import json
import logging

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devtools.local_host.bindings import BlobFunction
from devtools.local_host.blob_watcher import BlobVersion

_LOGGER = logging.getLogger(__name__)

POISON_QUEUE = "webjobs-blobtrigger-poison"


def send_to_poison_queue(
    connection_string: str, function: BlobFunction, version: BlobVersion, *, tries: int
) -> None:
    """Queue the message the Functions host writes for a poison blob, and log it as an error.

    :raises azure.core.exceptions.AzureError: the queue could not be written.
    """
    message = {
        "Type": "BlobTrigger",
        "FunctionId": f"Host.Functions.{function.name}",
        "BlobType": version.blob_type,
        "ContainerName": function.container,
        "BlobName": version.name,
        "ETag": version.etag,
    }
    with QueueClient.from_connection_string(
        connection_string, POISON_QUEUE, message_encode_policy=TextBase64EncodePolicy()
    ) as queue:
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        queue.send_message(json.dumps(message))
    _LOGGER.error(
        "poison blob function=%s blob=%s/%s etag=%s tries=%s queue=%s",
        function.name,
        function.container,
        version.name,
        version.etag,
        tries,
        POISON_QUEUE,
    )
