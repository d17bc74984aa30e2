"""One agent turn as a stream of events: start, steps (and tokens), then exactly one end or error."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, HumanMessage, convert_to_messages
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from langgraph.graph.state import CompiledStateGraph

from bedrock.config import Settings
from bedrock.core.deadlines import bounded
from bedrock.core.graph import dangling_calls, declined
from bedrock.core.hooks import observed, stream_observers
from bedrock.core.inputs import GraphInputs
from bedrock.core.memory import ActorMemory, Memories
from bedrock.core.metrics import MetricsCallback
from bedrock.core.ownership import SessionOwners
from bedrock.core.rollback import turn_metadata
from bedrock.core.runs import new_run_id
from bedrock.core.session_state import Pending, SessionReads, pending_in
from bedrock.core.settlement import Settlement
from bedrock.core.sessions import SessionLocks
from bedrock.core.tokens import TappedStream, TokenTap
from bedrock.core.translate import Translator, message_key
from bedrock.core.values import bounded_json
from bedrock.errors import AgentError, SessionBusy, SessionForbidden, classify
from bedrock.store import Store
from bedrock.store.in_process import InProcessOwners
from bedrock.wire.batching import TokenBuffer
from bedrock.wire.events import (AGENT_END, AGENT_START, AGENT_STEP, ERROR, INTERRUPT, EventSequence, EventStream,
                                 SSEEvent, utc_timestamp)
from bedrock.wire.request import Decision, RunRequest
from bedrock.wire.result import fold

if TYPE_CHECKING:
    from bedrock.core.telemetry import Telemetry, TurnTrace

logger = logging.getLogger(__name__)

RECURSION_LIMIT = 25
# What a turn streams of the graph run: each node's update, what nodes write with get_stream_writer(), and the
# tasks' starts and ends (which node a write came from); subgraphs' too. Tokens come from the tap (tokens.py).
STREAM_MODES: list[Any] = ["updates", "custom", "tasks"]


class Agent(SessionReads):
    """The compiled graph and what a turn needs; streams or folds one turn at a time (reads of a session's kept
    state — history, pending approvals — in `SessionReads`)."""

    def __init__(self, graph: CompiledStateGraph, settings: Settings, store: Store | None = None,
                 telemetry: Telemetry | None = None, built_in: bool = True) -> None:
        self.graph = graph
        self.settings = settings
        # The built-in agent (bedrock/agents/calculator.py): its node names are known, and it alone reads
        # `preferences`, HISTORY_MAX_MESSAGES and APPROVAL_REQUIRED_TOOLS. Any other graph is the user's.
        self.built_in = built_in
        self.max_event_bytes = settings.max_event_bytes
        self.labels: OrderedDict[str, dict[str, str]] = OrderedDict()
        self.inputs = GraphInputs(graph, built_in)
        if telemetry is None:  # the global OpenTelemetry providers; loaded here, off a cold start's /ping path
            from bedrock.core.telemetry import Telemetry

            telemetry = Telemetry(settings)
        self.telemetry = telemetry
        # `store`: where the graph's checkpointer came from, with the sessions' owners and (SQLite, PostgreSQL) their
        # lock across processes; closed with the agent. None (a graph built by hand): owners kept in this process.
        self.store = store
        self.owners = SessionOwners(store.owners if store is not None else InProcessOwners())
        self.closers: list[Callable[[], Any]] = [store.close] if store is not None else []  # `close`: last first
        self.on_drain: list[Callable[[], Awaitable[Any]]] = []  # awaited by `drain`, on its loop (MCP's sessions)
        self._background: set[asyncio.Future[Any]] = set()  # a kept turn's conversation on its way to the memory
        self.approval_required = frozenset(settings.approval_required_tools) if built_in else frozenset()
        self.locks = SessionLocks(settings.session_wait_s, store.shared_locks if store is not None else None)
        # The actors' memories across sessions (None: LONG_TERM_MEMORY=off, or a graph built by hand): each turn
        # sees its actor's through an ActorMemory, kept with the turn.
        self.long_term = store.long_term if store is not None else None
        self.memories = Memories(self.long_term) if self.long_term is not None else None
        self.settlement = Settlement(graph, settings, self.locks, self.long_term)

    def run_config(self, request: RunRequest, callbacks: Sequence[Any], turn_id: str = "") -> RunnableConfig:
        """LangGraph config: the session is the thread; preferences and custom_data ride along.

        `metadata` marks every checkpoint the turn writes with its id, which is how a cut turn is rolled back.
        """
        return {
            "configurable": {
                "thread_id": request.session_id,
                "actor_id": request.actor_id,
                "user_id": request.actor_id,  # the name LangGraph's memory examples read the actor by
                "preferences": request.preferences or {},
                "custom_data": request.custom_data or {},
            },
            "metadata": turn_metadata(turn_id) if turn_id else {},
            "callbacks": list(callbacks),
            "recursion_limit": RECURSION_LIMIT,
        }

    def stream(
        self, request: RunRequest, callbacks: Iterable[Any] = (), shutdown: Any = None, *,
        run_id: str | None = None, session_wait_s: float | None = None,
    ) -> AsyncGenerator[SSEEvent, None]:
        """The turn's events; a failure ends the stream with one `error` event, never an exception.

        REQUEST_TIMEOUT_S, or SHUTDOWN_GRACE_S after `shutdown` (an event with `async wait()`) is set,
        ends the turn with an `error` event. Cancellation (a client that went away, the caller's own
        `asyncio.timeout`) propagates, stopping the graph run. Whatever ends a turn before its `agent_end`,
        the session's memory is left as it was before the turn (see ARCHITECTURE.md, "A turn's life").
        `run_id` names the turn (in `agent_start`, and on every checkpoint it writes; default: a new one);
        `session_wait_s` overrides SESSION_WAIT_S (0: `session_busy` at once if the session is taken).
        """
        user_callbacks = list(callbacks)
        run_id = run_id or new_run_id()
        # The turn's trace: its parent is the context of whoever calls this (the request being served).
        trace = self.telemetry.turn(request.session, request.actor, run_id)
        events = bounded(
            self._events(request, user_callbacks, run_id, session_wait_s, trace),
            timeout_s=self.settings.request_timeout_s,
            shutdown=shutdown,
            grace_s=self.settings.shutdown_grace_s,
            on_end=trace.end,
        )
        observers = stream_observers(user_callbacks)
        # No extra generator layer unless someone observes: every layer costs each event ~0.5 µs.
        return observed(events, observers) if observers else events

    async def _events(
        self, request: RunRequest, user_callbacks: list[Any], run_id: str, session_wait_s: float | None,
        trace: TurnTrace,
    ) -> AsyncGenerator[SSEEvent, None]:
        seq = EventSequence()
        metrics = trace.begin(request.prompt if request.resume is None else None)  # traces too, when recording
        try:  # before anything runs or is read: someone else's session gets one error event, as a bad payload does
            await self.owners.check(request.session, request.actor)
        except Exception as refused:
            error = classify(refused)
            if not isinstance(refused, SessionForbidden):
                logger.error("could not check the owner of session %s: %s", request.session_id, error, exc_info=refused)
            yield seq.emit(ERROR, error.event_data(utc_timestamp()))
            return
        yield seq.emit(
            AGENT_START,
            {"session_id": request.session_id, "actor_id": request.actor_id, "run_id": run_id,
             "timestamp": utc_timestamp()},
        )
        decision = request.resume
        if decision is None:
            content = request.prompt if request.prompt is not None else ""
            first: dict[str, Any] = {"step": 1, "node": "input", "content": content, "type": "human"}
            if request.input is not None:
                first.update(type="input", values=bounded_json(request.input, self.max_event_bytes))
            yield seq.emit(AGENT_STEP, first)
        else:
            yield seq.emit(AGENT_STEP, {"step": 1, "node": "resume", "type": "resume", **_resume_step(decision)})
        turn_id = run_id  # marks the turn's checkpoints (rollback) and its human message
        callbacks = [metrics, *[cb for cb in user_callbacks if isinstance(cb, BaseCallbackHandler)]]
        # Tokens straight from the model's callback (tokens.py says why not LangGraph's `messages` mode), and
        # only when the client asked for them: without a streaming handler the model answers in one Converse call.
        tap = TokenTap() if request.stream_tokens else None
        if tap is not None:
            callbacks.append(tap)
        config = self.run_config(request, callbacks, turn_id)
        buffer = TokenBuffer(self.settings.token_buffer_size, self.settings.token_buffer_max_delay_ms)
        failure: Exception | None = None
        completed = False
        graph_stream: AsyncIterator[Any] | None = None
        memory = ActorMemory(self.long_term, request.actor) if self.long_term is not None else None
        try:
            await self.locks.acquire(request.session, session_wait_s)
        except Exception as refused:  # busy, or the shared lock's store failed (a database restarting)
            error = classify(refused)
            if not isinstance(refused, SessionBusy):
                logger.error("could not lock session %s: %s", request.session_id, error, exc_info=refused)
            metrics.record_error()
            yield seq.emit(ERROR, error.event_data(utc_timestamp()))
            return
        try:  # what the graph is given depends on what is pending: read under the session's lock
            if self.settings.checkpoint_durability != "exit":
                await self._recover(request)
            graph_input, seen = await self._input(request, turn_id, metrics)
        except BaseException as refused:
            self.locks.release(request.session)  # nothing ran: nothing to undo
            if not isinstance(refused, Exception):
                raise  # cancelled while reading (the caller's timeout, a disconnect): the session is free again
            error = classify(refused)
            metrics.record_error()
            yield seq.emit(ERROR, error.event_data(utc_timestamp()))
            return
        out = Translator(seq, buffer, self.max_event_bytes, seen)
        end: dict[str, Any] = {}
        # From here the session is ours until `settlement.settle` gives it back: nothing between here and `try`
        # can fail.
        try:
            graph = self.graph if memory is None else self.graph.copy(update={"store": memory})  # ~40 µs
            graph_stream = graph.astream(
                graph_input, config, stream_mode=STREAM_MODES, subgraphs=True,
                durability=self.settings.checkpoint_durability, context=self.inputs.context(request),
            )
            if tap is not None:
                graph_stream = TappedStream(graph_stream, tap)
            async for ns, mode, chunk in graph_stream:
                if ns is None:  # the tap's: a model's chunk
                    event = out.token(*chunk)
                    if event is not None:
                        yield event
                    continue
                for event in out.item(ns, mode, chunk):
                    yield event
            for event in out.flush():
                yield event
            # Still inside the turn: a cancellation while these are read rolls it back like any other.
            if out.interrupts:
                for data in await self._interrupted(request, run_id, out.interrupts, metrics):
                    end.setdefault("interrupts", []).append(data)
                    yield seq.emit(INTERRUPT, data)
            if request.include_state:
                end["state"] = await self._final_state(request)
            if memory is not None:  # its writes kept with the turn; a cut that lands meanwhile undoes them
                await memory.keep()
            completed = True  # the graph run finished and wrote its last checkpoint: the turn is kept
        except Exception as exc:
            failure = exc
        finally:
            # Every way out (done, failed, cancelled, closed at a yield) passes here exactly once.
            await self.settlement.settle(graph_stream, request, turn_id, completed, memory)
        if failure is not None:
            error = classify(failure)
            metrics.record_error()
            logger.error("turn failed for session %s: %s", request.session_id, error, exc_info=failure)
            yield seq.emit(ERROR, error.event_data(utc_timestamp()))
            return
        self.remember_nodes(request.session, out.labels)
        if memory is not None:  # after the turn is kept, never for a cut one; awaited by `drain`
            self.in_background(memory.record_turn(request.session, request.prompt, out.output))
        snapshot = metrics.snapshot()
        # The SDK logs "completed" when the response object is returned; this is the turn's real duration.
        logger.info("turn done: session=%s run=%s steps=%d latency_ms=%s", request.session_id, run_id, out.step,
                    snapshot["latency_ms"])
        yield seq.emit(AGENT_END, {"output": out.output, "steps": out.step, "metrics": snapshot,
                                   "status": "interrupted" if "interrupts" in end else "completed",
                                   **end, "timestamp": utc_timestamp()})

    async def _interrupted(self, request: RunRequest, run_id: str, seen: dict[str, Any],
                           metrics: MetricsCallback) -> list[dict[str, Any]]:
        """The interrupts the turn stopped at, where each was raised (the state's tasks say: a stream's
        interrupt does not), as `interrupt` events' data."""
        state = await self._state(request.session, request.actor, subgraphs=True)
        found = {p.interrupt.id: p for p in pending_in(state)}
        events = []
        for interrupt_id, interrupt in seen.items():
            pending = found.get(interrupt_id) or Pending(interrupt, "", ())
            events.append({**pending.data(self.max_event_bytes), "run_id": run_id})
            metrics.approvals_asked += pending.approvals  # a tool call waiting for a person; a question is not one
        return events

    async def _final_state(self, request: RunRequest) -> Any:
        """`include_state`: the session's state values after the turn, as JSON within MAX_EVENT_BYTES."""
        state = await self._state(request.session, request.actor)
        return bounded_json(state.values, self.max_event_bytes)

    async def _input(self, request: RunRequest, turn_id: str,
                     metrics: MetricsCallback) -> tuple[Any, dict[str, tuple[str, str]] | None]:
        """The graph's input — the prompt as a human message, the request's `input`, or the answers to what the
        session waits on (`Command(resume=…)`) — and, for a user's graph, the messages the session held before
        (its subgraphs' updates repeat them; the turn shows only new ones).

        The built-in agent with approvals configured declines a pending approval when a prompt comes instead, so the
        conversation sent to the model never holds a tool call without its result (Converse refuses that). Any
        other graph decides for itself what an interrupt means: a prompt while one is pending is refused.
        """
        decision = request.resume
        if decision is not None:
            answers = await self.answers_for(request.session, request.actor, decision.answers())
            _count(metrics, answers)
            return Command(resume=answers), await self._seen(request)
        if self.built_in and not self.approval_required:
            return {"messages": [HumanMessage(request.prompt, id=turn_id)]}, None
        state = await self._state(request.session, request.actor)
        if self.built_in:
            declined_calls = [declined(call) for call in dangling_calls(state.values.get("messages", []))]
            metrics.approvals_declined += len(declined_calls)
            return {"messages": [*declined_calls, HumanMessage(request.prompt, id=turn_id)]}, _message_keys(
                state.values)
        if state.interrupts:
            raise AgentError("interrupt_pending")
        seen = _message_keys(state.values)
        if request.input is None:
            graph_input: dict[str, Any] = {"messages": [HumanMessage(request.prompt, id=turn_id)]}
        else:
            graph_input = _with_ids(request.input)
        seen.update(_message_keys(graph_input))  # the turn's own input is shown once, as its first step
        return graph_input, seen

    async def _seen(self, request: RunRequest) -> dict[str, tuple[str, str]]:
        """The messages the session holds (an answer's turn may re-write one: its step says `replaces`)."""
        return _message_keys((await self._state(request.session, request.actor)).values)

    async def _recover(self, request: RunRequest) -> None:
        """Roll back the steps of a turn whose process died mid-turn (`Settlement.recover`)."""
        await self.settlement.recover(request, await self._state(request.session, request.actor))

    def in_background(self, work: Awaitable[Any]) -> None:
        """Run `work` after the turn, logged if it fails (a kept turn stays kept), awaited by `drain`."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("could not send a kept turn to long-term memory", exc_info=task.exception())

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait for turns being committed or rolled back (before the server closes the checkpointer) and their
        conversations sent to long-term memory; then release what this loop holds for the agent (idle MCP sessions:
        a stdio server's process)."""
        await self.settlement.drain(timeout_s)
        pending = {task for task in self._background if task.get_loop() is asyncio.get_running_loop()}
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)
        for release in self.on_drain:
            await release()

    async def invoke(self, request: RunRequest, callbacks: Iterable[Any] = ()) -> dict[str, Any]:
        """The turn as one dict: the fold of its stream. Raises AgentError if the turn failed."""
        return await result_of(self.stream(request, callbacks))

    def close(self) -> None:
        """Close what the agent was built with (its store, the offline endpoint), once its turns are settled."""
        for close in reversed(self.closers):
            try:
                close()
            except Exception:
                logger.exception("could not close %r", close)
        self.closers.clear()


