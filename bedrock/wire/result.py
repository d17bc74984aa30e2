"""A turn's result: the fold of its events into `{output, session_id, actor_id, steps, metrics}`.

The same fold serves the runtime's non-streamed replies (`Agent.invoke`) and the client's `invoke`; each
says which exception a turn's `error` event, or a stream that ends without a final event, becomes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from typing import Any

from bedrock.wire.events import AGENT_END, AGENT_START, ERROR, EventStream, SSEEvent


def turn_result(start: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    """The result dict from the data of a turn's `agent_start` and `agent_end`."""
    return {
        "output": end["output"],
        "session_id": start.get("session_id"),
        "actor_id": start.get("actor_id"),
        "run_id": start.get("run_id"),
        "steps": end["steps"],
        "metrics": end["metrics"],
    }


async def fold(
    events: EventStream,
    failed: Callable[[SSEEvent], Exception],
    incomplete: Callable[[], Exception],
    start: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Read a turn's events to its end: its result, or raise `failed(error_event)` / `incomplete()`.

    `start`: what `agent_start` said, for events that begin after it (a resumed run).

    The events are closed when the fold returns or raises (`aclosing`), not when the collector finds them:
    until then a runtime's turn holds its session, and a client's stream its connection.
    """
    start = start or {}
    async with aclosing(events):
        async for event in events:
            if event.type == AGENT_START:
                start = event.data
            elif event.type == AGENT_END:
                return turn_result(start, event.data)
            elif event.type == ERROR:
                raise failed(event)
    raise incomplete()
