"""Roll a session back to the checkpoint it had before a turn that did not complete.

Every checkpoint a turn writes carries the turn's id in its metadata (LangGraph copies string values of
the run config's `metadata` into each checkpoint). To roll back, walk the session's checkpoints newest
first past the turn's own; the first one that is not the turn's is the pre-turn state, and a copy of it
is written as the newest checkpoint (LangGraph's `__copy__` update). A session with no earlier checkpoint
(a first turn) gets an empty checkpoint as its newest instead.

Why a new newest checkpoint rather than deleting the turn's: it works through the saver interface alone
(SQLite, in-process, AgentCore Memory), and a write of the turn that is still in flight on a worker
thread when the turn is cut (`asyncio.to_thread` cannot stop one) can land later without undoing the
rollback: its checkpoint id, a uuid6 taken when it was made, sorts before the rollback's, and savers
read the checkpoint with the highest id as the latest.
Why not remove the turn's messages with `update_state(..., as_node=...)`: that runs the graph's edges
over the result (an empty history fails `tools_condition`) and misses the turn's pending writes.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple, empty_checkpoint
from langgraph.graph.state import CompiledStateGraph

TURN_KEY = "turn_id"
_PAGE = 32  # a turn writes one checkpoint (durability "exit") or one per step (at most RECURSION_LIMIT + 1)


def turn_metadata(turn_id: str) -> dict[str, str]:
    """The run config's `metadata` that marks the turn's checkpoints."""
    return {TURN_KEY: turn_id}


def cut_turn(state: Any) -> str | None:
    """The id of the turn a session's state is the middle of, if it is: its latest checkpoint still waits for a
    node (`next`), no approval is pending, and it carries that turn's id. Only with CHECKPOINT_DURABILITY
    `sync`/`async`, which write a turn step by step: a turn still running, or one whose process died."""
    turn = (state.metadata or {}).get(TURN_KEY)
    return turn if state.next and not state.interrupts and turn else None


def saver_of(graph: CompiledStateGraph) -> BaseCheckpointSaver:
    """The graph's saver: compiled with one (build_graph), not with True/False/None (a subgraph's choices)."""
    saver = graph.checkpointer
    assert isinstance(saver, BaseCheckpointSaver), f"the graph has no saver of its own: {saver!r}"
    return saver


async def checkpoint_before(graph: CompiledStateGraph, config: RunnableConfig, turn_id: str) -> CheckpointTuple | None:
    """The session's newest checkpoint not written by `turn_id`; None if there is none."""
    saver = saver_of(graph)
    before: RunnableConfig | None = None
    while True:
        seen = 0
        async for item in saver.alist(config, before=before, limit=_PAGE):
            seen += 1
            if item.metadata.get(TURN_KEY) != turn_id:
                return item
            before = item.config
        if seen < _PAGE:
            return None


async def roll_back(graph: CompiledStateGraph, config: RunnableConfig, turn_id: str) -> None:
    """Make the session's latest state the one it had before `turn_id` began.

    `config` is `{"configurable": {"thread_id", "actor_id", ...}}` for the session. The caller holds the
    session, so no other turn writes meanwhile.
    """
    configurable = {**config["configurable"], "checkpoint_ns": ""}
    root: RunnableConfig = {"configurable": configurable}
    pre = await checkpoint_before(graph, root, turn_id)
    if pre is None:
        # A first turn: an empty state, written as a checkpoint of a fresh thread would start from.
        await saver_of(graph).aput(root, empty_checkpoint(), {"source": "fork", "step": -2, "parents": {}}, {})
        return
    copy_from: RunnableConfig = {"configurable": {**configurable, **pre.config["configurable"]}}
    await graph.aupdate_state(copy_from, None, as_node="__copy__")
