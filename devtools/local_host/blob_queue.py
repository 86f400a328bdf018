"""The host's blob trigger queue: where the blob extension puts each blob a function must see.

In Azure, neither the Event Grid webhook nor the container scan runs the function: both write a
*blob trigger message* to the queue ``azure-webjobs-blobtrigger-<host id>`` of the host's
storage, and a queue listener runs the function from it (``BlobTriggerQueueWriter``,
``HostQueueNames.GetHostBlobTriggerQueueName`` and ``BlobTriggerMessage`` in
``Azure/azure-sdk-for-net``, ``sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Blobs/
src/Listeners/``). A message answered with 202 therefore survives a host that dies before
running it. The local host keeps the same queue in Azurite, with the same message, so a
restarted host with the same ``host_id`` runs what its predecessor left.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import (
    QueueClient,
    QueueMessage,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from devtools.storage_options import STORAGE_OPTIONS

QUEUE_PREFIX = "azure-webjobs-blobtrigger-"
FUNCTION_ID_PREFIX = "Host.Functions."
# What the extension's HostIdValidator accepts (the Functions host uses the app's name).
_HOST_ID = re.compile(r"(?!.*--)[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")


def function_id(function_name: str) -> str:
    """The id the host registers a function under, which a webhook's ``functionName`` names."""
    return FUNCTION_ID_PREFIX + function_name


def queue_name(host_id: str) -> str:
    """The blob trigger queue of ``host_id``.

    :raises ValueError: ``host_id`` is not 1-32 lower-case letters, digits and single dashes
        (not first or last), which the Functions host also refuses.
    """
    if not _HOST_ID.fullmatch(host_id):
        raise ValueError(
            f"host_id {host_id!r} is not valid: 1-32 lower-case letters, digits and dashes, "
            "not starting or ending with a dash, no two dashes in a row"
        )
    return QUEUE_PREFIX + host_id


class BlobTriggerMessageError(ValueError):
    """A queue message that is not a blob trigger message."""


@dataclass(frozen=True)
class BlobTriggerMessage:
    """One blob for one function, as the extension serialises it (and copies it to poison).

    ``function_id`` is None when the webhook was called without ``functionName``: the extension
    queues such a message all the same.
    """

    function_id: str | None
    blob_type: str  # BlockBlob, AppendBlob or PageBlob
    container_name: str
    blob_name: str
    etag: str  # quoted

    def to_json(self) -> str:
        """The message text, with the extension's property names."""
        return json.dumps(
            {
                "Type": "BlobTrigger",
                "FunctionId": self.function_id,
                "BlobType": self.blob_type,
                "ContainerName": self.container_name,
                "BlobName": self.blob_name,
                "ETag": self.etag,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Parse a message.

        :raises BlobTriggerMessageError: not JSON, or a property is missing or not a string.
        """
        try:
            body: Any = json.loads(text)
        except ValueError as error:
            raise BlobTriggerMessageError(f"not JSON: {error}") from None
        if not isinstance(body, dict):
            raise BlobTriggerMessageError("not a JSON object")
        values = {}
        for key in ("BlobType", "ContainerName", "BlobName", "ETag"):
            value = body.get(key)
            if not isinstance(value, str):
                raise BlobTriggerMessageError(f"{key} is missing or not a string")
            values[key] = value
        identifier = body.get("FunctionId")
        return cls(
            function_id=identifier if isinstance(identifier, str) else None,
            blob_type=values["BlobType"],
            container_name=values["ContainerName"],
            blob_name=values["BlobName"],
            etag=values["ETag"],
        )


class BlobTriggerQueue:
    """The host's blob trigger queue in the host's storage (messages Base64-encoded, as the
    Functions host writes queue messages by default).

    :param connection_string: the host's storage.
    :param name: the queue, from :func:`queue_name`.
    """

    def __init__(self, connection_string: str, name: str) -> None:
        self._client = QueueClient.from_connection_string(
            connection_string,
            name,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
            **STORAGE_OPTIONS,
        )

    @property
    def name(self) -> str:
        """The queue's name."""
        return self._client.queue_name

    def send(self, message: BlobTriggerMessage) -> None:
        """Add ``message``, creating the queue when missing (``AddMessageAndCreateIfNotExists``).

        :raises azure.core.exceptions.AzureError: the queue could not be written.
        """
        try:
            self._client.send_message(message.to_json())
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                self._client.create_queue()
            self._client.send_message(message.to_json())

    def receive(self, *, visibility_timeout: int, max_messages: int) -> Iterator[QueueMessage]:
        """Up to ``max_messages`` visible messages, hidden for ``visibility_timeout`` seconds.

        :raises azure.core.exceptions.AzureError: the queue could not be read.
        """
        try:
            yield from self._client.receive_messages(
                messages_per_page=max_messages,
                visibility_timeout=visibility_timeout,
                max_messages=max_messages,
            )
        except ResourceNotFoundError:
            return  # nothing was ever queued

    def delete(self, message: QueueMessage) -> None:
        """Remove a message that is done with.

        :raises azure.core.exceptions.AzureError: the queue could not be written.
        """
        self._client.delete_message(message)

    def hide(self, message: QueueMessage, *, seconds: int) -> QueueMessage:
        """Keep a running message hidden for ``seconds`` more.

        :returns: the message with its new pop receipt (the old one no longer deletes it).
        :raises azure.core.exceptions.AzureError: the queue could not be written.
        """
        return self._client.update_message(message, visibility_timeout=seconds)

    def release(self, message: QueueMessage) -> None:
        """Make a failed message visible again at once (the extension's default
        ``visibilityTimeout`` of zero between tries).

        :raises azure.core.exceptions.AzureError: the queue could not be written.
        """
        self._client.update_message(message, visibility_timeout=0)

    def close(self) -> None:
        """Close the queue client."""
        self._client.close()
