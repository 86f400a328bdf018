"""The app's own telemetry through OpenTelemetry: metrics, log ids, invocation spans.

The domain records through the OpenTelemetry *API* only: with no SDK configured every call
is a no-op, so tests and ``make run`` pay nearly nothing. :func:`configure` (called once per
process by ``function_app.py``) picks where telemetry goes:

- ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`` (Azure, the documented worker setting):
  the Functions Python worker has already called ``configure_azure_monitor()``; nothing to do.
- ``APPLICATIONINSIGHTS_CONNECTION_STRING`` set otherwise: ``configure_azure_monitor()`` here.
- ``TELEMETRY_EXPORTER=console`` or ``otlp`` (local): the OpenTelemetry SDK with that exporter
  (``otlp`` reads ``OTEL_EXPORTER_OTLP_ENDPOINT``).

Names here are read by the alert and workbook queries in ``infra/app/alerts.bicep`` and
``infra/app/workbook.bicep``
(``tests/telemetry`` checks that they agree). Nothing here imports ``azure.functions`` or the
rest of the app; the F&O client traces its own calls (``shared.clients.d365``).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from typing import Any, ParamSpec, TypeVar

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind

__all__ = [
    "EXPORTER_SETTING",
    "LOG_KEYS",
    "annotate",
    "configure",
    "enable_azure_sdk_tracing",
    "enabled",
    "invocation",
    "log_ids",
    "record_backlog",
    "record_enqueue",
    "record_export",
    "record_ids",
    "record_outcome",
    "record_retention",
    "record_tick",
    "span",
]

_LOGGER = logging.getLogger(__name__)
_P = ParamSpec("_P")
_R = TypeVar("_R")

SCOPE = "d365-recurring-integrations"
EXPORTER_SETTING = "TELEMETRY_EXPORTER"
_WORKER_SETTING = "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"
_CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
# The correlation ids every log record of a file carries as attributes (custom dimensions).
LOG_KEYS = ("blob", "record_id", "route", "activity_id", "message_id", "execution_id", "state")

_tracer = trace.get_tracer(SCOPE)
_meter = metrics.get_meter(SCOPE)

FILES = _meter.create_counter(
    "d365ri.files", unit="{file}", description="Files that reached a state, by state and route."
)
ENQUEUE_DURATION = _meter.create_histogram(
    "d365ri.enqueue.duration", unit="s", description="Time to send one file to F&O."
)
ENQUEUE_BYTES = _meter.create_histogram(
    "d365ri.enqueue.bytes", unit="By", description="Size of each file sent to F&O."
)
TICK_DURATION = _meter.create_histogram(
    "d365ri.poll.tick.duration", unit="s", description="Duration of one poll tick."
)
TICK_DUE = _meter.create_histogram(
    "d365ri.poll.tick.due", unit="{entry}", description="Schedule entries due in one tick."
)
PENDING_COUNT = _meter.create_gauge(
    "d365ri.pending.count", unit="{file}", description="Files waiting for a final state."
)
PENDING_OLDEST_AGE = _meter.create_gauge(
    "d365ri.pending.oldest_age", unit="s", description="Age of the longest-waiting file."
)
EXPORTS = _meter.create_counter(
    "d365ri.exports",
    unit="{export}",
    description=(
        "Exports acked, downloaded or failed (recurring messages are retried on re-delivery), "
        "by state, route and kind (recurring or package)."
    ),
)
RETENTION_ROWS = _meter.create_counter(
    "d365ri.retention.rows",
    unit="{row}",
    description="Rows deleted by retention runs, by kind (records, exports, audit).",
)
_lock = threading.Lock()
_state = {"configured": False}


# -- configuration ---------------------------------------------------------------------------


def configure(environ: Mapping[str, str]) -> str:
    """Set up the exporters for this process once; later calls change nothing.

    :returns: what was set up: ``"worker"``, ``"azure-monitor"``, ``"console"``, ``"otlp"``
        or ``"off"``.
    :raises ValueError: ``TELEMETRY_EXPORTER`` names no known exporter.
    """
    exporter = environ.get(EXPORTER_SETTING, "").strip().lower()
    if exporter not in ("", "console", "otlp", "none"):
        raise ValueError(
            f"{EXPORTER_SETTING}={exporter!r} is not an exporter; use console, otlp or none "
            "(Application Insights is used when APPLICATIONINSIGHTS_CONNECTION_STRING is set)"
        )
    with _lock:
        if _state["configured"]:
            return "configured before"
        _state["configured"] = True
        if environ.get(_WORKER_SETTING, "").lower() == "true":
            mode = "worker"
        elif environ.get(_CONNECTION_SETTING):
            _configure_azure_monitor()
            mode = "azure-monitor"
        elif exporter in ("console", "otlp"):
            _configure_sdk(exporter)
            mode = exporter
        else:
            return "off"
    _LOGGER.info("telemetry configured exporter=%s", mode)
    return mode


def enabled() -> bool:
    """True when telemetry goes somewhere, so work done only for it is worth doing: a metrics
    SDK is set up (by :func:`configure`, the Functions worker, or a test's in-memory one)."""
    # The API's own providers (no-op, or the proxy waiting for an SDK) record nothing.
    return not type(metrics.get_meter_provider()).__module__.startswith("opentelemetry.metrics")


def _configure_azure_monitor() -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor

    # Our own D365 dependency spans carry the operation and attempt; the generic HTTP
    # instrumentations would repeat every call (and storage's is the Azure SDK's own).
    off = {"enabled": False}
    configure_azure_monitor(
        instrumentation_options={"requests": off, "urllib": off, "urllib3": off},
    )


def _configure_sdk(exporter: str) -> None:
    from opentelemetry import _logs
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    span_exporter, metric_exporter, log_exporter = _exporters(exporter)
    resource = Resource.create({"service.name": SCOPE})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(metric_exporter)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    _logs.set_logger_provider(logger_provider)
    logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))
    enable_azure_sdk_tracing()


