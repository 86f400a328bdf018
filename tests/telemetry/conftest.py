"""The OpenTelemetry SDK with in-memory exporters, for the telemetry tests only.

OpenTelemetry's global providers can be set once per process, so they are set once per
session, the first time a telemetry test asks; when the session's telemetry tests are done
the exporters stop keeping anything and the Azure SDK stops tracing, so other tests pay
almost nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from azure.core.settings import settings as azure_settings
from opentelemetry import _logs, metrics, trace
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import telemetry
from tests.e2e.conftest import app, app_factory  # noqa: F401 - fixtures used by these tests


@dataclass
class Exported:
    """What the in-memory exporters hold since the current test began."""

    span_exporter: InMemorySpanExporter
    log_exporter: InMemoryLogRecordExporter
    reader: InMemoryMetricReader

    def spans(self) -> list[ReadableSpan]:
        """Every finished span."""
        return list(self.span_exporter.get_finished_spans())

    def logs(self) -> list[Any]:
        """Every log record (SDK ``LogRecord``s)."""
        return [data.log_record for data in self.log_exporter.get_finished_logs()]

    def collect_metrics(self) -> dict[str, list[Any]]:
        """The data points of each metric since the last collection, by name (deltas for
        counters and histograms, the last value for gauges)."""
        data = self.reader.get_metrics_data()
        points: dict[str, list[Any]] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
        return points

    def reset(self) -> None:
        """Forget everything exported so far."""
        self.span_exporter.clear()
        self.log_exporter.clear()
        self.reader.get_metrics_data()


@pytest.fixture(scope="session")
def _providers() -> Iterator[Exported]:
    span_exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    trace.set_tracer_provider(tracer_provider)
    # Deltas, so each test reads only what it caused.
    reader = InMemoryMetricReader(
        preferred_temporality={
            Counter: AggregationTemporality.DELTA,
            Histogram: AggregationTemporality.DELTA,
        }
    )
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    log_exporter = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    _logs.set_logger_provider(logger_provider)
    handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
    shared_logger = logging.getLogger("shared")
    level = shared_logger.level
    shared_logger.setLevel(logging.INFO)
    shared_logger.addHandler(handler)
    telemetry.enable_azure_sdk_tracing()
    try:
        yield Exported(span_exporter, log_exporter, reader)
    finally:
        azure_settings.tracing_implementation = None
        shared_logger.removeHandler(handler)
        shared_logger.setLevel(level)
        tracer_provider.shutdown()
        logger_provider.shutdown()


@pytest.fixture
def exported(_providers: Exported) -> Exported:
    """The in-memory exporters, emptied for this test."""
    _providers.reset()
    return _providers
