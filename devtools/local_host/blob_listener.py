"""The blob trigger queue's listener: runs a blob function for each message, as Azure's does.

It follows ``BlobQueueTriggerExecutor.ExecuteAsync`` and the queue processor of
``Azure/azure-sdk-for-net`` (``sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Blobs/
src/Listeners/BlobQueueTriggerExecutor.cs``, ``SharedBlobQueueListenerFactory.cs``;
``sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/
QueueListener.cs``):

- a message whose ``FunctionId`` is not a hosted function (a webhook called with a wrong
  ``functionName``) is dropped: "Blob '...' will not be processed because function '...'
  cannot be found" (Azure logs it at Debug; here it is a warning, to be seen);
- a message with no ``FunctionId`` (no ``functionName`` at all) makes Azure's executor throw
  "Invalid function ID."; the queue listener hands that to the host's unhandled-exception
  handler, which logs "An unhandled exception has occurred. Host is shutting down." and stops
  the host; the message stays in the queue and comes back after its visibility timeout. The
  local host logs the same error and keeps running; the message stays hidden, as in Azure;
- a blob that no longer exists is dropped without running the function: "Blob '...' will not
  be processed because the blob cannot be found";
- for an ``EventGrid``-source function the blob is run *as it is now*: the message's ETag is
  not compared (a scan-source function drops a message whose ETag changed, as the newer
  version has a message of its own);
- the function gets a ``BlobClient`` built from the binding's connection setting and the
  message's container and blob name (model binding data, see :mod:`.blob_binding`);
- a message is received hidden and kept hidden while it runs (Azure: 10 minutes, renewed at
  half-time; here :data:`VISIBILITY_TIMEOUT`, renewed likewise, so a message whose host died
  or whose receipt was lost comes back within a minute);
- a failed run makes the message visible again at once; after ``max_dequeue_count`` tries
  (the host's default is 5) the message is copied to ``webjobs-blobtrigger-poison`` and
  deleted.

The extension does not match the blob against the trigger's path: the function runs for any
blob a message names (the Event Grid subscription's filter is what keeps other containers out).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import BlobClient
from azure.storage.queue import QueueMessage

from devtools.local_host.bindings import EVENT_GRID, BlobFunction
from devtools.local_host.blob_binding import convert_blob_client
from devtools.local_host.blob_queue import (
    BlobTriggerMessage,
    BlobTriggerMessageError,
    BlobTriggerQueue,
    function_id,
)
from devtools.local_host.invocation import invoke
from devtools.local_host.poison_queue import send_to_poison_queue
from devtools.storage_options import STORAGE_OPTIONS

_LOGGER = logging.getLogger(__name__)

# How long a received message stays hidden, renewed at half-time while it runs (Azure: 10
# minutes). Shorter here: a killed local host's messages come back within a minute.
VISIBILITY_TIMEOUT = 60
_BATCH = 16  # the queue listener's default batch size


class _KeepHidden:
    """Renews a running message's invisibility at half its timeout (Azure's
    ``UpdateQueueMessageVisibilityCommand``) and keeps its latest pop receipt."""

    def __init__(self, queue: BlobTriggerQueue, message: QueueMessage) -> None:
        self.message = message
        self._queue = queue
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._renew, name="local-host-blob-visibility", daemon=True
        )

    def __enter__(self) -> _KeepHidden:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def _renew(self) -> None:
        while not self._done.wait(VISIBILITY_TIMEOUT / 2):
            try:
                self.message = self._queue.hide(self.message, seconds=VISIBILITY_TIMEOUT)
            except AzureError as error:
                _LOGGER.warning(
                    "blob trigger message visibility renewal failed id=%s error=%s",
                    self.message.id,
                    type(error).__name__,
                )


class BlobQueueListener:
    """Runs the messages of one blob trigger queue for the functions registered on it.

    :param queue: the host's blob trigger queue.
    :param functions: the host's blob functions, registered by :func:`function_id`.
    :param poison_connection_string: the storage of the poison queue.
    :param max_dequeue_count: tries of one message before it goes to the poison queue.
    :param pool: where the functions run.
    """

    def __init__(
        self,
        queue: BlobTriggerQueue,
        functions: Iterable[BlobFunction],
        *,
        poison_connection_string: str,
        max_dequeue_count: int,
        pool: ThreadPoolExecutor,
    ) -> None:
        self._queue = queue
        self._registrations = {function_id(f.name): f for f in functions}
        self._poison_connection_string = poison_connection_string
        self._max_dequeue_count = max_dequeue_count
        self._pool = pool
        self._lock = threading.Lock()

    def run_visible(self) -> int:
        """Run every visible message, and those a failure made visible again, until none is left.

        One caller at a time: a second waits, so when it returns, every message that was
        visible when it was called has been run.

        :returns: how many messages were handled.
        """
        handled = 0
        with self._lock:
            while True:
                try:
                    batch = list(
                        self._queue.receive(
                            visibility_timeout=VISIBILITY_TIMEOUT, max_messages=_BATCH
                        )
                    )
                except AzureError as error:
                    _LOGGER.warning(
                        "blob trigger queue read failed queue=%s error=%s",
                        self._queue.name,
                        type(error).__name__,
                    )
                    return handled
                if not batch:
                    return handled
                wait([self._pool.submit(self._handle_logged, message) for message in batch])
                handled += len(batch)

    def _handle_logged(self, queue_message: QueueMessage) -> None:
        """:meth:`_handle`, whose exceptions (the pool would keep them unread) are logged with
        their traceback; the message then takes the failure path (tried again, or poisoned)."""
        try:
            self._handle(queue_message)
        except Exception:
            _LOGGER.exception(
                "blob trigger message failed in the local host queue=%s id=%s",
                self._queue.name,
                queue_message.id,
            )
            try:
                message = BlobTriggerMessage.from_json(queue_message.content)
            except BlobTriggerMessageError:
                return  # logged by _handle; back after its visibility timeout
            self._failed(message, queue_message)

    def _handle(self, queue_message: QueueMessage) -> None:
        try:
            message = BlobTriggerMessage.from_json(queue_message.content)
        except BlobTriggerMessageError as error:
            # Azure's executor throws on it too: left in the queue, back after the timeout.
            _LOGGER.error(
                "invalid blob trigger message queue=%s id=%s: %s",
                self._queue.name,
                queue_message.id,
                error,
            )
            return
        if message.function_id is None:
            _LOGGER.error(
                "Invalid function ID. blob=%s/%s queue message id=%s: the blob extension's "
                "webhook was called without ?functionName=Host.Functions.<function>; Azure's "
                "host stops on this message ('An unhandled exception has occurred. Host is "
                "shutting down.') and meets it again after %ss",
                message.container_name,
                message.blob_name,
                queue_message.id,
                VISIBILITY_TIMEOUT,
            )
            return
        function = self._registrations.get(message.function_id)
        if function is None:
            _LOGGER.warning(
                "Blob '%s' will not be processed because function '%s' cannot be found. "
                "Message Id: '%s' (hosted: %s)",
                message.blob_name,
                message.function_id,
                queue_message.id,
                ", ".join(sorted(self._registrations)) or "none",
            )
            self._delete(queue_message)
            return
        with _KeepHidden(self._queue, queue_message) as hidden:
            done = self._run(function, message, queue_message)
        # After the renewals stopped: the latest pop receipt is the one that counts.
        if done:
            self._delete(hidden.message)
        else:
            self._failed(message, hidden.message)

    def _run(
        self, function: BlobFunction, message: BlobTriggerMessage, queue_message: QueueMessage
    ) -> bool:
        """Run ``function`` for the message's blob; True when the message is done with (run, or
        nothing to run), False when it must be tried again."""
        # Built by the blob extension's converter from model binding data, as the worker
        # does in Azure (devtools.local_host.blob_binding).
        with convert_blob_client(
            function.connection, message.container_name, message.blob_name
        ) as client:
            try:
                etag = _blob_etag(client)
            except ResourceNotFoundError:
                _LOGGER.info(
                    "Blob '%s' will not be processed because the blob cannot be found. "
                    "Message Id: '%s' container=%s",
                    message.blob_name,
                    queue_message.id,
                    message.container_name,
                )
                return True
            except AzureError as error:
                _LOGGER.warning(
                    "blob properties read failed blob=%s/%s error=%s",
                    message.container_name,
                    message.blob_name,
                    type(error).__name__,
                )
                return False
            if function.source != EVENT_GRID and etag != message.etag:
                return True  # the newer version has a message of its own
            detail = (
                f"trigger=blob blob={message.container_name}/{message.blob_name} etag={etag} "
                f"attempt={queue_message.dequeue_count}"
            )
            outcome = invoke(
                function.name, function.user_function, detail, **{function.binding_name: client}
            )
        return outcome.succeeded

    def _failed(self, message: BlobTriggerMessage, queue_message: QueueMessage) -> None:
        tries = queue_message.dequeue_count or 1
        try:
            if tries < self._max_dequeue_count:
                self._queue.release(queue_message)
                return
            send_to_poison_queue(self._poison_connection_string, message, tries=tries)
            self._queue.delete(queue_message)
        except AzureError:
            # The message comes back after its visibility timeout and is tried again.
            _LOGGER.exception(
                "blob trigger queue write failed blob=%s/%s",
                message.container_name,
                message.blob_name,
            )

    def _delete(self, queue_message: QueueMessage) -> None:
        try:
            self._queue.delete(queue_message)
        except AzureError as error:
            _LOGGER.warning(
                "blob trigger message delete failed queue=%s id=%s error=%s",
                self._queue.name,
                queue_message.id,
                type(error).__name__,
            )


def _blob_etag(client: BlobClient) -> str:
    """The blob's current ETag, read by the host with its own client (its own timeouts and
    retries, as the extension's check is the host's call in Azure): the function's client has
    the SDK's defaults, whose first retry waits 15 s, with every message of the batch behind it.

    :raises AzureError: the blob could not be read.
    """
    with BlobClient.from_blob_url(
        client.url, credential=client.credential, **STORAGE_OPTIONS
    ) as own:
        return str(own.get_blob_properties().etag)
