"""What the view tests share: a file enqueued through the real flow, the range refusal's text,
the hostile bodies every route refuses."""

from __future__ import annotations

from tests.e2e.test_enqueue import VALID
from tests.shared.conftest import Domain

HOSTILE_BODIES = [
    (b"[" * 100_000, 413, "the body is 100,000 bytes; at most 65,536 bytes (64 KiB) are"),
    (b"[" * 60_000, 400, "the body is not a JSON object: it is nested too deeply"),
    (b'{"confirm": "\xff"}', 400, "the body is not a JSON object: it is not UTF-8 text"),
    (b"1" * 5000, 400, "the body is not a JSON object: it holds a number of over 4,300"),
]
"""Bodies no route parses, with the start of the refusal every route gives (body, status, text)."""
OUT_OF_RANGE = (
    "is out of range; expected a date-time from 1601-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
)


def enqueued(domain: Domain, path: str = "customers/USMF/file.xml") -> str:
    """The F&O message id of a file at ``path`` once delivered and enqueued."""
    blob = domain.upload(path, VALID)
    record = domain.deliver(blob)
    assert record is not None
    assert record.message_id
    return record.message_id
