"""Event Grid, locally: a storage account's ``BlobCreated`` events delivered to a webhook.

In Azure, an upload reaches ``enqueue_blob`` because the storage account's system topic sends
``Microsoft.Storage.BlobCreated`` to the subscription of ``infra/app/eventsubscription.bicep``:
the blob extension's webhook ``/runtime/webhooks/blobs?functionName=Host.Functions.enqueue_blob``,
Event Grid schema, one event per delivery, 30 attempts over 24 h. :class:`EventGridPublisher`
does the same against the local host (``devtools.local_host``) or ``func start``: it lists a
container, builds the events a write would raise (:func:`blob_created_event`), filters them
like the subscription, validates the webhook first, and retries as Event Grid does.

```python
container_client = ContainerClient.from_connection_string(
    connection_string, "d365-inbound", **STORAGE_OPTIONS  # devtools.storage_options
)
with EventGridPublisher(
    container_client,
    Subscription(
        name="enqueue-blob",
        endpoint=host.webhook_url("enqueue_blob"),
        subject_begins_with=container_subject("d365-inbound"),
    ),
) as publisher:
    ...  # uploads to d365-inbound are delivered to the webhook within a second
```
"""

from devtools.event_grid._delivery import DeliveryResult, EventGridError, WebhookClient
from devtools.event_grid._events import (
    BLOB_CREATED,
    blob_created_event,
    blob_subject,
    container_subject,
    storage_topic,
    validation_event,
)
from devtools.event_grid._publisher import DeadLetter, EventGridPublisher
from devtools.event_grid._subscription import RETRY_SCHEDULE, Subscription

__all__ = [
    "BLOB_CREATED",
    "RETRY_SCHEDULE",
    "DeadLetter",
    "DeliveryResult",
    "EventGridError",
    "EventGridPublisher",
    "Subscription",
    "WebhookClient",
    "blob_created_event",
    "blob_subject",
    "container_subject",
    "storage_topic",
    "validation_event",
]
