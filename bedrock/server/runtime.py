"""Runtime: what one served app holds — its settings, invocation slots, agent and runs — and the in-process API.

One per app (`build_app` makes it and keeps it in `app.state.runtime`), so a test or an embedding builds its
own with its own settings; nothing here is a module global. Every request is one of five actions
(`bedrock/wire/request.py`): a run (or an approval's answer) starts a run, `resume` follows one; `cancel`, `status`,
`history` answer a dict. `dispatch` is the one way from a parsed request to its answer, for HTTP and in-process alike.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import Future
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from bedrock.config import ConfigError, DependencyUnavailable, Settings
from bedrock.core.build import build_agent
from bedrock.wire.request import (AgentRequest, CancelRequest, ControlRequest, ForgetRequest, HistoryRequest,
                                  MemoriesRequest, ResumeRequest, RunRequest, StatusRequest, client_fields,
                                  parse_request)
from bedrock.core.runs import Follower, Run, RunRegistry, new_run_id
from bedrock.core.turn import Agent, result_of
from bedrock.errors import AgentError, PayloadError, SessionBusy, SessionForbidden, classify
from bedrock.server.auth import bind_actor
from bedrock.server.capacity import InvocationSlots
from bedrock.server.executor import ElasticThreadPool
from bedrock.wire.events import ERROR, EventSequence, SSEEvent, utc_timestamp

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Origin:
    """What differs by where a request comes from, stated once."""

    on_disconnect: str  # what a run does when the client that started it leaves, unless its payload says
    shutdown: bool  # its turn ends within SHUTDOWN_GRACE_S when the server stops


ORIGINS = {
    # On AgentCore the container never learns that a client left: runs go on by default over HTTP.
    "http": Origin(on_disconnect="continue", shutdown=True),
    # A caller that stops iterating (or is cancelled) ends its run; it may run on a loop of its own (invoke_agent),
    # where the server's shutdown signal (an asyncio.Event of the server's loop) cannot be awaited.
    "in_process": Origin(on_disconnect="cancel", shutdown=False),
    # A socket that drops is a client leaving, as over HTTP (bedrock/server/websocket.py).
    "ws": Origin(on_disconnect="continue", shutdown=True),
    # An A2A task's run is followed by its executor (bedrock/a2a/executor.py), not by a connection: a dropped stream
    # leaves the task going (tasks/resubscribe finds it), and the executor's task ends only when the task is
    # cancelled (tasks/cancel) or the A2A server closes — which must cancel the run and roll it back.
    "a2a": Origin(on_disconnect="cancel", shutdown=True),
}


@dataclass
class Followed:
    """A request answered by a run's frames: its follower, and `agent_start`'s data when it begins after it."""

    follower: Follower
    start: dict[str, Any] | None = None


class Runtime:
    """Settings, invocation slots, and the agent: built once, on a worker thread, while `/ping` answers."""

    def __init__(self, settings: Settings, agent: Agent | None = None) -> None:
        self.settings = settings
        self.slots = InvocationSlots(settings.max_concurrent_invocations)
        self.runs = RunRegistry(buffer_bytes=settings.run_buffer_bytes, retention_s=settings.run_retention_s,
                                retain_bytes=settings.run_retain_bytes)
        self.agent = agent
        self.shutdown: asyncio.Event | None = None  # set when the server stops: runs end within the grace
        # The requests open WebSockets are answering (server/websocket.py adds and discards them): settled before
        # uvicorn closes the sockets, so each gets its run's last event.
        self.socket_tasks: set[asyncio.Task[None]] = set()
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
            agent = self.get_agent()
            agent.inputs.prepare()
            build.set_result(agent)
        except ConfigError as error:  # the user's graph or MCP_SERVERS: what is wrong, and its own traceback if any
            logger.error("could not load the agent's graph: %s", error, exc_info=error.__cause__)
            build.set_exception(error)
        except BaseException as error:
            logger.exception("could not build the agent")
            build.set_exception(error)

    async def ready_agent(self) -> Agent:
        """The agent, awaiting its build without blocking the event loop."""
        agent = self.agent
        return agent if agent is not None else await asyncio.wrap_future(self.start_build())

    async def serving_agent(self) -> Agent:
        """The agent, awaiting its build; a refusal if it cannot be built (`tools_unavailable`: an MCP server it
        requires is down; else `internal_error`), built again on the next call."""
        try:
            return await self.ready_agent()
        except DependencyUnavailable:
            raise AgentError("tools_unavailable") from None
        except Exception:
            raise AgentError("internal_error", "The agent could not be started; see the server logs.") from None

    # --- the server's life ---------------------------------------------------------------------------------

    def start(self) -> Future[Agent]:
        """On server start: begin the build, and give the loop a default executor sized for blocking calls."""
        # Model streams no longer take a thread (bedrock/core/bedrock_client.py), but a sync tool runs on the loop's
        # default executor, as do AgentCore Memory's calls (boto3), each holding a thread while it waits; the stock
        # size (cores + 4) would let 6 such turns in at once here. Threads start on demand and retire after 30 s
        # idle, so a burst does not leave its peak's threads (and memory) behind.
        threads = self.settings.model_threads or self.settings.max_concurrent_invocations + 16
        asyncio.get_running_loop().set_default_executor(
            ElasticThreadPool(threads, idle_s=30, thread_name_prefix="blocking"))
        return self.start_build()

    async def stop(self) -> None:
        """On server stop: runs end within the grace (`server_shutting_down`), a running build finishes, turns
        still rolling back write, telemetry is exported, then the agent closes."""
        grace = self.settings.shutdown_grace_s
        self.shutdown_event().set()
        await self.runs.drain(grace + 1)
        if self._build is not None:
            waited = asyncio.wrap_future(self._build)
            await asyncio.wait([waited], timeout=grace)
            if waited.done() and not waited.cancelled():
                waited.exception()  # a failed build was logged when it failed
        if self.agent is not None:
            await self.agent.drain(grace)
            # The turns' spans and metrics, before the process goes (it will not run `atexit`: see `flush`).
            await asyncio.to_thread(self.agent.telemetry.flush, min(grace, 5.0))
            self.agent.close()

    async def settle_sockets(self) -> None:
        """Before the server closes its WebSockets (uvicorn: 1012 at once): the runs they follow end within the
        grace (`server_shutting_down`), sent on the socket that asked, rather than cut with the socket; a client
        that reads nothing holds this at most the grace and 1 s."""
        if not self.socket_tasks:
            return
        self.shutdown_event().set()
        await asyncio.wait(list(self.socket_tasks), timeout=self.settings.shutdown_grace_s + 1)

    def shutdown_event(self) -> asyncio.Event:
        """The server's shutdown signal (sse-starlette sets it on SIGTERM, the lifespan on stop), made on the
        server's loop the first time it is needed."""
        if self.shutdown is None:
            self.shutdown = asyncio.Event()
        return self.shutdown

    def track_detached(self, add: Callable[[str, dict[str, Any]], int], complete: Callable[[int], Any]) -> None:
        """Report a run that goes on with nobody following it as an async task (`add` … `complete`): AgentCore
        then sees `/ping` HealthyBusy and does not reap the session mid-run."""
        tracked: dict[str, int] = {}

        def changed(run: Run) -> None:
            detached = not run.finished and run.followers == 0
            if detached and run.run_id not in tracked:
                tracked[run.run_id] = add(f"run {run.run_id}", {"session_id": run.session_id})
            elif not detached and run.run_id in tracked:
                complete(tracked.pop(run.run_id))

        self.runs.on_followers = self.runs.on_end = changed

    # --- requests ------------------------------------------------------------------------------------------

    def validate(self, payload: Any, header_session_id: str | None = None, verified: str | None = None,
                 header_last_event_id: str | None = None, *, prefers_events: bool = False) -> AgentRequest:
        """Parse a payload against the settings; raises PayloadError, or ActorForbidden when a verified caller's
        payload names another actor (by any of its names). A verified actor is the request's actor."""
        payload = client_fields(payload)  # (parse_request applies it too; bind_actor reads the resolved names)
        request = parse_request(
            payload,
            header_session_id=header_session_id,
            default_actor_id=verified or self.settings.default_actor_id,
            max_prompt_chars=self.settings.max_prompt_chars,
            header_last_event_id=header_last_event_id,
            prefers_events=prefers_events,
        )
        if verified is not None:
            bind_actor(payload, verified)
        return request

    @property
    def open_owner(self) -> str | None:
        """The owner whose sessions any caller may act in: with AUTH_MODE=none, DEFAULT_ACTOR_ID (a caller that
        names no actor is it anyway); with a verified actor, nobody's (bedrock/core/ownership.py)."""
        return self.settings.default_actor_id if self.settings.auth_mode == "none" else None

    async def dispatch(self, request: AgentRequest, origin: str, callbacks: Iterable[Any] = ()) -> Followed | dict:
        """The one way from a parsed request to what answers it, for every transport: the agent (awaiting its
        build), the session's owner (checked here alone: a run claims a session nobody owns, a read or an action
        on runs never does), then a run (a follower of it), a resume (a follower from an event id), or an action's
        dict. Raises AgentError.

        `origin` ("http", "ws", "in_process" or "a2a") picks the defaults that differ (ORIGINS)."""
        defaults = ORIGINS[origin]
        agent = await self.serving_agent()
        if isinstance(request, (MemoriesRequest, ForgetRequest)):  # the actor's own, of no session
            return await self._memories(request)
        try:
            # A run claims here, at once (its turn's own check then finds the owner cached): looking first and
            # claiming in the turn cost a second SQLite call per new session, +10% server CPU a turn with 100
            # new sessions at once (bench/capacity.py, four rounds each way).
            actor = await agent.owners.check(request.session, request.actor, claim=isinstance(request, RunRequest),
                                             open_owner=self.open_owner)
        except Exception as refused:  # someone else's (403), or a memory that cannot be read (503)
            raise classify(refused) from None
        if actor != request.actor:  # a session started without an actor: joined as its actor (ownership.py)
            request = request.model_copy(update={"actor_id": actor})
        if isinstance(request, RunRequest):
            run = await self.start_run(agent, request, on_disconnect=request.on_disconnect or defaults.on_disconnect,
                                       callbacks=callbacks, slots=self.slots,
                                       shutdown=self.shutdown_event() if defaults.shutdown else None)
            return Followed(run.follow(0, owner=True))
        if isinstance(request, ResumeRequest):
            run, follower = self.resume(request)
            return Followed(follower, {"session_id": run.session_id, "actor_id": run.actor_id, "run_id": run.run_id})
        return await self.control(request)

    # --- runs ------------------------------------------------------------------------------------------------

    async def start_run(
        self, agent: Agent, request: RunRequest, *, on_disconnect: str, callbacks: Iterable[Any] = (),
        slots: InvocationSlots | None = None, shutdown: Any = None,
    ) -> Run:
        """Start the request's turn as a run, after its session's run in progress, per `multitask_strategy`:
        `enqueue` waits for it (SESSION_WAIT_S), `reject` refuses at once (`session_busy`), `rollback` cancels it
        (its turn rolled back) first. With `slots`, the run holds one until it ends (else `server_busy`)."""
        agent.inputs.check(request)  # the graph's input, context: refused before any stream starts
        await self.check_pending(agent, request)  # before any stream starts (the turn checks again, locked)
        strategy = request.multitask_strategy
        if strategy != "enqueue":
            await self._make_way(request.session, strategy)
        # From the last look at the session's runs to the new one's registration: no await, so no other request
        # of this loop can slip a run in between (two `rollback`s at once: the later one cancels the earlier).
        if slots is not None and not slots.try_acquire():
            raise AgentError("server_busy")
        run_id = new_run_id()
        events = agent.stream(request, callbacks, shutdown, run_id=run_id,
                              session_wait_s=0 if strategy == "reject" else None)
        run = self.runs.start(run_id, request.session, request.actor, events, on_disconnect)
        if slots is not None:
            run.on_end.append(lambda _: slots.release())
        return run

    async def _make_way(self, session_id: str, strategy: str) -> None:
        """`reject`: refuse if the session has a run in progress. `rollback`: cancel every such run and wait until
        each is rolled back — then look again, since other requests may have started runs while we waited
        (bounded by SESSION_WAIT_S; past it, the new turn waits for the session's lock as `enqueue` would)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.session_wait_s
        while active := self.runs.active_runs(session_id):
            if strategy == "reject":
                raise SessionBusy("The session has a run in progress (multitask_strategy: reject).")
            for run in active:
                run.cancel()
            left = deadline - loop.time()
            if left <= 0 or not await _all_settled(active, left):
                return

    async def check_pending(self, agent: Agent, request: RunRequest) -> None:
        """Refuse an answer to an interrupt the session is not waiting for (`nothing_to_resume`,
        `interrupt_mismatch`), or a user graph's prompt while one waits (`interrupt_pending`) — unless a run of the
        session is in progress, which may yet ask (or answer)."""
        if self.runs.active(request.session) is not None:
            return
        if request.resume is not None:
            await agent.answers_for(request.session, request.actor, request.resume.answers())
        elif not agent.built_in and await agent.pending_interrupts(request.session, request.actor):
            raise AgentError("interrupt_pending")  # the turn checks again, locked; this is its 409 before a stream

    def resume(self, request: ResumeRequest) -> tuple[Run, Follower]:
        """A follower of the session's run (`run_id`, else its newest) from `last_event_id`."""
        run = self._find(request)
        after = request.last_event_id or 0
        if after < run.first_id - 1:
            raise AgentError("resume_unavailable", f"The events of run {run.run_id} before id {run.first_id} are no "
                             "longer kept (RUN_BUFFER_BYTES); resume from a later event id, or start a new run.")
        if after > run.last_id and not run.finished:
            raise PayloadError(f"invalid payload: last_event_id: run {run.run_id} has sent {run.last_id} events so far",
                               [{"field": "last_event_id", "message": f"past the run's last event ({run.last_id})"}])
        if run.finished and after >= run.last_id:
            after = run.last_id - 1  # at or past its end: the answer is the run's terminal event, again
        return run, run.follow(after)

    async def control(self, request: ControlRequest) -> dict[str, Any]:
        """`cancel` (the session's run in progress; waits until it is rolled back), `status`, `history`, or the
        actor's memories (`memories`, `forget`)."""
        if isinstance(request, (MemoriesRequest, ForgetRequest)):
            return await self._memories(request)
        if isinstance(request, HistoryRequest):
            try:
                history = await self.get_agent().history(request.session, request.actor)
            except Exception as exc:  # a memory that cannot be read: its catalog error, not a bare 500
                logger.error("could not read the history of session %s", request.session_id, exc_info=exc)
                raise classify(exc) from None
            # The run in progress, whose turn is not in the history until it ends: a page re-attaches to it.
            active = self.runs.active(history["session_id"])
            mine = active if active is not None and active.actor_id == request.actor_id else None
            return {**history, "run": mine.status() if mine is not None else None}
        if isinstance(request, CancelRequest):
            return await self._cancel(request.session, request.actor, request.run_id)
        return self._find(request).status()

    async def _memories(self, request: MemoriesRequest | ForgetRequest) -> dict[str, Any]:
        """A page of the actor's long-term memories, or how many were forgotten."""
        memories = self.get_agent().memories
        if memories is None:
            raise AgentError("long_term_memory_off")
        try:
            if isinstance(request, MemoriesRequest):
                return await memories.page(request.actor, request.limit, request.offset)
            forgotten = await memories.forget(request.actor, request.key, request.namespace)
        except AgentError:
            raise
        except Exception as exc:  # a store that cannot be read: its catalog error, not a bare 500
            logger.error("could not %s the memories of actor %s", request.action, request.actor_id, exc_info=exc)
            raise classify(exc) from None
        return {"actor_id": request.actor, "forgotten": forgotten}

    def _find(self, request: ResumeRequest | StatusRequest) -> Run:
        """The session's run `run_id` (else its newest); another actor's — possible only before a session's first
        turn has claimed it — is refused as the session would be."""
        run = self.runs.find(request.session, request.run_id)
        if run is None:
            raise AgentError("run_not_found")
        if run.actor_id != request.actor_id:
            raise SessionForbidden()
        return run

    async def _cancel(self, session_id: str, actor_id: str, run_id: str | None) -> dict[str, Any]:
        """Cancel the session's runs in progress (`run_id`: only that one) and wait until they are rolled back.
        Two cancels at once both answer `cancelled` (Run.cancel is idempotent); the newest run is named."""
        runs = [run for run in self.runs.active_runs(session_id) if not run_id or run.run_id == run_id]
        if any(run.actor_id != actor_id for run in runs):
            raise SessionForbidden()
        cancelled = [run for run in runs if run.cancel()]
        if not cancelled:
            raise AgentError("no_active_run")
        await _all_settled(cancelled, self.settings.session_wait_s)
        return {"session_id": session_id, "run_id": cancelled[-1].run_id, "status": "cancelled"}

    # --- in process ----------------------------------------------------------------------------------------

    async def stream(self, payload: dict[str, Any], callbacks: Iterable[Any] | None = None) -> AsyncIterator[SSEEvent]:
        """A run's events in-process (`run`, or `resume`); a refused request yields one `error` event.

        A run started here is cancelled (and rolled back) when its caller stops iterating or is cancelled,
        unless the payload says `"on_disconnect": "continue"`.
        """
        try:
            request = self.validate(payload)
            if not isinstance(request, (RunRequest, ResumeRequest)):
                raise PayloadError(f"action {request.action!r} answers a dict: use ainvoke_agent")
            followed = await self.dispatch(request, "in_process", callbacks or ())
        except AgentError as error:
            yield EventSequence().emit(ERROR, error.event_data(utc_timestamp()))
            return
        assert isinstance(followed, Followed)
        # Closed with this generator (a caller that stops early, or is cancelled), not whenever the collector
        # gets to it: until then the follower counts, and an owner's close is what cancels its run.
        async with aclosing(followed.follower) as follower:
            async for event in follower:
                yield event

    async def ainvoke(self, payload: dict[str, Any], callbacks: Iterable[Any] | None = None) -> dict[str, Any]:
        """A run's result dict in-process (`run`, `resume`), or what `cancel` / `status` / `history` answer; raises
        PayloadError or AgentError."""
        outcome = await self.dispatch(self.validate(payload), "in_process", callbacks or ())
        if not isinstance(outcome, Followed):
            return outcome
        run = outcome.follower.run
        return await result_of(outcome.follower, {"session_id": run.session_id, "actor_id": run.actor_id,
                                                  "run_id": run.run_id})

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
            # The run's task ends just after its result, and a kept turn's checkpoint pruning after that, on this
            # loop: asyncio.run would cancel them.
            await self.runs.drain()
            await self.get_agent().drain()


async def _all_settled(runs: list[Run], timeout_s: float | None) -> bool:
    """Wait until every run's producer has ended (turns kept or rolled back); False on timeout."""
    results = await asyncio.gather(*(run.settled(timeout_s) for run in runs))
    return all(results)
