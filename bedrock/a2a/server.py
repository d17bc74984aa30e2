"""A2AServer: a2a-sdk's pieces, put together for one Runtime — what app.py builds on the first A2A request.

    RequestHandler          a2a-sdk's: tasks, their event streams (message/stream; tasks/resubscribe joins a task's
                            stream again: a snapshot, then what follows, each update once), cancel, get, list — the
                            RuntimeExecutor
                            running each message; a task left waiting for input is released from memory after
                            RUN_RETENTION_S (kept in the store: the next message takes it up again)
    RetainedTaskStore       tasks per actor, the finished ones kept RUN_RETENTION_S (tasks.py)
    JSON-RPC endpoint       a2a-sdk's dispatcher, v1.0 and v0.3's method names (`enable_v0_3_compat`), its call
                            context ours (context.py)
    card endpoint           a2a-sdk's (an ETag, 304s), the card's URL set per request (card.py)
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncGenerator
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.events import Event
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.types import AgentCard, SubscribeToTaskRequest, Task
from starlette.requests import Request
from starlette.responses import Response

from bedrock.a2a.card import agent_card, with_url
from bedrock.a2a.context import ActorContextBuilder
from bedrock.a2a.executor import RuntimeExecutor
from bedrock.a2a.tasks import RetainedTaskStore
from bedrock.a2a.updates import already_in
from bedrock.core.turn import Agent
from bedrock.server.runtime import Runtime

_CARD_URL: contextvars.ContextVar[str] = contextvars.ContextVar("a2a_card_url", default="")


class A2AServer:
    """The request handler, the JSON-RPC endpoint at `rpc_path` and the card's at `card_path`."""

    def __init__(self, runtime: Runtime, agent: Agent, rpc_path: str, card_path: str) -> None:
        settings = runtime.settings
        _logs_like_ours()
        # Its URL: A2A_URL's, else each request's (the card endpoint's `_with_request_url`).
        self.card = agent_card(agent, settings, settings.a2a_url or "http://localhost" + rpc_path)
        self.executor = RuntimeExecutor(runtime)
        self.handler = RequestHandler(
            agent_executor=self.executor,
            task_store=RetainedTaskStore(settings.run_retention_s, settings.run_retain_bytes),
            agent_card=self.card,
            interrupted_task_timeout=max(settings.run_retention_s, 1.0),
        )
        # A stream open at a SIGTERM is given SHUTDOWN_GRACE_S (+1) to carry its task's last update, as ours are
        # (bedrock/server/responses.py), within uvicorn's graceful shutdown (bedrock/server/connections.py).
        (rpc,) = create_jsonrpc_routes(self.handler, rpc_path, context_builder=ActorContextBuilder(),
                                       enable_v0_3_compat=True, shutdown_grace_period=settings.shutdown_grace_s + 1)
        (card,) = create_agent_card_routes(self.card, card_modifier=_with_request_url, card_url=card_path)
        self._rpc: Any = rpc.endpoint
        self._card: Any = card.endpoint

    async def rpc(self, request: Request) -> Response:
        """A JSON-RPC request (its body already read, bounded: app.py)."""
        response: Response = await self._rpc(request)
        return response

    async def agent_card(self, request: Request, url: str) -> Response:
        """The card, its interfaces at `url`."""
        token = _CARD_URL.set(url)
        try:
            response: Response = await self._card(request)
            return response
        finally:
            _CARD_URL.reset(token)

    async def aclose(self) -> None:
        """Tasks still held in memory (those waiting for input) released; their runs have ended."""
        await self.handler.aclose()


class RequestHandler(DefaultRequestHandler):
    """a2a-sdk's request handler, whose tasks/resubscribe sends each update once: the task as it is when the
    subscriber joins, then only what it does not hold. (a2a-sdk joins the subscriber to the task's updates before it
    reads the task, and sends the task it read later, still changing: an update could be in both.)"""

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext,
    ) -> AsyncGenerator[Event, None]:
        snapshot: Task | None = None
        async for event in super().on_subscribe_to_task(params, context):
            if snapshot is None and isinstance(event, Task):
                # A copy, made as it is read: a2a-sdk's is the live task, which its updates go on changing until
                # the response writes it — by then holding updates that also come after it.
                snapshot = Task()
                snapshot.CopyFrom(event)
                yield snapshot
            elif snapshot is None or not already_in(snapshot, event):
                yield event


def _logs_like_ours() -> None:
    """a2a-sdk's log lines (a JSON-RPC error it answered, a stream that failed) through the process's handler, in
    LOG_FORMAT with the turn's ids, rather than Python's last resort (plain text on stderr)."""
    ours = [h for h in logging.getLogger("bedrock").handlers if getattr(h, "bedrock_process", False)]
    sdk = logging.getLogger("a2a")
    if ours and not any(handler in sdk.handlers for handler in ours):
        for handler in ours:
            sdk.addHandler(handler)
        sdk.propagate = False


async def _with_request_url(card: AgentCard) -> AgentCard:
    return with_url(card, _CARD_URL.get())
