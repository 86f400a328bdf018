"""Which errors' text is safe to show to whoever asked.

Our errors name settings, blobs, routes and F&O's answers, never a secret, a token or a SAS
query string, so the HTTP view may show their text; an error from anywhere else (an SDK, the
standard library) is shown by its type only, as its text may echo URLs or values.
"""

from __future__ import annotations

from shared.clients.d365 import D365Error
from shared.clients.storage.blocks import BlobTakenError

__all__ = ["AppError", "is_safe", "safe_text"]


class AppError(Exception):
    """An error of this app, whose text is safe to show."""


def is_safe(exc: BaseException) -> bool:
    """True when the text of ``exc`` may be shown: an error of this app or of its clients that
    name no secret (the F&O client's, the block writer's refusal of a taken blob)."""
    return isinstance(exc, AppError | D365Error | BlobTakenError)


def safe_text(exc: BaseException) -> str:
    """What may be shown of ``exc``: the text of our own errors, the type of any other."""
    if is_safe(exc):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__
