"""A small local Functions host: runs a v2 app's own function objects from their bindings.

Azure Functions Core Tools cannot be installed here, so this host stands in for `func start`.
It reads ``app.get_functions()`` and drives each function from its trigger binding, the way
the Functions host and the Python worker would. ``%NAME%`` in a blob path or a schedule is the
app setting ``NAME``, read from ``os.environ``; a missing one is an error that names it.

- ``blobTrigger``: as in Azure, a blob function runs from the host's *blob trigger queue*
  (:mod:`.blob_queue`, ``azure-webjobs-blobtrigger-<host id>`` in the host's storage) through
  its listener (:mod:`.blob_listener`), which builds the ``azure.storage.blob.BlobClient`` from
  model binding data with the blob extension's own converter, as the worker does
  (:mod:`.blob_binding`). The queue is fed by the blob extension's webhook
  ``/runtime/webhooks/blobs`` (:mod:`.blob_webhook`), where Event Grid posts ``BlobCreated``
  events (``devtools.event_grid`` publishes them locally). A failing message is tried
  ``poison_threshold`` times in all, then goes to the ``webjobs-blobtrigger-poison`` queue
  (:mod:`.poison_queue`). The fallback ``poll_blobs`` lists the containers every
  ``blob_scan_interval`` seconds and queues each blob version created after ``start()``.
- ``timerTrigger`` (:mod:`.schedules`, :mod:`.timer_runner`): the NCRONTAB schedule, parsed by
  the app's own grammar (``shared.config.ncrontab``), or a fixed interval; a singleton that
  skips a tick while the previous invocation still runs.
- ``httpTrigger`` (:mod:`.http_server`, :mod:`.http_routes`): a loopback HTTP server for
  ``/api/<route>`` and the webhook; keys are enforced only when ``function_key`` is given
  (Core Tools does not enforce them locally; Azure does), and then that one key also stands
  for the master key and the ``blobs_extension`` system key the webhook needs in Azure.

``easy_auth`` (:mod:`.easy_auth`) plays App Service authentication in front of it all, for
``HTTP_AUTH=entra``: ``/.auth/*``, a few test identities, the principal headers.

:mod:`.bindings` reads the functions, :mod:`.invocation` logs one line per call, and
:class:`LocalHost` (:mod:`.host`) runs it all. The host's own storage (the queues, the
fallback's listings) is the ``storage_connection_string`` given to it; a blob function's client
comes from its binding's connection setting (given that storage when the setting is missing).
"""

from devtools.local_host.app_settings import MissingAppSettingError, resolve_app_settings
from devtools.local_host.bindings import UnsupportedBindingError
from devtools.local_host.blob_queue import BlobTriggerMessage, function_id, queue_name
from devtools.local_host.easy_auth import IDENTITIES, EasyAuth, LocalIdentity, principal_headers
from devtools.local_host.host import LocalHost
from devtools.local_host.poison_queue import POISON_QUEUE

__all__ = [
    "IDENTITIES",
    "POISON_QUEUE",
    "BlobTriggerMessage",
    "EasyAuth",
    "LocalHost",
    "LocalIdentity",
    "MissingAppSettingError",
    "UnsupportedBindingError",
    "function_id",
    "principal_headers",
    "queue_name",
    "resolve_app_settings",
]
