"""How a turn ends in memory: kept, or rolled back to the state before it — exactly once, whatever cut it.

A completed turn is kept (and the session's superseded checkpoints pruned, CHECKPOINT_HISTORY=latest); a cut one
(cancel, timeout, error, SIGTERM, a client gone with `on_disconnect: cancel`) has its graph run stopped and its
checkpoints rolled back, and whatever it was answering is asked again. Each runs as a task nothing cancels, and the
session's lock is released when it is done. A turn cut by a process that died is rolled back by the next one
(`recover`). See ARCHITECTURE.md, "A turn's life".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import StateSnapshot

from bedrock.config import Settings
from bedrock.core.memory import ActorMemory
from bedrock.core.rollback import cut_turn, roll_back, saver_of
from bedrock.core.sessions import SessionLocks
from bedrock.wire.request import RunRequest

logger = logging.getLogger(__name__)


class Settlement:
    """Keeps or rolls back the turns of one agent's graph, and releases their sessions' locks."""

    def __init__(self, graph: CompiledStateGraph, settings: Settings, locks: SessionLocks,
                 long_term: BaseStore | None = None) -> None:
        self.graph = graph
        self.locks = locks
        self.long_term = long_term
        self.durability = settings.checkpoint_durability
        self._settling: set[asyncio.Future[None]] = set()  # turns being committed or rolled back
        # Only savers that implement pruning (our SQLite and PostgreSQL ones) are pruned; the base class's raises.
        checkpointer = graph.checkpointer
        self.can_prune = (
            settings.checkpoint_history == "latest"
            and isinstance(checkpointer, BaseCheckpointSaver)
            and type(checkpointer).aprune is not BaseCheckpointSaver.aprune
        )

    async def settle(self, graph_stream: Any, request: RunRequest, turn_id: str, completed: bool,
                     memory: ActorMemory | None = None) -> None:
        """Keep a completed turn (and prune), or stop the run and roll the session back; then release it.

        The work runs as its own task, so nothing cancels it: the session stays locked until it is done,
        and the release is the task's done-callback, exactly once, whether or not anyone still waits.
        A cut turn's rollback is awaited (shielded: a second cancellation, a deadline landing on a
        disconnect, stops only our wait), so whoever gets the error or the cancellation finds memory
        already restored. A completed turn's prune is not: between the graph's end and `agent_end` there
        must be no await, or a cancellation landing there would leave a kept turn the caller never saw end.
        """
        if completed and not self.can_prune:
            self.locks.release(request.session)
            return
        work = self.prune(request) if completed else self._abandon(graph_stream, request, turn_id, memory)
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

    async def prune(self, request: RunRequest) -> None:
        """Drop the session's superseded checkpoints, where the saver supports it (CHECKPOINT_HISTORY)."""
        if not self.can_prune:
            return
        try:
            await saver_of(self.graph).aprune([request.session], strategy="keep_latest")
        except Exception:
            logger.exception("could not prune old checkpoints of session %s", request.session_id)

    async def _abandon(self, graph_stream: Any, request: RunRequest, turn_id: str,
                       memory: ActorMemory | None) -> None:
        """Stop the graph run (its tasks and its exit checkpoint end with it), drop its memories, then roll the
        session back."""
        if graph_stream is not None:
            try:
                await graph_stream.aclose()
            except Exception:
                logger.exception("the cut turn of session %s failed while stopping", request.session_id)
        if memory is not None:
            try:
                await memory.drop()
            except Exception:
                logger.exception("could not undo the memories of the cut turn of session %s", request.session_id)
        if self.graph.checkpointer is None:
            return  # nothing was stored, nothing to undo
        config: RunnableConfig = {"configurable": {"thread_id": request.session, "actor_id": request.actor}}
        try:
            await roll_back(self.graph, config, turn_id)
            await self.ask_again(config)
        except Exception:
            logger.exception("could not roll back the cut turn of session %s", request.session_id)
            return
        await self.prune(request)

    async def ask_again(self, config: RunnableConfig) -> None:
        """After a rollback to a state that waited on interrupts (an approval, any `interrupt()`): wait again.

        The rollback's copy of a checkpoint keeps its values and next nodes but not its pending interrupts; running
        the graph from there reaches the same `interrupt()` calls before anything else runs. An approval keeps its id
        (named after the tool call); any other interrupt is asked under a new one (LangGraph's ids name the
        checkpoint's task), which `history` shows.
        """
        state = await self.graph.aget_state(config)
        if state.next and not state.interrupts:
            graph = self.graph
            if self.long_term is not None:  # what it writes on the way is not kept: it re-asks, it is no turn
                graph = graph.copy(update={"store": ActorMemory(self.long_term, config["configurable"]["actor_id"])})
            async for _ in graph.astream(None, config, durability=self.durability):
                pass

    async def recover(self, request: RunRequest, state: StateSnapshot) -> None:
        """Roll back the steps of a turn whose process died mid-turn (a replica killed, a host lost).

        Only with CHECKPOINT_DURABILITY `sync`/`async`, which write a turn step by step: its last checkpoint then
        still waits for a node (`next`) with no approval pending, and carries that turn's id. A live turn of the
        session cannot be running (we hold its lock), so such a state is an orphan. With `exit` (the default) a
        turn is written once, at its end: a dead process leaves nothing to undo.
        """
        orphan = cut_turn(state)
        if orphan is not None:
            logger.warning("session %s: rolling back turn %s, cut short by a process that died", request.session_id,
                           orphan)
            config: RunnableConfig = {"configurable": {"thread_id": request.session, "actor_id": request.actor}}
            await roll_back(self.graph, config, orphan)
            await self.ask_again(config)  # it may have been answering an interrupt: ask for it again
