"""The send's deadline: an upload cut short before it would outlive the claim's lease."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from shared.errors import AppError
from shared.tracking import TrackedFile

__all__ = ["DeadlineStream", "SendDeadlineError", "send_deadline"]


class SendDeadlineError(AppError):
    """The upload would have outlived the claim's lease; it was cut short before its end,
    so F&O cannot have taken the file."""


class DeadlineStream:
    """A blob download that refuses to go on past a deadline, so an upload stops before its
    body is complete (an incomplete request is never a message in F&O)."""

    def __init__(self, stream: Any, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, size: int = -1, /) -> bytes:
        """Read from the download, unless the deadline has passed.

        :raises SendDeadlineError: the deadline has passed.
        """
        if time.monotonic() > self._deadline:
            raise SendDeadlineError(
                "the upload was stopped before its end: it would have outlived the claim's "
                "lease (CLAIM_LEASE); raise CLAIM_LEASE for files this large or this slow"
            )
        return self._stream.read(size)


def send_deadline(
    record: TrackedFile, *, answer_timeout: timedelta, clock: Callable[[], datetime]
) -> float:
    """When (``time.monotonic``) an upload must stop for its answer to come within the
    claim's lease: recovery then never judges an upload that still runs."""
    lease_left = (record.lease_until or clock()) - clock()
    return time.monotonic() + (lease_left - answer_timeout).total_seconds()
