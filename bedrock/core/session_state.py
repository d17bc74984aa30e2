"""SessionReads: what a session has kept — its conversation (`history`), the approvals it waits on — read through the
graph's checkpointer, the same way on every backend. Agent's reading half; its turns are in `turn.py`."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateSnapshot

from bedrock.core.messages import step_data
from bedrock.core.rollback import checkpoint_before, cut_turn
from bedrock.errors import AgentError

# `history` returns at most this many messages (the newest): a long session's page stays a few hundred KB.
HISTORY_LIMIT = 200
HISTORY_NODES = {"human": "input", "ai": "chatbot", "tool": "tools"}


class SessionReads:
    """Reads of a session's state; needs `graph` (compiled, with a checkpointer) and `approval_required`."""

    graph: CompiledStateGraph
    approval_required: frozenset[str]

    async def history(self, session_id: str, actor_id: str, limit: int = HISTORY_LIMIT) -> dict[str, Any]:
        """The session's kept conversation (its last `limit` messages, as `agent_step` data) and its pending
        approvals: what a chat page shows when it opens a session. A turn cut short was rolled back and is not
        in it; a turn in progress is not either (its messages are written when it ends)."""
        state = await self._whole_state(session_id, actor_id)
        messages = (state.values or {}).get("messages", [])
        first = max(len(messages) - limit, 0)
        return {
            "session_id": session_id,
            "messages": [step_data(first + i + 1, HISTORY_NODES.get(m.type, m.type), m)
                         for i, m in enumerate(messages[first:])],
            "truncated": first > 0,
            "pending": [dict(i.value) for i in self._approvals_in(state)],
        }

    async def pending_approvals(self, session_id: str, actor_id: str) -> list[dict[str, Any]]:
        """The session's approvals waiting for an answer (none unless APPROVAL_REQUIRED_TOOLS is set)."""
        return [dict(i.value) for i in await self._interrupts(session_id, actor_id)]

    async def pending_interrupt(self, session_id: str, actor_id: str, interrupt_id: str) -> Any:
        """LangGraph's interrupt for our `interrupt_id`; `nothing_to_resume` or `interrupt_mismatch` otherwise."""
        if not self.approval_required:
            raise AgentError("nothing_to_resume", "No tool needs approval here (APPROVAL_REQUIRED_TOOLS is empty).")
        pending = {i.value["interrupt_id"]: i for i in await self._interrupts(session_id, actor_id)}
        if not pending:
            raise AgentError("nothing_to_resume")
        if interrupt_id not in pending:
            raise AgentError("interrupt_mismatch", f"The pending approval is {', '.join(pending)}, not {interrupt_id}.")
        return pending[interrupt_id]

    async def _interrupts(self, session_id: str, actor_id: str) -> list[Any]:
        if not self.approval_required:
            return []
        return self._approvals_in(await self._whole_state(session_id, actor_id))

    async def _state(self, session_id: str, actor_id: str) -> Any:
        """The session's latest state. AgentCore Memory keeps sessions per actor: every read names the actor too."""
        return await self.graph.aget_state({"configurable": {"thread_id": session_id, "actor_id": actor_id}})

    async def _whole_state(self, session_id: str, actor_id: str) -> Any:
        """The session's state after its last whole turn: what every read shows, whatever the durability. A turn
        written step by step (`sync`/`async`) that is still running, or whose process died, is skipped (read
        past, not written: the next turn of the session rolls a dead one back)."""
        state = await self._state(session_id, actor_id)
        turn = cut_turn(state)
        if turn is None:
            return state
        config: RunnableConfig = {"configurable": {"thread_id": session_id, "actor_id": actor_id, "checkpoint_ns": ""}}
        before = await checkpoint_before(self.graph, config, turn)
        if before is None:  # the session's first turn: nothing whole yet
            return StateSnapshot({}, (), config, None, None, None, (), ())
        return await self.graph.aget_state({"configurable": {**config["configurable"],
                                                             **before.config["configurable"]}})

    def _approvals_in(self, state: Any) -> list[Any]:
        """The approvals (our interrupts) a session's state waits on."""
        if not self.approval_required:
            return []
        return [i for i in state.interrupts if isinstance(i.value, dict) and "interrupt_id" in i.value]
