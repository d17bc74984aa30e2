"""OpenTelemetry SDK providers whose spans and metrics a test (or a benchmark) reads back, or drops."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bedrock.config import Settings
from bedrock.core.telemetry import Telemetry


class DroppingExporter(SpanExporter):
    """Exports nowhere: the SDK's full cost of making and ending spans, none of the exporter's."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class Collected:
    """An SDK tracer provider and meter provider (in-memory exporter and reader, or `exporter`)."""

    def __init__(self, exporter: SpanExporter | None = None) -> None:
        self.exporter = exporter or InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def telemetry(self, settings: Settings) -> Telemetry:
        return Telemetry(settings, self.tracer_provider, self.meter_provider)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())  # type: ignore[attr-defined]  # the in-memory exporter's

    def turn_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name.startswith("invoke_agent")]

    def turn_span(self) -> ReadableSpan:
        (turn,) = self.turn_spans()
        return turn

    def children(self, turn: ReadableSpan | None = None) -> list[ReadableSpan]:
        """The spans whose parent is `turn` (default: the one turn span), in the order they started."""
        turn = turn or self.turn_span()
        kids = [s for s in self.spans() if s.parent is not None and s.parent.span_id == turn.context.span_id]
        return sorted(kids, key=lambda s: s.start_time or 0)

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [point for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                if m.name == name for point in m.data.data_points]

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
