"""Deterministic fault decisions from the knobs: bursts first, then seeded fractions."""

from __future__ import annotations

import enum
import random
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from ._models import Knobs
from ._replies import GENERIC_ERROR, Reply, connector_error, odata_error, text_reply

_STATUS_TEXT = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class Fault(enum.StrEnum):
    """What the emulator does to a call instead of serving it."""

    DROP_BEFORE_BODY = "drop-before-body"
    DROP_AFTER_BODY = "drop-after-body"
    THROTTLE = "throttle"
    ERROR = "error"


class FaultInjector:
    """Draws faults for F&O calls; thread-safe, reproducible for a given seed."""

    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def reseed(self, seed: int) -> None:
        """Restart the sequence of fraction draws."""
        with self._lock:
            self._random = random.Random(seed)

    def before_body(self, knobs: Knobs, operation: str) -> Fault | None:
        """A fault decided before the request body is read (dropping the connection)."""
        if not _applies(knobs, operation):
            return None
        with self._lock:
            if knobs.drop_before_body_burst > 0:
                knobs.drop_before_body_burst -= 1
                return Fault.DROP_BEFORE_BODY
            if knobs.drop_fraction and self._random.random() < knobs.drop_fraction:
                return Fault.DROP_BEFORE_BODY
        return None

    def body_pause(self, knobs: Knobs, operation: str) -> float:
        """Seconds to stop reading this call's request body after its first read (0: none)."""
        return knobs.body_read_pause_seconds if _applies(knobs, operation) else 0.0

    def after_body(self, knobs: Knobs, operation: str) -> Fault | None:
        """A fault decided once the body is read: throttling, a server error, or a drop."""
        if not _applies(knobs, operation):
            return None
        bursts = (
            ("throttle_burst", Fault.THROTTLE),
            ("error_burst", Fault.ERROR),
            ("drop_after_body_burst", Fault.DROP_AFTER_BODY),
        )
        fractions = ((knobs.throttle_fraction, Fault.THROTTLE), (knobs.error_fraction, Fault.ERROR))
        with self._lock:
            for name, fault in bursts:
                if getattr(knobs, name) > 0:
                    setattr(knobs, name, getattr(knobs, name) - 1)
                    return fault
            for fraction, fault in fractions:
                if fraction and self._random.random() < fraction:
                    return fault
        return None


def _applies(knobs: Knobs, operation: str) -> bool:
    return knobs.operations is None or operation in knobs.operations


def throttle_reply(
    knobs: Knobs,
    *,
    odata: bool,
    message: str | None = None,
    retry_after: int | None = None,
) -> Reply:
    """429 with Retry-After (seconds or an HTTP date) and a service-protection message
    (``knobs``' unless given)."""
    headers: dict[str, str] = {}
    wait = knobs.retry_after if retry_after is None else retry_after
    if wait is not None:
        if knobs.retry_after_as_date:
            when = datetime.now(UTC) + timedelta(seconds=wait)
            headers["Retry-After"] = format_datetime(when, usegmt=True)
        else:
            headers["Retry-After"] = str(wait)
    text = message or knobs.throttle_message
    reply = odata_error(429, text) if odata else connector_error(429, text)
    return Reply(reply.status, reply.body, reply.content_type, headers)


def error_reply(knobs: Knobs) -> Reply:
    """A server error: ASP.NET's generic 500 body, or the gateway's text for 502/503/504."""
    if knobs.error_status == 500:
        return connector_error(500, GENERIC_ERROR)
    return text_reply(knobs.error_status, _STATUS_TEXT.get(knobs.error_status, "Server Error"))
