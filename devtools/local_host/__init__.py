"""A small local Functions host: runs a v2 app's own function objects from their bindings.

Azure Functions Core Tools cannot be installed here, so this host stands in for `func start`.
It reads ``app.get_functions()`` and drives each function from its trigger binding, the way
the Functions host and the Python worker would. ``%NAME%`` in a blob path or a schedule is the
app setting ``NAME``, read from ``os.environ``; a missing one is an error that names it.

- ``blobTrigger`` (:mod:`.blob_watcher`, :mod:`.poison_queue`): lists the container every
  ``blob_scan_interval`` seconds and calls the function with an ``azure.storage.blob.BlobClient``
  for each blob version created after ``start()``, built from model binding data by the blob
  extension's own converter, as the worker does in Azure (:mod:`.blob_binding`).
  A failing blob is tried ``poison_threshold`` times in all, then a message goes to the
  ``webjobs-blobtrigger-poison`` queue.
- ``timerTrigger`` (:mod:`.schedules`, :mod:`.timer_runner`): the NCRONTAB schedule, parsed by
  the app's own grammar (``shared.config.ncrontab``), or a fixed interval; a singleton that
  skips a tick while the previous invocation still runs.
- ``httpTrigger`` (:mod:`.http_server`, :mod:`.http_routes`): a loopback HTTP server for
  ``/api/<route>``; function keys are enforced only when ``function_key`` is given (Core Tools
  does not enforce them locally; Azure does).

:mod:`.bindings` reads the functions, :mod:`.invocation` logs one line per call, and
:class:`LocalHost` (:mod:`.host`) runs it all. All storage bindings use the one
``storage_connection_string`` given to the host.
"""

from devtools.local_host.app_settings import MissingAppSettingError, resolve_app_settings
from devtools.local_host.bindings import UnsupportedBindingError
from devtools.local_host.host import LocalHost
from devtools.local_host.poison_queue import POISON_QUEUE

__all__ = [
    "POISON_QUEUE",
    "LocalHost",
    "MissingAppSettingError",
    "UnsupportedBindingError",
    "resolve_app_settings",
]
