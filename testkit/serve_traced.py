"""`python -m testkit.serve_traced SPANS_PATH`: `testkit.serve` with the OpenTelemetry SDK configured globally, as
`opentelemetry-instrument` configures it: a batch span processor (here holding spans up to 60 s) whose exporter
writes each span as one JSON line to SPANS_PATH."""

import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter


def configure(path: str) -> None:
    out = open(path, "w", encoding="utf-8")  # open for the process's life
    exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    trace.set_tracer_provider(provider)


if __name__ == "__main__":
    configure(sys.argv[1])
    from testkit.serve import main

    main()
