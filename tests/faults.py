"""Storage failures at the exact step a test names, injected into real SDK clients.

The hooks run inside the SDK's retry loop, as a network fault would: ``reset`` fails a call
before it reaches Azurite (nothing applied); ``lost`` lets Azurite apply it and then drops the
answer (the SDK retries an idempotent method and meets 409/412, or raises for POST/PATCH).
Everything else reaches the real Azurite unchanged.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from azure.core.exceptions import ServiceRequestError, ServiceResponseError

Kind = Literal["reset", "lost", "meanwhile"]


def describe(request: Any) -> str:
    """``METHOD path?query`` of an HTTP request, as the rules match it."""
    return f"{request.method} {request.url.split('://', 1)[-1].split('/', 1)[-1]}"


@dataclass
class _Rule:
    kind: Kind
    method: str
    contains: str
    skip: int
    times: int
    action: Callable[[], None] | None = None

    def matches(self, request: Any) -> bool:
        return request.method == self.method and self.contains in describe(request)


class StorageFaults:
    """Fault rules and a log of every storage call the clients made."""

    def __init__(self) -> None:
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self.calls: list[str] = []
        self.injected: Counter[str] = Counter()

    def fail(
        self, kind: Kind, method: str, contains: str = "", *, skip: int = 0, times: int = 1
    ) -> None:
        """Fail the matching calls: after ``skip`` matches, the next ``times`` ones."""
        with self._lock:
            self._rules.append(_Rule(kind, method, contains, skip, times))

    def meanwhile(
        self, method: str, contains: str, action: Callable[[], None], *, skip: int = 0
    ) -> None:
        """Run ``action`` (another writer) just before the matching call goes out, once."""
        with self._lock:
            self._rules.append(_Rule("meanwhile", method, contains, skip, 1, action))

    def clear(self) -> None:
        """Drop every rule: storage works again."""
        with self._lock:
            self._rules.clear()

    def options(self) -> dict[str, Callable[[Any], None]]:
        """Client options for azure-core clients (blob and table)."""
        return {"raw_request_hook": self._before, "raw_response_hook": self._after}

    def count(self, method: str, contains: str = "") -> int:
        """Calls made matching ``method`` and a substring of the path."""
        return sum(1 for call in self.calls if call.startswith(method + " ") and contains in call)

    def _take(self, request: Any, kind: Kind) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.kind != kind or rule.times <= 0 or not rule.matches(request):
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    return None
                rule.times -= 1
                self.injected[kind] += 1
                return rule
        return None

    def _before(self, pipeline_request: Any) -> None:
        request = pipeline_request.http_request
        with self._lock:
            self.calls.append(describe(request))
        meanwhile = self._take(request, "meanwhile")
        if meanwhile is not None and meanwhile.action is not None:
            meanwhile.action()
        if self._take(request, "reset"):
            raise ServiceRequestError(f"injected: connection reset before {describe(request)}")

    def _after(self, pipeline_response: Any) -> None:
        request = pipeline_response.http_request
        if self._take(request, "lost"):
            raise ServiceResponseError(f"injected: answer lost after {describe(request)}")
