"""The base of the app's own errors: their text is safe to show to whoever asked.

Our errors name settings, blobs, routes and F&O's answers, never a secret, a token or a SAS
query string, so the HTTP view may show their text; an error from anywhere else (an SDK, the
standard library) is shown by its type only, as its text may echo URLs or values.
"""

from __future__ import annotations

__all__ = ["AppError", "safe_text"]


class AppError(Exception):
    """An error of this app, whose text is safe to show."""


def safe_text(exc: BaseException) -> str:
    """What may be shown of ``exc``: the text of our own errors, the type of any other."""
    if isinstance(exc, AppError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__
