"""The SQL on LangGraph's own SQLite tables (bedrock/store/sqlite_tables.py) against the pinned
langgraph-checkpoint-sqlite: the schema it relies on, and what it does to a real graph's checkpoints. A failure here
means the saver changed under it: read the module's comments before the next upgrade."""

from __future__ import annotations

import sqlite3
from importlib.metadata import version
from typing import Any, Iterator

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph

from bedrock.store import sqlite_tables

PINNED = f"langgraph-checkpoint-sqlite {version('langgraph-checkpoint-sqlite')}"


@pytest.fixture
def saver() -> Iterator[SqliteSaver]:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()
    yield saver
    conn.close()


def table_info(saver: SqliteSaver, table: str) -> list[tuple[Any, ...]]:
    """(cid, name, type, notnull, default, pk) per column, as SQLite reports them."""
    return saver.conn.execute(f"PRAGMA table_info({table})").fetchall()


def primary_key(saver: SqliteSaver, table: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _, _, pk in sorted(table_info(saver, table), key=lambda c: c[5]) if pk)


def test_the_pinned_saver_has_the_tables_and_columns_our_sql_relies_on(saver):
    for table, needed in sqlite_tables.RELIED_ON.items():
        columns = {column[1] for column in table_info(saver, table)}
        missing = sorted(set(needed) - columns)
        assert not missing, f"{PINNED}: table {table!r} has no {missing} (bedrock/store/sqlite_tables.py uses them)"
    # A checkpoint is (thread, namespace, id); a write belongs to the checkpoint with the same three.
    assert primary_key(saver, "checkpoints") == ("thread_id", "checkpoint_ns", "checkpoint_id"), PINNED
    assert primary_key(saver, "writes")[:3] == ("thread_id", "checkpoint_ns", "checkpoint_id"), PINNED


def test_the_pinned_saver_has_no_prune_of_its_own():
    assert SqliteSaver.prune is BaseCheckpointSaver.prune, (
        f"{PINNED} implements prune now: use it in ThreadedSqliteSaver.prune and drop sqlite_tables.keep_latest")


def counter_graph(saver: SqliteSaver) -> Any:
    """A one-node graph: each run appends a message (and writes a checkpoint per step)."""
    builder = StateGraph(MessagesState)
    builder.add_node("say", lambda state: {"messages": [("ai", f"turn {len(state['messages'])}")]})
    builder.add_edge(START, "say")
    builder.add_edge("say", END)
    return builder.compile(checkpointer=saver)


def checkpoint_ids(saver: SqliteSaver, thread_id: str) -> list[str]:
    rows = saver.conn.execute("SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? ORDER BY checkpoint_id",
                              (thread_id,)).fetchall()
    return [row[0] for row in rows]


def writes_of(saver: SqliteSaver, thread_id: str) -> set[str]:
    rows = saver.conn.execute("SELECT checkpoint_id FROM writes WHERE thread_id = ?", (thread_id,)).fetchall()
    return {row[0] for row in rows}


def test_keep_latest_leaves_the_latest_checkpoint_its_writes_and_other_threads(saver):
    graph = counter_graph(saver)
    config = {"configurable": {"thread_id": "t", "actor_id": "alice"}}
    for prompt in ("one", "two", "three"):
        graph.invoke({"messages": [("human", prompt)]}, config)
    graph.invoke({"messages": [("human", "other")]}, {"configurable": {"thread_id": "u"}})
    ids = checkpoint_ids(saver, "t")
    latest = saver.get_tuple({"configurable": {"thread_id": "t", "checkpoint_ns": ""}})
    assert len(ids) > 1 and latest.config["configurable"]["checkpoint_id"] == ids[-1]  # the highest id is the latest
    saver.put_writes(latest.config, [("messages", [])], "pending-task")  # the latest's pending writes must stay
    older = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": ids[0]}}
    saver.put_writes(older, [("messages", [])], "old-task")
    others = (checkpoint_ids(saver, "u"), writes_of(saver, "u"))

    with saver.cursor() as cur:
        sqlite_tables.keep_latest(cur, "t")

    assert checkpoint_ids(saver, "t") == [ids[-1]] and writes_of(saver, "t") == {ids[-1]}
    kept = saver.get_tuple({"configurable": {"thread_id": "t", "checkpoint_ns": ""}})
    assert kept.checkpoint["channel_values"] == latest.checkpoint["channel_values"]
    assert [write[0] for write in kept.pending_writes] == ["pending-task"]
    assert (checkpoint_ids(saver, "u"), writes_of(saver, "u")) == others
    assert [m.content for m in graph.get_state(config).values["messages"]][-2:] == ["three", "turn 5"]


def test_latest_actor_is_the_actor_langgraph_wrote_into_the_checkpoint_metadata(saver):
    graph = counter_graph(saver)
    graph.invoke({"messages": [("human", "hi")]}, {"configurable": {"thread_id": "t", "actor_id": "alice"}})
    graph.invoke({"messages": [("human", "hi")]}, {"configurable": {"thread_id": "anonymous"}})
    assert sqlite_tables.latest_actor(saver.conn, "t") == "alice", (
        f"{PINNED}: the run config's actor_id is no longer in the checkpoint's metadata (JSON text)")
    assert sqlite_tables.latest_actor(saver.conn, "anonymous") is None
    assert sqlite_tables.latest_actor(saver.conn, "never-used") is None
