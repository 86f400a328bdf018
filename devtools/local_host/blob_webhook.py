"""The blob extension's webhook, ``/runtime/webhooks/blobs``: where Event Grid posts blob events.

What Azure does, and this module does the same (``Azure/azure-sdk-for-net``):

- The Functions host routes ``runtime/webhooks/{extensionName}/{*extra}`` (GET, POST, DELETE,
  OPTIONS) to the extension of that name, 404 for an extension it does not have; the caller
  needs the system key ``<extensionName>_extension`` (``blobs_extension``) or the master key,
  as ``?code=`` or ``x-functions-key``, else 401 (``Azure/azure-functions-host``:
  ``src/WebJobs.Script.WebHost/Controllers/HostController.cs`` ``ExtensionWebHookHandler``,
  and the ``SystemKeyAuthLevel`` policy). The local host has one key for everything
  (``function_key``): when set, the webhook needs it too; when None, nothing is checked, as
  under Core Tools.
- ``BlobsExtensionConfigProvider.ConvertAsync`` (``sdk/storage/
  Microsoft.Azure.WebJobs.Extensions.Storage.Blobs/src/Config/``) reads ``functionName`` from
  the query and hands the request to the Event Grid extension's ``HttpRequestProcessor``
  (``sdk/eventgrid/Microsoft.Azure.WebJobs.Extensions.EventGrid/src/TriggerBinding/
  HttpRequestProcessor.cs``, compiled into the blob extension), whose answers are:

  - ``OPTIONS`` (the CloudEvents handshake): 200 with ``Webhook-Allowed-Origin`` (the
    request's ``WebHook-Request-Origin`` when it is an Event Grid cloud, else
    ``eventgrid.azure.net``);
  - ``aeg-event-type: SubscriptionValidation``: 200 ``{"validationResponse": <code>}``, the
    code from ``[0].data.validationCode`` (an array, the Event Grid schema) or from the
    JSON-encoded ``data`` of one object (CloudEvents);
  - ``aeg-event-type: Notification``: the body, an array of events or one event, goes to
    ``ProcessEventsAsync``, which writes one blob trigger message per event (blob from
    ``data.url``, ``ETag`` = ``"`` + ``data.eTag`` + ``"``, type from ``data.blobType``,
    ``FunctionId`` = ``functionName``) and answers 202 with no body. It does not look at
    ``eventType``: the subscription's filter (``includedEventTypes``) decides what arrives.
    ``functionName`` is not checked here: a wrong one is dropped by the queue listener, a
    missing one fails there (:mod:`.blob_listener`);
  - ``aeg-event-type: Unsubscribe``: 202; any other or no ``aeg-event-type``: 400.

  A body that is not JSON, or an event without ``data.url`` or ``data.blobType``, throws:
  the host answers 500, after the batch's earlier events were queued (Event Grid retries the
  whole batch; the app's claim makes the repeats harmless). Locally the 400 and 500 answers
  carry a JSON ``error`` saying what was wrong; Azure's carry nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from azure.core.exceptions import AzureError

from devtools.local_host.blob_queue import BlobTriggerMessage, BlobTriggerQueue
from devtools.local_host.http_reply import HttpReply, json_reply

_LOGGER = logging.getLogger(__name__)

EXTENSION_NAME = "blobs"
EVENT_TYPE_HEADER = "aeg-event-type"
_ALLOWED_ORIGINS = frozenset(
    {
        "eventgrid.azure.net",
        "eventgrid.azure.us",
        "eventgrid.azure.eaglex.ic.gov",
        "eventgrid.azure.microsoft.scloud",
        "eventgrid.azure.cn",
    }
)
_BLOB_HOST_LABEL = "blob"


class EventError(ValueError):
    """The body is not what the extension can read (Azure's host then answers 500)."""


class BlobWebhook:
    """Answers the blob extension's webhook and queues one message per blob event.

    :param queue: the host's blob trigger queue.
    :param notify: called after events were queued (the listener's fast path, as the
        extension's ``SharedQueueWatcher.Notify``).
    """

    def __init__(self, queue: BlobTriggerQueue, notify: Callable[[], None]) -> None:
        self._queue = queue
        self._notify = notify

    def handle(
        self, method: str, params: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> HttpReply:
        """One request to ``/runtime/webhooks/blobs``; ``params`` is the query string's."""
        if method == "OPTIONS":
            origin = _header(headers, "WebHook-Request-Origin")
            allowed = origin if origin in _ALLOWED_ORIGINS else "eventgrid.azure.net"
            return HttpReply(200, (("Webhook-Allowed-Origin", allowed),), b"")
        function_name = next((v for k, v in params.items() if k.lower() == "functionname"), None)
        event_type = (_header(headers, EVENT_TYPE_HEADER) or "").lower()
        try:
            if event_type == "subscriptionvalidation":
                code = _validation_code(body)
                _LOGGER.info("perform handshake with eventGrid for function: %s", function_name)
                return json_reply(200, {"validationResponse": code})
            if event_type == "notification":
                return self._notification(function_name, body)
        except EventError as error:
            _LOGGER.warning("blob webhook request refused status=500: %s", error)
            return json_reply(500, {"error": str(error)})
        if event_type == "unsubscribe":
            return HttpReply(202, (), b"")
        return json_reply(
            400,
            {
                "error": f"{EVENT_TYPE_HEADER} must be Notification, SubscriptionValidation or "
                "Unsubscribe, as Event Grid sends it"
            },
        )

    def _notification(self, function_name: str | None, body: bytes) -> HttpReply:
        if function_name is None:
            _LOGGER.warning(
                "blob webhook called without functionName: Azure answers 202 and its host "
                "then fails on the queued message ('Invalid function ID.'); use "
                "?functionName=Host.Functions.<function>"
            )
        events = _events(body)
        try:
            for index, event in enumerate(events):
                message = _trigger_message(index, event, function_name)
                try:
                    self._queue.send(message)
                except AzureError as error:
                    _LOGGER.warning(
                        "blob trigger queue write failed queue=%s error=%s",
                        self._queue.name,
                        type(error).__name__,
                    )
                    return json_reply(500, {"error": "the blob trigger queue could not be written"})
                _LOGGER.info(
                    "blob event queued function=%s blob=%s/%s etag=%s",
                    function_name,
                    message.container_name,
                    message.blob_name,
                    message.etag,
                )
        finally:
            self._notify()  # what was queued before a failure runs all the same
        return HttpReply(202, (), b"")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:
        raise EventError(f"the body is not JSON: {error}") from None


def _validation_code(body: bytes) -> str:
    events = _parse(body)
    try:
        if isinstance(events, list):
            return str(events[0]["data"]["validationCode"])
        if isinstance(events, dict):
            # CloudEvents: data is itself JSON text.
            data = events["data"]
            return str((json.loads(data) if isinstance(data, str) else data)["validationCode"])
    except (LookupError, TypeError, ValueError):
        raise EventError("no data.validationCode in the validation event") from None
    raise EventError("the body should be a JSON object or array")


def _events(body: bytes) -> list[Any]:
    token = _parse(body)
    if isinstance(token, list):
        return token
    if isinstance(token, dict):
        return [token]
    raise EventError("the body should be a JSON object or array")


def _trigger_message(index: int, event: Any, function_name: str | None) -> BlobTriggerMessage:
    data = event.get("data") if isinstance(event, dict) else None
    url = data.get("url") if isinstance(data, dict) else None
    blob_type = data.get("blobType") if isinstance(data, dict) else None
    if not isinstance(url, str) or not isinstance(blob_type, str):
        raise EventError(
            f"event {index} has no data.url or data.blobType: the blob extension needs both "
            "(a Microsoft.Storage.BlobCreated event in the Event Grid schema has them)"
        )
    container, blob_name = blob_location(url)
    etag = data.get("eTag")
    return BlobTriggerMessage(
        function_id=function_name,
        blob_type=blob_type,
        container_name=container,
        blob_name=blob_name,
        etag=f'"{etag if etag is not None else ""}"',
    )


def blob_location(url: str) -> tuple[str, str]:
    """The container and blob name a blob URL names, as ``BlobUriBuilder`` reads them.

    ``https://<account>.blob.<suffix>/<container>/<blob>``; any other host (Azurite's
    ``http://127.0.0.1:10000/<account>/<container>/<blob>``) has the account first in the
    path. The blob name is percent-decoded.

    :raises EventError: the URL is not one, or names no container and blob.
    """
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError as error:  # e.g. an unclosed IPv6 bracket: "http://[x/c/b"
        raise EventError(f"data.url {url[:200]!r} is not a URL: {error}") from None
    labels = (hostname or "").split(".")
    segments = parts.path.lstrip("/").split("/")
    if not (len(labels) > 2 and labels[1] == _BLOB_HOST_LABEL):
        segments = segments[1:]  # the account
    if len(segments) < 2 or not segments[0] or not "/".join(segments[1:]):
        raise EventError(f"data.url {parts.path!r} names no container and blob")
    return unquote(segments[0]), unquote("/".join(segments[1:]))
