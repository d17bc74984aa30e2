"""The caller's hooks on a turn: LangChain callbacks, and `on_stream_event` for every SSE event."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.callbacks.base import LLMManagerMixin

from bedrock.wire.events import EventStream, SSEEvent

logger = logging.getLogger(__name__)


class BaseStreamCallback(AsyncCallbackHandler):
    """Base for callbacks passed to `stream_agent(..., callbacks=[...])`.

    Override any LangChain async hook (`on_llm_start`, `on_llm_new_token`, `on_llm_end`, `on_tool_start`,
    `on_tool_end`, `on_tool_error`, …); chat models reach `on_llm_start` too. `on_stream_event` also sees
    every SSE event the runtime emits. A callback that raises is logged and does not break the run.
    """

    raise_error = False

    async def on_stream_event(self, event: Any) -> None:  # type: ignore[override]  # the guide's, not LangChain's
        """Called with each SSEEvent before it is yielded to the client."""


# LangChain gave its handlers an `on_stream_event` of their own (its v2 streaming protocol's events, with a
# run_id; langchain-core 1.x): every LangChain callback has one. Those are not observers of our SSE events.
_LANGCHAIN_HOOKS = (LLMManagerMixin.on_stream_event, AsyncCallbackHandler.on_stream_event)


def stream_observers(callbacks: list[Any]) -> list[Any]:
    """The callbacks that want every SSE event (an `on_stream_event` that is not LangChain's own)."""
    return [cb for cb in callbacks if callable(hook := getattr(cb, "on_stream_event", None))
            and getattr(hook, "__func__", None) not in _LANGCHAIN_HOOKS]


async def observed(events: EventStream, observers: list[Any]) -> AsyncGenerator[SSEEvent, None]:
    """Show each event to the callbacks' `on_stream_event` before yielding it; a failing observer is logged."""
    async with aclosing(events):  # closed with us, not whenever the collector finds it: it holds a session
        async for event in events:
            for observer in observers:
                try:
                    await observer.on_stream_event(event)
                except Exception:
                    logger.exception("on_stream_event of %s failed", type(observer).__name__)
            yield event
