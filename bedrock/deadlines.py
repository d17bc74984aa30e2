"""Bound a turn's event stream in time: REQUEST_TIMEOUT_S, and a grace period when the server shuts down."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from bedrock.errors import AgentError
from bedrock.events import ERROR, TERMINAL_EVENTS, SSEEvent, encode_frame, utc_timestamp

TIMEOUT = AgentError("timeout", "The request took longer than the server allows.", "TimeoutError", True, 504)
SHUTTING_DOWN = AgentError(
    "server_shutting_down", "The server is shutting down; retry the request.", "ServerShutdown", True, 503
)


async def bounded(
    events: AsyncIterator[SSEEvent],
    *,
    timeout_s: float | None,
    shutdown: Any = None,
    grace_s: float = 0.0,
) -> AsyncIterator[SSEEvent]:
    """Relay `events` until their terminal event, the deadline, or `grace_s` after `shutdown` is set.

    On expiry the stream is cancelled (which drops its half turn) and ends with one `error` event
    numbered after the last one sent. The timer is armed only while waiting for the *next* event, so a
    slow client never has its own send interrupted. `shutdown` is any object with `async wait()`.
    """
    loop = asyncio.get_running_loop()
    state: dict[str, Any] = {
        "limit": loop.time() + timeout_s if timeout_s else None,
        "error": TIMEOUT,
        "timer": None,
    }

    async def watch_shutdown() -> None:
        await shutdown.wait()
        cutoff = loop.time() + grace_s
        if state["limit"] is None or cutoff < state["limit"]:
            state["limit"], state["error"] = cutoff, SHUTTING_DOWN
            if state["timer"] is not None:
                state["timer"].reschedule(cutoff)

    watcher = asyncio.ensure_future(watch_shutdown()) if shutdown is not None else None
    iterator = events.__aiter__()
    last_id = 0
    try:
        while True:
            try:
                async with asyncio.timeout_at(state["limit"]) as timer:
                    state["timer"] = timer
                    event = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                error: AgentError = state["error"]
                yield encode_frame(ERROR, error.event_data(utc_timestamp()), last_id + 1)
                return
            finally:
                state["timer"] = None
            last_id = event.id or last_id
            yield event
            if event.type in TERMINAL_EVENTS:
                return
    finally:
        if watcher is not None:
            watcher.cancel()
        await iterator.aclose()
