"""The client's own telemetry of its calls to F&O (spans, metrics, log ids).

Through the OpenTelemetry *API* only: with no SDK configured every call is a no-op. The names
are read by the alert and workbook queries in ``infra/app`` (``tests/telemetry`` checks them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

__all__ = ["D365Call", "d365_call", "log_ids", "log_retry", "record_retry"]

if TYPE_CHECKING:
    from ._operation import OperationContext

_LOGGER = logging.getLogger("shared.clients.d365._engine")
# The app's instrumentation scope, so the client's spans and metrics sit beside the app's.
_SCOPE = "d365-recurring-integrations"
_tracer = trace.get_tracer(_SCOPE)
_meter = metrics.get_meter(_SCOPE)

D365_CALLS = _meter.create_counter(
    "d365ri.d365.calls",
    unit="{call}",
    description="HTTP attempts to F&O, by operation and status code (0: no answer).",
)
D365_RETRIES = _meter.create_counter(
    "d365ri.d365.retries", unit="{retry}", description="F&O calls repeated, by operation."
)


def log_ids(**values: str | int | float | None) -> dict[str, Any]:
    """The ``extra=`` of a log record (or a span's attributes): each id that has a value.
    None is left out."""
    return {key: value for key, value in values.items() if value is not None}


class D365Call:
    """The span of one HTTP attempt to F&O; :meth:`answered` records F&O's answer."""

    def __init__(self, current: Span, operation: str) -> None:
        self._span = current
        self._operation = operation
        self.status_code = 0

    def answered(
        self, status_code: int, *, retry_after: float | None, request_id: str | None
    ) -> None:
        """Record the status code, and Retry-After and F&O's request id when present."""
        self.status_code = status_code
        current = self._span
        if current.is_recording():
            current.set_attribute("http.response.status_code", status_code)
            current.set_attributes(
                log_ids(**{"d365.retry_after": retry_after, "d365.request_id": request_id})
            )
            if status_code >= 400:
                current.set_status(Status(StatusCode.ERROR, f"HTTP {status_code}"))


@contextmanager
def d365_call(
    operation: str, method: str, url: str, *, attempt: int, **ids: str | None
) -> Iterator[D365Call]:
    """A dependency span for one attempt of an F&O call. ``url`` must hold no secret (the
    client passes it without its query string); no header is recorded.

    :param ids: ``activity_id``, ``message_id``, ``execution_id`` when known.
    """
    # Exceptions are recorded by type only: a connection error's text may quote the URL
    # with its query string (a SAS on a download location).
    with _tracer.start_as_current_span(
        f"F&O {operation}",
        kind=SpanKind.CLIENT,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        # Built only for a span that records: with telemetry off (no SDK, or not sampled) the
        # span is a no-op and the attributes, a `urlsplit` among them, would be thrown away.
        if current.is_recording():
            current.set_attributes(_call_attributes(operation, method, url, attempt, ids))
        call = D365Call(current, operation)
        try:
            yield call
        except Exception as exc:
            current.set_attribute("error.type", type(exc).__name__)
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            D365_CALLS.add(1, {"operation": operation, "status_code": call.status_code})


def _call_attributes(
    operation: str, method: str, url: str, attempt: int, ids: dict[str, str | None]
) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "http.request.method": method,
        "url.full": f"{parts.scheme}://{parts.netloc}{parts.path}",
        "server.address": parts.hostname or "",
        "d365.operation": operation,
        "d365.attempt": attempt,
        **log_ids(**{f"d365.{key}": value for key, value in ids.items()}),
    }


def record_retry(operation: str, *, cause: str, wait: float) -> None:
    """Count a retry of an F&O call and mark it on the caller's span."""
    D365_RETRIES.add(1, {"operation": operation})
    current = trace.get_current_span()
    if current.is_recording():
        current.add_event(
            "d365.retry", {"d365.operation": operation, "d365.cause": cause, "d365.wait": wait}
        )


def log_retry(
    context: OperationContext,
    attempt: int,
    max_attempts: int,
    *,
    cause: str,
    wait: float,
    request_id: str | None = None,
) -> None:
    """Log and count one retry of an F&O call (one line, with the call's ids)."""
    _LOGGER.warning(
        "retrying operation=%s attempt=%d/%d cause=%s wait=%.2fs activity=%s message=%s "
        "execution=%s request_id=%s",
        context.operation,
        attempt,
        max_attempts,
        cause,
        wait,
        context.activity_id,
        context.message_id,
        context.execution_id,
        request_id,
        extra=log_ids(
            activity_id=context.activity_id,
            message_id=context.message_id,
            execution_id=context.execution_id,
            d365_operation=context.operation,
            d365_attempt=attempt,
            d365_status=cause,
        ),
    )
    record_retry(context.operation, cause=cause, wait=wait)
