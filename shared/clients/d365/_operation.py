"""What one call to F&O is doing (operation, URL, ids), for its errors' attributes."""

from __future__ import annotations

from dataclasses import dataclass

from ._text import url_without_query

__all__ = ["OperationContext"]


@dataclass(frozen=True)
class OperationContext:
    """What a failed call was doing, for the error's attributes and text."""

    operation: str
    method: str
    url: str
    scope: str
    activity_id: str | None = None
    message_id: str | None = None
    execution_id: str | None = None
    external_id: str | None = None
    """The external identifier as sent in its header, which is what F&O shows."""
    body_length: int | None = None
    resend_safe: bool = True
    """False for enqueue: a failure after the body left may have created a message."""

    def error_ids(self) -> dict[str, str | None]:
        """The keyword arguments every `D365Error` takes: the operation and its ids."""
        return {
            "operation": self.operation,
            "activity_id": self.activity_id,
            "message_id": self.message_id,
            "execution_id": self.execution_id,
        }

    def describe(self) -> str:
        """`operation` with method, URL (no query string) and ids, for the start of a message."""
        ids = [
            f"{label} {value}"
            for label, value in (
                ("activity", self.activity_id),
                ("message", self.message_id),
                ("execution", self.execution_id),
                ("external id", self.external_id),
            )
            if value
        ]
        where = f"{self.method} {url_without_query(self.url)}"
        return f"{self.operation} ({where}{'; ' if ids else ''}{', '.join(ids)})"
