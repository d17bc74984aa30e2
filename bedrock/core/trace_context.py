"""incoming_trace: a caller's trace context (its `traceparent`, X-Ray or baggage headers) as the parent of the turn
it starts, on every wire (/invocations, /ws, A2A). OpenTelemetry is loaded only for a request that carries one (and
then with the agent already: bedrock/core/telemetry.py)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from bedrock.core.correlation import carries_trace


@contextmanager
def incoming_trace(headers: Mapping[str, str] | None) -> Iterator[None]:
    """The request's `traceparent` as the current OpenTelemetry context while its run starts, if it has one (every
    wire: /invocations, /ws, A2A)."""
    if not carries_trace(headers):
        yield
        return
    from bedrock.core import telemetry  # loaded with the agent already

    token = telemetry.attach_incoming(headers)
    try:
        yield
    finally:
        telemetry.detach(token)
