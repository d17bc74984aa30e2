"""Bound a turn's event stream in time: REQUEST_TIMEOUT_S, and a grace period when the server shuts down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import Any

from bedrock.errors import AgentError
from bedrock.wire.events import ERROR, TERMINAL_EVENTS, SSEEvent, encode_frame, utc_timestamp

TIMEOUT = AgentError("timeout")
SHUTTING_DOWN = AgentError("server_shutting_down")


class _Deadline:
    """One timer per stream (not one per event: `asyncio.timeout` per event cost 5.6 µs, most of our
    per-event budget). When it fires while the stream waits for its next event, it cancels that wait;
    when it fires while the consumer holds an event, the next wait ends at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float | None) -> None:
        self.loop = loop
        self.error = TIMEOUT
        self.expired = False
        self.waiting: asyncio.Task[Any] | None = None
        self.cancelled_by_us = False
        self._handle = loop.call_later(timeout_s, self._fire) if timeout_s else None

    def _fire(self) -> None:
        self.expired = True
        if self.waiting is not None and not self.cancelled_by_us:
            self.cancelled_by_us = True
            self.waiting.cancel()

    def move(self, when: float, error: AgentError) -> None:
        """Expire at `when` instead, if that is sooner, with `error`."""
        if self._handle is not None and self._handle.when() <= when:
            return
        if self._handle is not None:
            self._handle.cancel()
        self.error = error
        self._handle = self.loop.call_at(when, self._fire)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


async def bounded(
    events: AsyncGenerator[SSEEvent, None],
    *,
    timeout_s: float | None,
    shutdown: Any = None,
    grace_s: float = 0.0,
    on_end: Callable[[SSEEvent | None], None] | None = None,
) -> AsyncGenerator[SSEEvent, None]:
    """Relay `events` until their terminal event, the deadline, or `grace_s` after `shutdown` is set.

    On expiry the stream is cancelled (which drops its half turn) and ends with one `error` event
    numbered after the last one sent. Only the wait for the *next* event is ever interrupted, so a slow
    client never has its own send cut. `shutdown` is any object with `async wait()`.
    `on_end` sees the terminal event as it is relayed (ours too), or None once `events` are closed without
    one (the turn's trace: it ends with the turn, whoever reads it and whenever they stop). Here, because
    this is the one place that already looks at every event's type: no extra layer per event.
    """
    loop = asyncio.get_running_loop()
    deadline = _Deadline(loop, timeout_s)

    async def watch_shutdown() -> None:
        await shutdown.wait()
        deadline.move(loop.time() + grace_s, SHUTTING_DOWN)

    watcher = asyncio.ensure_future(watch_shutdown()) if shutdown is not None else None
    iterator = events  # an async generator is its own iterator (`__aiter__` returns it)
    task = asyncio.current_task()
    last_id = 0
    try:
        while not deadline.expired:
            deadline.waiting = task
            try:
                event = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                # Ours alone: the turn ends with the deadline's error event. If someone else (the caller's
                # own timeout, a disconnect) also cancelled this task, theirs wins and propagates.
                if not deadline.cancelled_by_us or (task is not None and task.uncancel() > 0):
                    raise
                break
            finally:
                deadline.waiting = None
            last_id = event.id or last_id
            if event.type in TERMINAL_EVENTS:
                if on_end is not None:
                    on_end(event)
                yield event
                return
            yield event
        await iterator.aclose()  # expired while the consumer held an event: stop the run now
        frame = encode_frame(ERROR, deadline.error.event_data(utc_timestamp()), last_id + 1)
        if on_end is not None:
            on_end(frame)
        yield frame
    finally:
        deadline.close()
        if watcher is not None:
            watcher.cancel()
        try:
            await iterator.aclose()
        finally:
            if on_end is not None:
                on_end(None)  # after a cut turn's rollback (closing `events` waits for it); else a no-op
