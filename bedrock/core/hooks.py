"""The caller's hooks on a turn: LangChain callbacks, and `on_stream_event` for every SSE event."""

from __future__ import annotations

import logging
from contextlib import aclosing
from typing import Any, AsyncIterator

from langchain_core.callbacks import AsyncCallbackHandler

from bedrock.wire.events import SSEEvent

logger = logging.getLogger(__name__)


class BaseStreamCallback(AsyncCallbackHandler):
    """Base for callbacks passed to `stream_agent(..., callbacks=[...])`.

    Override any LangChain async hook (`on_llm_start`, `on_llm_new_token`, `on_llm_end`, `on_tool_start`,
    `on_tool_end`, `on_tool_error`, …); chat models reach `on_llm_start` too. `on_stream_event` also sees
    every SSE event the runtime emits. A callback that raises is logged and does not break the run.
    """

    raise_error = False

    async def on_stream_event(self, event: Any) -> None:
        """Called with each SSEEvent before it is yielded to the client."""


def stream_observers(callbacks: list[Any]) -> list[Any]:
    """The callbacks that want every SSE event (`on_stream_event`)."""
    return [cb for cb in callbacks if callable(getattr(cb, "on_stream_event", None))]


async def observed(events: AsyncIterator[SSEEvent], observers: list[Any]) -> AsyncIterator[SSEEvent]:
    """Show each event to the callbacks' `on_stream_event` before yielding it; a failing observer is logged."""
    async with aclosing(events):  # closed with us, not whenever the collector finds it: it holds a session
        async for event in events:
            for observer in observers:
                try:
                    await observer.on_stream_event(event)
                except Exception:
                    logger.exception("on_stream_event of %s failed", type(observer).__name__)
            yield event
