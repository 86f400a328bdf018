"""The F&O bearer token, held by the client between calls until it is due for renewal.

Asking azure-identity for the token on every call costs a lookup in MSAL's cache each time
(about 8 % of a poll's CPU). The client keeps the token the credential gave and asks again
only when it expires within 5 minutes or is past its ``refresh_on``, as azure-core's
``BearerTokenCredentialPolicy`` does. A 401 from F&O drops it, so the next attempt asks the
credential again, as every call did before.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from azure.core.credentials import TokenCredential

__all__ = ["REFRESH_MARGIN", "HeldToken"]

REFRESH_MARGIN = 300.0
"""Seconds before its expiry at which a held token is asked for again."""


@dataclass(frozen=True)
class _Token:
    value: str
    expires_on: float
    refresh_on: float | None

    def due(self, now: float) -> bool:
        return now >= self.expires_on - REFRESH_MARGIN or (
            self.refresh_on is not None and now >= self.refresh_on
        )


class HeldToken:
    """The token of one scope, asked of the credential only when due (thread-safe)."""

    def __init__(self, credential: TokenCredential, scope: str) -> None:
        self._credential = credential
        self._scope = scope
        self._lock = threading.Lock()
        self._held: _Token | None = None

    def get(self) -> str:
        """The token: the held one, or a new one from the credential when it is due.

        :raises Exception: whatever the credential raises.
        """
        held = self._held
        if held is not None and not held.due(time.time()):
            return held.value
        with self._lock:
            held = self._held
            if held is None or held.due(time.time()):
                held = self._ask()
                self._held = held
            return held.value

    def drop(self, value: str) -> None:
        """Forget the token `value` (F&O refused it); a newer one already held stays."""
        with self._lock:
            if self._held is not None and self._held.value == value:
                self._held = None

    def _ask(self) -> _Token:
        get_token_info = getattr(self._credential, "get_token_info", None)
        if get_token_info is not None:
            info = get_token_info(self._scope)
            return _Token(info.token, info.expires_on, info.refresh_on)
        token = self._credential.get_token(self._scope)
        return _Token(token.token, token.expires_on, None)
