"""Helpers shared by the F&O client tests."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from devtools.d365_emulator import Emulator, RecordedRequest
from shared.clients.d365 import D365Client, RetryPolicy

# Backoffs of milliseconds and a recorded sleep keep retry tests fast; Retry-After values are
# recorded as asked, not slept.
FAST_RETRY = RetryPolicy(
    max_attempts=4,
    total_timeout=60.0,
    backoff_base=0.01,
    backoff_max=0.05,
    default_retry_after=7.0,
)

ClientFactory = Callable[..., D365Client]


def received(emulator: Emulator, operation: str) -> list[RecordedRequest]:
    """The requests of one operation the emulator received."""
    return [request for request in emulator.requests if request.operation == operation]


def sha256(data: bytes) -> str:
    """Hex digest, to compare with what the emulator recorded."""
    return hashlib.sha256(data).hexdigest()


def stored_bytes(emulator: Emulator, message_id: str) -> bytes:
    """The file the emulator keeps for an enqueued message."""
    path = emulator.messages[message_id].body_path
    assert path is not None
    return Path(path).read_bytes()
