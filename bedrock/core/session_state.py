"""SessionReads: what a session has kept — its conversation (`history`), the interrupts it waits on — read through the
graph's checkpointer, the same way on every backend and for any graph. Agent's reading half; its turns are in
`turn.py`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Interrupt, StateSnapshot

from bedrock.core.messages import step_data
from bedrock.core.rollback import checkpoint_before, cut_turn
from bedrock.core.values import bounded_json
from bedrock.errors import AgentError

# `history` returns at most this many messages (the newest): a long session's page stays a few hundred KB.
HISTORY_LIMIT = 200
BUILT_IN_NODES = {"human": "input", "ai": "chatbot", "tool": "tools"}  # the built-in agent's, by message type
TYPE_NODES = {"human": "input"}  # any graph's human turn; its other messages: the node seen to write them
LABELLED_SESSIONS = 4096  # sessions whose messages' nodes this process remembers (a few KB each)
APPROVAL_PREFIX = "approval-"  # the built-in agent's tool approvals (core/graph.py: interrupt_id)


@dataclass(frozen=True)
class Pending:
    """An interrupt the session waits on: LangGraph's, and where it was raised."""

    interrupt: Interrupt
    node: str
    namespace: tuple[str, ...]

    @property
    def approval(self) -> bool:
        """The built-in agent's tool approval (its value carries our own id and the call's fields)."""
        value = self.interrupt.value
        return isinstance(value, dict) and str(value.get("interrupt_id", "")).startswith(APPROVAL_PREFIX)

    @property
    def approvals(self) -> int:
        """The tool calls it asks a person about: an approval's one, a HumanInTheLoopMiddleware review's each."""
        value = self.interrupt.value
        if self.approval:
            return 1
        requests = value.get("action_requests") if isinstance(value, dict) else None
        return len(requests) if isinstance(requests, list) else 0

    @property
    def id(self) -> str:
        """The id a client answers it by: the approval's own, else LangGraph's."""
        return str(self.interrupt.value["interrupt_id"]) if self.approval else self.interrupt.id

    def data(self, max_bytes: int) -> dict[str, Any]:
        """As an `interrupt` event's data (without the run id): an approval keeps its fields at the top."""
        value = bounded_json(self.interrupt.value, max_bytes)
        head = {**value} if self.approval else {"interrupt_id": self.id}
        return {**head, "value": value, "node": self.node, "namespace": list(self.namespace)}


def pending_in(state: StateSnapshot, namespace: tuple[str, ...] = ()) -> Iterator[Pending]:
    """The interrupts a state (read with `subgraphs=True`) waits on, each once, at the node that raised it."""
    seen: set[str] = set()
    for task in state.tasks:
        inner = task.state if isinstance(task.state, StateSnapshot) else None
        nested = list(pending_in(inner, (*namespace, task.name))) if inner is not None else []
        for found in nested:
            if found.interrupt.id not in seen:
                seen.add(found.interrupt.id)
                yield found
        for interrupt in task.interrupts:
            if interrupt.id not in seen:
                seen.add(interrupt.id)
                yield Pending(interrupt, task.name, namespace)


class SessionReads:
    """Reads of a session's state; needs `graph` (compiled, with a checkpointer), `built_in` and `settings`."""

    graph: CompiledStateGraph
    built_in: bool
    max_event_bytes: int
    labels: OrderedDict[str, dict[str, str]]  # session → message id → node (this process's turns)

    async def history(self, session_id: str, actor_id: str, limit: int = HISTORY_LIMIT) -> dict[str, Any]:
        """The session's kept conversation (its last `limit` messages, as `agent_step` data) and its pending
        interrupts: what a chat page shows when it opens a session. A turn cut short was rolled back and is not
        in it; a turn in progress is not either (its messages are written when it ends)."""
        state = await self._whole_state(session_id, actor_id, subgraphs=True)
        messages = (state.values or {}).get("messages", []) if isinstance(state.values, dict) else []
        first = max(len(messages) - limit, 0)
        return {
            "session_id": session_id,
            "messages": [step_data(first + i + 1, self._node_of(session_id, m), m)
                         for i, m in enumerate(messages[first:])],
            "truncated": first > 0,
            "pending": [p.data(self.max_event_bytes) for p in pending_in(state)],
        }

    def _node_of(self, session_id: str, message: Any) -> str:
        if self.built_in:
            return BUILT_IN_NODES.get(message.type, message.type)
        node = self.labels.get(session_id, {}).get(message.id or "")
        return node or TYPE_NODES.get(message.type, message.type)

    def remember_nodes(self, session_id: str, labels: dict[str, str]) -> None:
        """Which node wrote each of a turn's messages (a graph's messages do not say): for `history`."""
        if not labels or self.built_in:
            return
        known = self.labels.pop(session_id, {})
        known.update(labels)
        while len(known) > HISTORY_LIMIT * 2:  # the oldest first (dicts keep insertion order)
            known.pop(next(iter(known)))
        self.labels[session_id] = known
        while len(self.labels) > LABELLED_SESSIONS:
            self.labels.popitem(last=False)

    async def pending_interrupts(self, session_id: str, actor_id: str) -> list[Pending]:
        """The interrupts the session waits on (a tool approval, any graph's `interrupt()`)."""
        return list(pending_in(await self._whole_state(session_id, actor_id, subgraphs=True)))

    async def pending_approvals(self, session_id: str, actor_id: str) -> list[dict[str, Any]]:
        """What the session waits on, as `interrupt` events' data (without the run id)."""
        return [p.data(self.max_event_bytes) for p in await self.pending_interrupts(session_id, actor_id)]

    async def answers_for(self, session_id: str, actor_id: str, answers: dict[str, Any]) -> dict[str, Any]:
        """LangGraph's interrupt id → answer, for answers keyed by the ids clients see; `nothing_to_resume` or
        `interrupt_mismatch` when the session does not wait on each of them."""
        pending = {p.id: p for p in await self.pending_interrupts(session_id, actor_id)}
        if not pending:
            raise AgentError("nothing_to_resume")
        unknown = [key for key in answers if key not in pending]
        if unknown:
            raise AgentError("interrupt_mismatch", f"The pending interrupts are {', '.join(pending)}, not "
                             f"{', '.join(unknown)}.")
        return {pending[key].interrupt.id: value for key, value in answers.items()}

    async def _state(self, session_id: str, actor_id: str, subgraphs: bool = False) -> Any:
        """The session's latest state. AgentCore Memory keeps sessions per actor: every read names the actor too."""
        return await self.graph.aget_state({"configurable": {"thread_id": session_id, "actor_id": actor_id}},
                                           subgraphs=subgraphs)

    async def _whole_state(self, session_id: str, actor_id: str, subgraphs: bool = False) -> Any:
        """The session's state after its last whole turn: what every read shows, whatever the durability. A turn
        written step by step (`sync`/`async`) that is still running, or whose process died, is skipped (read
        past, not written: the next turn of the session rolls a dead one back)."""
        state = await self._state(session_id, actor_id, subgraphs)
        turn = cut_turn(state)
        if turn is None:
            return state
        config: RunnableConfig = {"configurable": {"thread_id": session_id, "actor_id": actor_id, "checkpoint_ns": ""}}
        before = await checkpoint_before(self.graph, config, turn)
        if before is None:  # the session's first turn: nothing whole yet
            return StateSnapshot({}, (), config, None, None, None, (), ())
        return await self.graph.aget_state({"configurable": {**config["configurable"],
                                                             **before.config["configurable"]}}, subgraphs=subgraphs)
