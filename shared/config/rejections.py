"""Why an inbound blob is never sent to F&O, as a reason carried by one error."""

from __future__ import annotations

import enum

from shared.errors import AppError

__all__ = ["RejectReason", "RoutingError"]


class RejectReason(enum.StrEnum):
    """Why a blob is never sent to F&O; stored on its tracking row and blob metadata."""

    NO_ROUTE = "NoRoute"
    BAD_NAME = "BadName"
    BAD_COMPANY = "BadCompany"
    EXTENSION_NOT_ALLOWED = "ExtensionNotAllowed"
    ROUTE_DISABLED = "RouteDisabled"
    EMPTY_FILE = "EmptyFile"
    TOO_LARGE = "TooLarge"
    NAME_TOO_LONG = "NameTooLong"
    SUPERSEDED = "Superseded"
    """The blob was overwritten before it was sent; the new version is tracked on its own."""
    DELETED = "Deleted"
    """The blob was deleted before it was sent."""


class RoutingError(AppError, ValueError):
    """A blob cannot be sent: ``reason`` says why, the text names the path and the fix."""

    def __init__(self, reason: RejectReason, blob_path: str, message: str) -> None:
        self.reason = reason
        self.blob_path = blob_path
        super().__init__(message)
