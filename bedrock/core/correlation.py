"""What ties a log line and a trace to its turn, without loading OpenTelemetry (bedrock/core/telemetry.py does,
once the agent is built: every AgentCore session is a cold start, and /ping answers before that)."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping

# The ids a log line of a turn carries (bedrock/server/logs.py): set where the turn runs, in its run's task.
LOG_FIELDS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("log_fields", default=None)

# The request headers that can carry a caller's trace context (W3C, X-Ray, W3C baggage).
TRACE_HEADERS = ("traceparent", "x-amzn-trace-id", "baggage")


def carries_trace(headers: Mapping[str, str] | None) -> bool:
    """Whether a request's headers may hold a trace context (cheap: no OpenTelemetry import)."""
    if not headers:
        return False
    return any(name in headers for name in TRACE_HEADERS)
