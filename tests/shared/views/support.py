"""What the view tests share: a file enqueued through the real flow, the range refusal's text."""

from __future__ import annotations

from tests.e2e.test_enqueue import VALID
from tests.shared.conftest import Domain

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
