"""Events as Event Grid's storage system topic sends them, in the Event Grid schema.

The schema the Bicep's subscription asks for (``eventDeliverySchema: 'EventGridSchema'`` in
``infra/app/eventsubscription.bicep``): ``topic``, ``subject``, ``eventType``, ``id``,
``eventTime``, ``dataVersion``, ``metadataVersion`` and ``data``, whose fields for
``Microsoft.Storage.BlobCreated`` are those of ``StorageBlobCreatedEventData`` (Microsoft
Learn, "Azure Blob Storage as an Event Grid source"): ``api``, ``clientRequestId``,
``requestId``, ``eTag`` (unquoted), ``contentType``, ``contentLength``, ``blobType``, ``url``,
``sequencer`` (ordered per blob name) and ``storageDiagnostics``.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

from devtools.blob_listing import BlobVersion

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
SUBSCRIPTION_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
# Fake, as the local storage account's Azure resource is: Azurite has no subscription.
FAKE_SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
LOCAL_RESOURCE_GROUP = "local"
_SUBJECT_PREFIX = "/blobServices/default/containers/"
_TICKS_PER_SECOND = 10_000_000
_EPOCH_TICKS = 621355968000000000  # .NET ticks of 1970-01-01


def storage_topic(account_name: str) -> str:
    """The storage account's resource id, the ``topic`` of its events."""
    return (
        f"/subscriptions/{FAKE_SUBSCRIPTION_ID}/resourceGroups/{LOCAL_RESOURCE_GROUP}"
        f"/providers/Microsoft.Storage/storageAccounts/{account_name}"
    )


def container_subject(container: str) -> str:
    """The subject prefix of every blob of ``container`` (what the Bicep's filter names)."""
    return f"{_SUBJECT_PREFIX}{container}/"


def blob_subject(container: str, blob_name: str) -> str:
    """``/blobServices/default/containers/<container>/blobs/<name>``."""
    return f"{container_subject(container)}blobs/{blob_name}"


def _event_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_sequence = itertools.count(1)


def _sequencer(moment: datetime) -> str:
    # Ordered per blob, like Event Grid's (32 hex digits): the write's time (a listing gives
    # whole seconds), then a counter for the writes of one second.
    ticks = _EPOCH_TICKS + int(moment.timestamp() * _TICKS_PER_SECOND)
    return f"{ticks:016x}{next(_sequence):016x}"


def blob_created_event(
    version: BlobVersion, *, container: str, url: str, topic: str
) -> dict[str, Any]:
    """The ``Microsoft.Storage.BlobCreated`` event of one blob version.

    :param url: the blob's URL (its name percent-encoded), as the blob service names it.
    """
    return {
        "topic": topic,
        "subject": blob_subject(container, version.name),
        "eventType": BLOB_CREATED,
        "id": str(uuid.uuid4()),
        "data": {
            # A listing cannot see the operation; the app does not read it.
            "api": "PutBlob",
            "clientRequestId": str(uuid.uuid4()),
            "requestId": str(uuid.uuid4()),
            "eTag": version.etag.strip('"'),
            "contentType": version.content_type or "application/octet-stream",
            "contentLength": version.size,
            "blobType": version.blob_type,
            "url": url,
            "sequencer": _sequencer(version.last_modified),
            "storageDiagnostics": {"batchId": str(uuid.uuid4())},
        },
        "dataVersion": "",
        "metadataVersion": "1",
        "eventTime": _event_time(version.last_modified),
    }


def validation_event(topic: str, code: str) -> dict[str, Any]:
    """The event Event Grid posts when a webhook subscription is created."""
    return {
        "id": str(uuid.uuid4()),
        "topic": topic,
        "subject": "",
        "data": {"validationCode": code},
        "eventType": SUBSCRIPTION_VALIDATION,
        "eventTime": _event_time(datetime.now(UTC)),
        "metadataVersion": "1",
        "dataVersion": "2",
    }
