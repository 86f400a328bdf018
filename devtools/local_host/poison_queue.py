"""The blob trigger's poison queue: where a blob trigger message goes after its last failed try."""

from __future__ import annotations

import contextlib
import logging

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devtools.local_host.blob_queue import BlobTriggerMessage
from devtools.storage_options import STORAGE_OPTIONS

_LOGGER = logging.getLogger(__name__)

POISON_QUEUE = "webjobs-blobtrigger-poison"


def send_to_poison_queue(
    connection_string: str, message: BlobTriggerMessage, *, tries: int
) -> None:
    """Copy ``message`` to the poison queue, as the extension's queue processor does, and log it
    as an error.

    :raises azure.core.exceptions.AzureError: the queue could not be written.
    """
    with QueueClient.from_connection_string(
        connection_string,
        POISON_QUEUE,
        message_encode_policy=TextBase64EncodePolicy(),
        **STORAGE_OPTIONS,
    ) as queue:
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        queue.send_message(message.to_json())
    _LOGGER.error(
        "poison blob function=%s blob=%s/%s etag=%s tries=%s queue=%s",
        message.function_id,
        message.container_name,
        message.blob_name,
        message.etag,
        tries,
        POISON_QUEUE,
    )
