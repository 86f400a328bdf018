"""The client options of devtools' own storage calls (the local host's and Event Grid's).

The trigger queue, the poison queue, the check of a triggering blob's ETag, the container
listings of the polling fallback and of the Event Grid stand-in: small calls on loopback, made in
loops that try again on their own.
The Storage SDK's default ``ExponentialRetry`` waits 15 s (then 18 s, 24 s, with 3 s of jitter)
before its first retry: behind the fault proxy, one 503 or reset held the scan or the queue
listener, and every delivery behind it, for 15-20 s. Here a hung call fails in seconds and a
failed one is retried within a second or two (``initial_backoff + increment_base ** retry``:
about 2.0, 2.75, 3.9 s, each within 0.5 s of jitter).
"""

from __future__ import annotations

from typing import Any

__all__ = ["STORAGE_OPTIONS"]

STORAGE_OPTIONS: dict[str, Any] = {
    "connection_timeout": 5,
    "read_timeout": 5,
    "retry_total": 3,
    "initial_backoff": 0.5,
    "increment_base": 1.5,
    "random_jitter_range": 0.5,
}
"""Keyword options for ``azure.storage.blob`` and ``azure.storage.queue`` clients
(``from_connection_string`` and the constructors), which build ``ExponentialRetry`` from them."""
