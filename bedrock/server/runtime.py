"""Runtime: what one served app holds — its settings, its invocation slots and its agent — and the in-process API.

One per app (`build_app` makes it and keeps it in `app.state.runtime`), so a test or an embedding builds its
own with its own settings; nothing here is a module global.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from contextlib import aclosing
from typing import Any, AsyncIterator, Iterable

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.core.request import AgentRequest, parse_request
from bedrock.core.turn import Agent
from bedrock.errors import PayloadError
from bedrock.server.auth import bind_actor
from bedrock.server.capacity import InvocationSlots
from bedrock.server.executor import ElasticThreadPool
from bedrock.wire.events import ERROR, EventSequence, SSEEvent, utc_timestamp

logger = logging.getLogger(__name__)


class Runtime:
    """Settings, invocation slots, and the agent: built once, on a worker thread, while `/ping` answers."""

    def __init__(self, settings: Settings, agent: Agent | None = None) -> None:
        self.settings = settings
        self.slots = InvocationSlots(settings.max_concurrent_invocations)
        self.agent = agent
        self._build: Future[Agent] | None = None
        self._build_lock = threading.Lock()
        self._start_lock = threading.Lock()

    # --- the agent ---------------------------------------------------------------------------------------

    def get_agent(self) -> Agent:
        """The agent, built on first use (blocking; from a worker thread, or a script without a loop)."""
        agent = self.agent
        if agent is None:
            with self._build_lock:
                if self.agent is None:
                    self.agent = build_agent(self.settings)
                agent = self.agent
        return agent

    def start_build(self) -> Future[Agent]:
        """Build the agent (`get_agent()`) on a worker thread, once, or again after a failure."""
        with self._start_lock:
            build = self._build
            if build is None or (build.done() and build.exception() is not None):
                build = self._build = Future()
                build.set_running_or_notify_cancel()  # a cancelled waiter must not cancel the build
                threading.Thread(target=self._run_build, args=(build,), name="agent-build", daemon=True).start()
            return build

    def _run_build(self, build: Future[Agent]) -> None:
        try:
            build.set_result(self.get_agent())
        except BaseException as error:
            logger.exception("could not build the agent")
            build.set_exception(error)

    async def ready_agent(self) -> Agent:
        """The agent, awaiting its build without blocking the event loop."""
        agent = self.agent
        return agent if agent is not None else await asyncio.wrap_future(self.start_build())

    # --- the server's life ---------------------------------------------------------------------------------

    def start(self) -> Future[Agent]:
        """On server start: begin the build, and give the loop a default executor sized for model streams."""
        # ChatBedrockConverse streams by running each blocking read on the loop's default executor, holding a
        # thread per streaming turn; the stock size (cores + 4) would cap concurrent model streams at 6 here.
        # Threads retire after 30 s idle, so a burst does not leave its peak's threads (and memory) behind.
        threads = self.settings.model_threads or self.settings.max_concurrent_invocations + 16
        asyncio.get_running_loop().set_default_executor(
            ElasticThreadPool(threads, idle_s=30, thread_name_prefix="model"))
        return self.start_build()

    async def stop(self) -> None:
        """On server stop: let a running build finish, turns still rolling back write, then close the agent."""
        grace = self.settings.shutdown_grace_s
        if self._build is not None:
            await asyncio.wait([asyncio.wrap_future(self._build)], timeout=grace)
        if self.agent is not None:
            await self.agent.drain(grace)
            self.agent.close()

    # --- requests ------------------------------------------------------------------------------------------

    def validate(self, payload: Any, header_session_id: str | None = None, verified: str | None = None) -> AgentRequest:
        """Parse a payload against the settings; raises PayloadError, or ActorForbidden when a verified caller's
        payload names another actor. A verified actor is the request's actor."""
        request = parse_request(
            payload,
            header_session_id=header_session_id,
            default_actor_id=verified or self.settings.default_actor_id,
            max_prompt_chars=self.settings.max_prompt_chars,
        )
        if verified is not None:
            bind_actor(payload, verified)
        return request

    # --- in process ----------------------------------------------------------------------------------------

    async def stream(self, payload: dict[str, Any], callbacks: Iterable[Any] | None = None) -> AsyncIterator[SSEEvent]:
        """Run one turn in-process, yielding its SSE events; a bad payload yields one `error` event."""
        try:
            request = self.validate(payload)
        except PayloadError as error:
            yield EventSequence().emit(ERROR, error.event_data(utc_timestamp()))
            return
        # Closed with this generator (a caller that stops early, or is cancelled), not whenever the collector
        # gets to it: until it is closed its turn holds the session.
        async with aclosing(self.get_agent().stream(request, callbacks or ())) as events:
            async for event in events:
                yield event

    async def ainvoke(self, payload: dict[str, Any], callbacks: Iterable[Any] | None = None) -> dict[str, Any]:
        """Run one turn in-process and return its result dict; raises PayloadError or AgentError."""
        return await self.get_agent().invoke(self.validate(payload), callbacks or ())

    def invoke(self, payload: dict[str, Any], callbacks: Iterable[Any] | None = None) -> dict[str, Any]:
        """Synchronous `ainvoke`, for scripts (inside a running event loop, await `ainvoke`)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._invoke_and_settle(payload, callbacks))
        raise RuntimeError("invoke_agent() cannot run inside an event loop; use `await ainvoke_agent(payload)`")

    async def _invoke_and_settle(self, payload: dict[str, Any], callbacks: Iterable[Any] | None) -> dict[str, Any]:
        try:
            return await self.ainvoke(payload, callbacks)
        finally:
            # A kept turn's checkpoint pruning runs after its result, on this loop; asyncio.run would cancel it.
            await self.get_agent().drain()
