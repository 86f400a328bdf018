"""What the proxy does to a request: the fault kinds, the plan that draws them, the counts."""

from __future__ import annotations

import enum
import random
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

WRITE_METHODS: frozenset[str] = frozenset({"PUT", "POST", "PATCH", "MERGE", "DELETE"})
"""The methods that change storage (a table ``$batch`` is a POST)."""


class StorageService(enum.StrEnum):
    """The Azurite service a listener stands in front of."""

    BLOB = "blob"
    QUEUE = "queue"
    TABLE = "table"


class FaultKind(enum.StrEnum):
    """What the proxy does to one request instead of passing it through untouched."""

    SERVER_BUSY = "server-busy"
    """503 ``ServerBusy`` with the service's error body; Azurite never sees the request."""
    RESET_BEFORE = "reset-before-forwarding"
    """The request is read, then the connection is reset; Azurite never sees it."""
    RESET_AFTER = "reset-after-forwarding"
    """Azurite applies the request and answers; the client gets a reset (a lost ack)."""
    LATENCY = "latency"
    """The request waits, then goes through."""

    @property
    def is_failure(self) -> bool:
        """Whether the client sees the request fail (latency only slows it down)."""
        return self is not FaultKind.LATENCY


@dataclass(frozen=True)
class RequestInfo:
    """What a fault filter sees of a request."""

    service: StorageService
    method: str
    target: str


@dataclass(frozen=True)
class FaultPlan:
    """The share of matching requests that get each fault, and which requests match.

    The fractions are of the requests that match the filter (``services``, ``methods``,
    ``target_pattern``; None matches all) and must add up to at most 1.

    :keyword server_busy/reset_before/reset_after/latency: fractions, 0 to 1.
    :keyword latency_seconds: (shortest, longest) delay of a latency spike.
    :keyword services: only these services.
    :keyword methods: only these HTTP methods (upper case), e.g. :data:`WRITE_METHODS`.
    :keyword target_pattern: only request targets (path and query) this regex searches out.
    :raises ValueError: a fraction outside 0..1, fractions adding up to more than 1, or a bad
        latency range.
    """

    server_busy: float = 0.0
    reset_before: float = 0.0
    reset_after: float = 0.0
    latency: float = 0.0
    latency_seconds: tuple[float, float] = (0.2, 1.0)
    services: frozenset[StorageService] | None = None
    methods: frozenset[str] | None = None
    target_pattern: str | None = None
    _compiled: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        named = {
            "server_busy": self.server_busy,
            "reset_before": self.reset_before,
            "reset_after": self.reset_after,
            "latency": self.latency,
        }
        for name, value in named.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"FaultPlan {name}={value!r}: expected a fraction from 0 to 1")
        if sum(self.fractions.values()) > 1.0 + 1e-9:
            raise ValueError(
                f"FaultPlan fractions add up to {sum(self.fractions.values()):.3f}; "
                "expected at most 1 (each request gets one fault at most)"
            )
        low, high = self.latency_seconds
        if not 0.0 <= low <= high:
            raise ValueError(
                f"FaultPlan latency_seconds={self.latency_seconds!r}: expected (low, high) "
                "with 0 <= low <= high"
            )
        compiled = re.compile(self.target_pattern) if self.target_pattern else None
        object.__setattr__(self, "_compiled", compiled)

    @classmethod
    def mixed(
        cls,
        failure_rate: float,
        *,
        latency: float = 0.0,
        latency_seconds: tuple[float, float] = (0.2, 1.0),
        services: frozenset[StorageService] | None = None,
        methods: frozenset[str] | None = None,
    ) -> FaultPlan:
        """``failure_rate`` split evenly over 503s, resets before and resets after forwarding."""
        share = failure_rate / 3
        return cls(
            server_busy=share,
            reset_before=share,
            reset_after=share,
            latency=latency,
            latency_seconds=latency_seconds,
            services=services,
            methods=methods,
        )

    @property
    def fractions(self) -> dict[FaultKind, float]:
        """The fraction of each kind, in the order they are drawn."""
        return {
            FaultKind.SERVER_BUSY: self.server_busy,
            FaultKind.RESET_BEFORE: self.reset_before,
            FaultKind.RESET_AFTER: self.reset_after,
            FaultKind.LATENCY: self.latency,
        }

    def matches(self, request: RequestInfo) -> bool:
        """Whether the filter lets faults reach ``request``."""
        if self.services is not None and request.service not in self.services:
            return False
        if self.methods is not None and request.method.upper() not in self.methods:
            return False
        return self._compiled is None or self._compiled.search(request.target) is not None


@dataclass(frozen=True)
class FaultCounts:
    """A snapshot of what the proxy saw and did."""

    requests: int
    requests_by_service: Mapping[StorageService, int]
    exposed: int
    """Requests that met the plan's filter while faults were on: those a fault could hit."""
    faults: Mapping[FaultKind, int]
    faults_by_service: Mapping[tuple[StorageService, FaultKind], int]

    @property
    def failures(self) -> int:
        """Requests the client saw fail (503s and resets; latency excluded)."""
        return sum(count for kind, count in self.faults.items() if kind.is_failure)

    @property
    def failure_rate(self) -> float:
        """``failures`` over the exposed requests (0 when there were none)."""
        return self.failures / self.exposed if self.exposed else 0.0


class FaultDrawer:
    """Draws one fault (or none) per request from a plan; thread-safe, seeded, counting."""

    def __init__(self, plan: FaultPlan, *, seed: int, enabled: bool) -> None:
        self._lock = threading.Lock()
        self._plan = plan
        self._random = random.Random(seed)
        self._enabled = enabled
        self._requests: Counter[StorageService] = Counter()
        self._exposed = 0
        self._faults: Counter[tuple[StorageService, FaultKind]] = Counter()

    @property
    def plan(self) -> FaultPlan:
        """The plan in force."""
        with self._lock:
            return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plan = plan

    @property
    def enabled(self) -> bool:
        """Whether faults are drawn at all (requests are counted either way)."""
        with self._lock:
            return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        with self._lock:
            self._enabled = value

    def draw(self, request: RequestInfo) -> tuple[FaultKind | None, float]:
        """(the fault for this request or None, the latency spike in seconds or 0)."""
        with self._lock:
            self._requests[request.service] += 1
            plan = self._plan
            if not self._enabled or not plan.matches(request):
                return None, 0.0
            self._exposed += 1
            roll = self._random.random()
            # Always draw the delay too, so the sequence depends on the seed alone.
            delay = self._random.uniform(*plan.latency_seconds)
            bound = 0.0
            for kind, fraction in plan.fractions.items():
                bound += fraction
                if roll < bound:
                    self._faults[(request.service, kind)] += 1
                    return kind, delay if kind is FaultKind.LATENCY else 0.0
            return None, 0.0

    def counts(self) -> FaultCounts:
        """What was seen and drawn so far."""
        with self._lock:
            by_kind: Counter[FaultKind] = Counter()
            for (_, kind), count in self._faults.items():
                by_kind[kind] += count
            return FaultCounts(
                requests=sum(self._requests.values()),
                requests_by_service=dict(self._requests),
                exposed=self._exposed,
                faults={kind: by_kind.get(kind, 0) for kind in FaultKind},
                faults_by_service=dict(self._faults),
            )

    def reset_counts(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._requests.clear()
            self._exposed = 0
            self._faults.clear()