async def result_of(events: EventStream, start: dict[str, Any] | None = None) -> dict[str, Any]:
    """A turn's result dict from its events (`start`: `agent_start`'s data, if the events begin after it);
    raises the AgentError of its `error` event."""
    return await fold(events, _failed, _incomplete, start)


def _count(metrics: MetricsCallback, answers: dict[str, Any]) -> None:
    """An approval's answer counts as granted or declined (the turn's metrics)."""
    for answer in answers.values():
        if isinstance(answer, dict) and "approved" in answer:
            if answer["approved"]:
                metrics.approvals_granted += 1
            else:
                metrics.approvals_declined += 1


def _resume_step(decision: Decision) -> dict[str, Any]:
    """The first `agent_step` of a turn that answers interrupts: what was answered (an approval: yes or no)."""
    if decision.approved is not None and decision.values is None and "value" not in decision.model_fields_set:
        return {"content": "approved" if decision.approved else "declined", "interrupt_id": decision.interrupt_id}
    answered = list(decision.answers())
    return {"content": "answered", "interrupt_id": answered[0]} if len(answered) == 1 else {
        "content": "answered", "interrupt_ids": answered}


def _with_ids(graph_input: dict[str, Any]) -> dict[str, Any]:
    """A request's `input` with its messages as messages, each with an id (LangGraph would give one later, which
    the turn could not tell from a subgraph repeating it)."""
    raw = graph_input.get("messages")
    if raw is None:
        return graph_input
    messages = convert_to_messages(raw if isinstance(raw, list) else [raw])
    return {**graph_input, "messages": [m if m.id else m.model_copy(update={"id": str(uuid.uuid4())})
                                        for m in messages]}


def _message_keys(values: Any) -> dict[str, tuple[str, str]]:
    """The messages a state holds, by id (what the turn need not show again)."""
    messages = values.get("messages", []) if isinstance(values, dict) else []
    return {m.id: message_key(m) for m in messages if isinstance(m, BaseMessage) and m.id is not None}


def _failed(event: SSEEvent) -> AgentError:
    """The AgentError a turn's `error` event carries."""
    data = event.data
    return AgentError(data["code"], data["error"], data.get("details"))


def _incomplete() -> AgentError:
    return AgentError("internal_error", "The turn ended without a result.")
