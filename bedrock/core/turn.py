"""One agent turn as a stream of events: start, steps (and tokens), then exactly one end or error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from bedrock.config import Settings
from bedrock.core.deadlines import bounded
from bedrock.core.graph import dangling_calls, declined
from bedrock.core.hooks import observed, stream_observers
from bedrock.core.messages import message_text, step_data
from bedrock.core.metrics import MetricsCallback
from bedrock.core.ownership import SessionOwners
from bedrock.wire.request import RunRequest
from bedrock.core.rollback import cut_turn, roll_back, saver_of, turn_metadata
from bedrock.core.runs import new_run_id
from bedrock.core.session_state import SessionReads
from bedrock.core.sessions import SessionLocks
from bedrock.core.tokens import TappedStream, TokenTap
from bedrock.errors import AgentError, SessionBusy, SessionForbidden, classify
from bedrock.store import Store
from bedrock.store.in_process import InProcessOwners
from bedrock.wire.batching import TokenBuffer
from bedrock.wire.events import (AGENT_END, AGENT_START, AGENT_STEP, ERROR, INTERRUPT, EventSequence, EventStream,
                                 SSEEvent, utc_timestamp)
from bedrock.wire.result import fold

if TYPE_CHECKING:
    from bedrock.core.telemetry import Telemetry, TurnTrace

logger = logging.getLogger(__name__)

RECURSION_LIMIT = 25
PARAGRAPH = "\n\n"  # before a later message's text, in `llm_token.text`


class Agent(SessionReads):
    """The compiled graph and what a turn needs; streams or folds one turn at a time (reads of a session's kept
    state — history, pending approvals — in `SessionReads`)."""

    def __init__(self, graph: CompiledStateGraph, settings: Settings, store: Store | None = None,
                 telemetry: Telemetry | None = None) -> None:
        self.graph = graph
        self.settings = settings
        if telemetry is None:  # the global OpenTelemetry providers; loaded here, off a cold start's /ping path
            from bedrock.core.telemetry import Telemetry

            telemetry = Telemetry(settings)
        self.telemetry = telemetry
        # `store`: where the graph's checkpointer came from, with the sessions' owners and (SQLite, PostgreSQL) their
        # lock across processes; closed with the agent. None (a graph built by hand): owners kept in this process.
        self.store = store
        self.owners = SessionOwners(store.owners if store is not None else InProcessOwners())
        self.closers: list[Callable[[], Any]] = [store.close] if store is not None else []  # `close`: last first
        self.approval_required = frozenset(settings.approval_required_tools)
        self.locks = SessionLocks(settings.session_wait_s, store.shared_locks if store is not None else None)
        self._settling: set[asyncio.Future[None]] = set()  # turns being committed or rolled back
        # Only savers that implement pruning (our SQLite and PostgreSQL ones) are pruned; the base class's raises.
        checkpointer = graph.checkpointer
        self._can_prune = (
            settings.checkpoint_history == "latest"
            and isinstance(checkpointer, BaseCheckpointSaver)
            and type(checkpointer).aprune is not BaseCheckpointSaver.aprune
        )

    def run_config(self, request: RunRequest, callbacks: Sequence[Any], turn_id: str = "") -> RunnableConfig:
        """LangGraph config: the session is the thread; preferences and custom_data ride along.

        `metadata` marks every checkpoint the turn writes with its id, which is how a cut turn is rolled back.
        """
        return {
            "configurable": {
                "thread_id": request.session_id,
                "actor_id": request.actor_id,
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
        step = 1
        decision = request.resume
        if decision is None:
            yield seq.emit(AGENT_STEP, {"step": step, "node": "input", "content": request.prompt, "type": "human"})
        else:
            yield seq.emit(AGENT_STEP, {"step": step, "node": "resume", "type": "resume",
                                        "content": "approved" if decision.approved else "declined",
                                        "interrupt_id": decision.interrupt_id})
        turn_id = run_id  # marks the turn's checkpoints (rollback) and its human message
        interrupts: list[dict[str, Any]] = []
        callbacks = [metrics, *[cb for cb in user_callbacks if isinstance(cb, BaseCallbackHandler)]]
        # Tokens straight from the model's callback (tokens.py says why not LangGraph's `messages` mode), and
        # only when the client asked for them: without a streaming handler the model answers in one Converse call.
        tap = TokenTap("chatbot") if request.stream_tokens else None
        if tap is not None:
            callbacks.append(tap)
        config = self.run_config(request, callbacks, turn_id)
        buffer = TokenBuffer(self.settings.token_buffer_size, self.settings.token_buffer_max_delay_ms)
        output = ""
        awaiting_first_token = True
        said = False  # a message of this turn has streamed text already
        failure: Exception | None = None
        completed = False
        # (mode, chunk) pairs, as a list of stream modes makes them (Pregel.astream's annotation says dicts).
        graph_stream: AsyncIterator[Any] | None = None
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
            graph_input = await self._input(request, turn_id, metrics)
        except BaseException as refused:
            self.locks.release(request.session)  # nothing ran: nothing to undo
            if not isinstance(refused, Exception):
                raise  # cancelled while reading (the caller's timeout, a disconnect): the session is free again
            error = classify(refused)
            metrics.record_error()
            yield seq.emit(ERROR, error.event_data(utc_timestamp()))
            return
        # From here the session is ours until `_settle` gives it back: nothing between here and `try` can fail.
        try:
            graph_stream = self.graph.astream(
                graph_input,
                config,
                stream_mode=["updates"],
                durability=self.settings.checkpoint_durability,
            )
            if tap is not None:
                graph_stream = TappedStream(graph_stream, tap)
            async for mode, chunk in graph_stream:
                if mode == "messages":
                    message, meta = chunk
                    if meta.get("langgraph_node") == "chatbot":
                        text = message_text(message)
                        if text and awaiting_first_token:
                            # The first token of a message goes out at once (time to first token);
                            # the buffer can only flush on a later token or the message's end. A later
                            # message's text starts on a new paragraph for plain-text clients (`text`).
                            awaiting_first_token = False
                            yield seq.token(text, step + 1, PARAGRAPH if said else "")
                            said = True
                        elif text:
                            batch = buffer.add(text)
                            if batch:
                                yield seq.token(batch, step + 1)
                    continue
                for node, update in chunk.items():
                    if node == "__interrupt__":  # a tool call waits for approval: the run pauses here
                        for pending in update:
                            data = {**pending.value, "run_id": run_id}
                            interrupts.append(data)
                            metrics.approvals_asked += 1
                            yield seq.emit(INTERRUPT, data)
                        continue
                    for message in (update or {}).get("messages", ()):
                        rest = buffer.flush()
                        if rest:
                            yield seq.token(rest, step + 1)
                        step += 1
                        awaiting_first_token = True
                        yield seq.emit(AGENT_STEP, step_data(step, node, message))
                        if isinstance(message, AIMessage):
                            output = message_text(message)
            completed = True  # the graph run finished and wrote its last checkpoint: the turn is kept
        except Exception as exc:
            failure = exc
        finally:
            # Every way out (done, failed, cancelled, closed at a yield) passes here exactly once.
            await self._settle(graph_stream, request, turn_id, completed)
        if failure is not None:
            error = classify(failure)
            metrics.record_error()
            logger.error("turn failed for session %s: %s", request.session_id, error, exc_info=failure)
            yield seq.emit(ERROR, error.event_data(utc_timestamp()))
            return
        snapshot = metrics.snapshot()
        # The SDK logs "completed" when the response object is returned; this is the turn's real duration.
        logger.info("turn done: session=%s run=%s steps=%d latency_ms=%s", request.session_id, run_id, step,
                    snapshot["latency_ms"])
        end: dict[str, Any] = {"output": output, "steps": step, "metrics": snapshot,
                               "status": "interrupted" if interrupts else "completed"}
        if interrupts:
            end["interrupts"] = interrupts
        end["timestamp"] = utc_timestamp()
        yield seq.emit(AGENT_END, end)

    async def _recover(self, request: RunRequest) -> None:
        """Roll back the steps of a turn whose process died mid-turn (a replica killed, a host lost).

        Only with CHECKPOINT_DURABILITY `sync`/`async`, which write a turn step by step: its last checkpoint then
        still waits for a node (`next`) with no approval pending, and carries that turn's id. A live turn of the
        session cannot be running (we hold its lock), so such a state is an orphan. With `exit` (the default) a
        turn is written once, at its end: a dead process leaves nothing to undo.
        """
        state = await self._state(request.session, request.actor)
        orphan = cut_turn(state)
        if orphan is not None:
            logger.warning("session %s: rolling back turn %s, cut short by a process that died", request.session_id,
                           orphan)
            config: RunnableConfig = {"configurable": {"thread_id": request.session, "actor_id": request.actor}}
            await roll_back(self.graph, config, orphan)
            if self.approval_required:  # it may have been answering an approval: ask for it again
                await self._ask_again(config)

    async def _input(self, request: RunRequest, turn_id: str, metrics: MetricsCallback) -> Any:
        """The graph's input: the prompt, or the answer to the pending approval (`Command(resume=…)`).

        With approvals configured, a prompt sent while an approval is pending declines it first, so the
        conversation sent to the model never holds a tool call without its result (Converse refuses that).
        """
        decision = request.resume
        if decision is None and not self.approval_required:
            return {"messages": [HumanMessage(request.prompt, id=turn_id)]}
        if decision is not None:
            chosen = await self.pending_interrupt(request.session, request.actor, decision.interrupt_id)
        else:
            state = await self._state(request.session, request.actor)
            declined_calls = [declined(call) for call in dangling_calls(state.values.get("messages", []))]
            metrics.approvals_declined += len(declined_calls)
            return {"messages": [*declined_calls, HumanMessage(request.prompt, id=turn_id)]}
        if decision.approved:
            metrics.approvals_granted += 1
        else:
            metrics.approvals_declined += 1
        return Command(resume={chosen.id: {"approved": decision.approved, "args": decision.args}})

    async def _settle(self, graph_stream: Any, request: RunRequest, turn_id: str, completed: bool) -> None:
        """Keep a completed turn (and prune), or stop the run and roll the session back; then release it.

        The work runs as its own task, so nothing cancels it: the session stays locked until it is done,
        and the release is the task's done-callback, exactly once, whether or not anyone still waits.
        A cut turn's rollback is awaited (shielded: a second cancellation, a deadline landing on a
        disconnect, stops only our wait), so whoever gets the error or the cancellation finds memory
        already restored. A completed turn's prune is not: between the graph's end and `agent_end` there
        must be no await, or a cancellation landing there would leave a kept turn the caller never saw end.
        """
        if completed and not self._can_prune:
            self.locks.release(request.session)
            return
        work = self._prune(request) if completed else self._abandon(graph_stream, request, turn_id)
        task = asyncio.ensure_future(work)
        self._settling.add(task)
        task.add_done_callback(lambda done: self._settled(request.session, done))
        if not completed:
            await asyncio.shield(task)

    def _settled(self, session_id: str, task: asyncio.Future[None]) -> None:
        self._settling.discard(task)
        self.locks.release(session_id)

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait for turns being committed or rolled back (before the server closes the checkpointer)."""
        pending = {task for task in self._settling if task.get_loop() is asyncio.get_running_loop()}
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    async def _prune(self, request: RunRequest) -> None:
        """Drop the session's superseded checkpoints, where the saver supports it (CHECKPOINT_HISTORY)."""
        if not self._can_prune:
            return
        try:
            await saver_of(self.graph).aprune([request.session], strategy="keep_latest")
        except Exception:
            logger.exception("could not prune old checkpoints of session %s", request.session_id)

    async def _abandon(self, graph_stream: Any, request: RunRequest, turn_id: str) -> None:
        """Stop the graph run (its tasks and its exit checkpoint end with it), then roll the session back."""
        if graph_stream is not None:
            try:
                await graph_stream.aclose()
            except Exception:
                logger.exception("the cut turn of session %s failed while stopping", request.session_id)
        if self.graph.checkpointer is None:
            return  # nothing was stored, nothing to undo
        config: RunnableConfig = {"configurable": {"thread_id": request.session, "actor_id": request.actor}}
        try:
            await roll_back(self.graph, config, turn_id)
            if self.approval_required:
                await self._ask_again(config)
        except Exception:
            logger.exception("could not roll back the cut turn of session %s", request.session_id)
            return
        await self._prune(request)

    async def _ask_again(self, config: RunnableConfig) -> None:
        """After a rollback to a state that waited for an approval: wait for it again.

        The rollback's copy of a checkpoint keeps its messages but not its pending interrupt; running the
        graph from there reaches the same `interrupt()` before any tool runs (under the same, stable id).
        """
        state = await self.graph.aget_state(config)
        if state.next == ("tools",) and not state.interrupts and dangling_calls(state.values.get("messages", [])):
            async for _ in self.graph.astream(None, config, durability=self.settings.checkpoint_durability):
                pass

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


def _failed(event: SSEEvent) -> AgentError:
    """The AgentError a turn's `error` event carries."""
    data = event.data
    return AgentError(data["code"], data["error"], data.get("details"))


def _incomplete() -> AgentError:
    return AgentError("internal_error", "The turn ended without a result.")