def _exporters(exporter: str) -> tuple[Any, Any, Any]:
    if exporter == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(), ConsoleMetricExporter(), ConsoleLogRecordExporter()
    try:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ValueError(
            f"{EXPORTER_SETTING}=otlp needs opentelemetry-exporter-otlp-proto-http "
            "(in requirements-dev.txt): run `make install`"
        ) from exc
    return OTLPSpanExporter(), OTLPMetricExporter(), OTLPLogExporter()


def enable_azure_sdk_tracing() -> None:
    """Let the Azure SDK clients (storage) report their calls as spans, as the Azure Monitor
    distro does."""
    from azure.core.settings import settings
    from azure.core.tracing.ext.opentelemetry_span import OpenTelemetrySpan

    settings.tracing_implementation = OpenTelemetrySpan


# -- log records -------------------------------------------------------------------------------


def record_ids(item: object, **more: Any) -> dict[str, Any]:
    """The correlation ids an item of the app carries (a tracked file, a schedule entry, an
    export record: each :data:`LOG_KEYS` it has) as log-record attributes; ``more`` adds or
    overrides."""
    ids = {key: getattr(item, key, None) for key in LOG_KEYS}
    if isinstance(ids["state"], Enum):
        ids["state"] = ids["state"].value
    return log_ids(**{**ids, **more})


def log_ids(**values: Any) -> dict[str, Any]:
    """The ``extra=`` of a log record: each id that has a value, as an attribute of the record
    (a custom dimension in Application Insights). None is left out."""
    return {key: _attribute(value) for key, value in values.items() if value is not None}


def _attribute(value: Any) -> str | int | float | bool:
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# -- spans -------------------------------------------------------------------------------------


def invocation(
    function_name: str, *, trigger: str
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a function so each invocation is a span (a request in Application Insights,
    or a child of the host's span when the host passed one in).

    :param trigger: ``datasource`` (blob), ``timer`` or ``http``.
    """

    def decorate(function: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(function)
        def traced(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            host_span = trace.get_current_span().get_span_context().is_valid
            with _tracer.start_as_current_span(
                function_name, kind=SpanKind.INTERNAL if host_span else SpanKind.SERVER
            ) as current:
                if current.is_recording():
                    current.set_attributes({"faas.name": function_name, "faas.trigger": trigger})
                return function(*args, **kwargs)

        return traced

    return decorate


def annotate(**values: Any) -> None:
    """Add ids (blob, message_id, state...) to the current span; a no-op when not traced."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(log_ids(**values))


@contextmanager
def span(name: str, **values: Any) -> Iterator[Span]:
    """A span of our own work (one poll of one message), with ids as attributes."""
    with _tracer.start_as_current_span(name) as current:
        # Built only for a span that records (telemetry on and sampled).
        if current.is_recording():
            current.set_attributes(log_ids(**values))
        yield current


# -- metrics -----------------------------------------------------------------------------------


def record_outcome(state: str, route: str | None) -> None:
    """Count a file reaching ``state`` (Enqueued or a final state)."""
    FILES.add(1, {"state": state, "route": route or ""})


def record_export(state: str, route: str, *, kind: str = "recurring") -> None:
    """Count an export reaching ``state`` (Acked, Downloaded or ExportFailed); ``kind``:
    ``recurring`` (a recurring export job's message) or ``package`` (a scheduled package
    export)."""
    EXPORTS.add(1, {"state": state, "route": route, "kind": kind})


def record_enqueue(*, route: str | None, seconds: float, size: int | None, ok: bool) -> None:
    """Record one send to F&O: its duration and the file's size."""
    attributes = {"route": route or "", "ok": ok}
    ENQUEUE_DURATION.record(seconds, attributes)
    if size is not None:
        ENQUEUE_BYTES.record(size, attributes)


def record_tick(*, due: int, seconds: float, skipped: bool) -> None:
    """Record one poll tick (a tick skipped for another's lease counts, with skipped=True)."""
    attributes = {"skipped": skipped}
    TICK_DURATION.record(seconds, attributes)
    TICK_DUE.record(due, attributes)


def record_backlog(count: int, oldest_since: datetime | None, now: datetime) -> None:
    """Set the pending gauges: how many files wait and how long the oldest has waited."""
    PENDING_COUNT.set(count)
    age = (now - oldest_since).total_seconds() if oldest_since else 0.0
    PENDING_OLDEST_AGE.set(max(0.0, age))


def record_retention(*, kind: str, rows: int) -> None:
    """Count the rows of one kind a retention run deleted."""
    RETENTION_ROWS.add(rows, {"kind": kind})
