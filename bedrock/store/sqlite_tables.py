"""Every statement this package runs on LangGraph's own SQLite tables (`checkpoints`, `writes`: made by
langgraph-checkpoint-sqlite's `SqliteSaver.setup`), each with why no saver API serves.

They rely on the pinned saver's schema: the columns in RELIED_ON, a checkpoint's id sorting as its time (uuid6: the
saver's own `ORDER BY checkpoint_id DESC` reads the highest as the latest), a write belonging to the checkpoint of
the same (thread_id, checkpoint_ns, checkpoint_id), and `metadata` being JSON text. tests/store/test_sqlite_tables.py
fails if any of that changes, and if the saver grows a `prune` of its own (then use it instead).

Our own tables (`session_owners`) and the database's pragmas are not LangGraph's: they are in `sqlite.py`.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

# What the statements below read or write, table by table.
RELIED_ON: dict[str, tuple[str, ...]] = {
    "checkpoints": ("thread_id", "checkpoint_ns", "checkpoint_id", "metadata"),
    "writes": ("thread_id", "checkpoint_ns", "checkpoint_id"),
}

# Prune to the latest checkpoint. Why SQL: SqliteSaver (langgraph-checkpoint-sqlite 3.1.2) has no `prune` (the base
# class's raises NotImplementedError) and no call that deletes one checkpoint; `delete_thread` deletes them all.
# Safe here because the graph has no DeltaChannel (one rebuilds its value from older checkpoints' writes).
DROP_SUPERSEDED_CHECKPOINTS = (
    "DELETE FROM checkpoints WHERE thread_id = ?1 AND checkpoint_id < "
    "(SELECT MAX(checkpoint_id) FROM checkpoints AS c WHERE c.thread_id = ?1 "
    "AND c.checkpoint_ns = checkpoints.checkpoint_ns)"
)
# The writes of the checkpoints just dropped (a kept checkpoint's pending writes stay: a resume reads them).
DROP_ORPHANED_WRITES = (
    "DELETE FROM writes WHERE thread_id = ?1 AND NOT EXISTS (SELECT 1 FROM checkpoints AS c "
    "WHERE c.thread_id = ?1 AND c.checkpoint_ns = writes.checkpoint_ns "
    "AND c.checkpoint_id = writes.checkpoint_id)"
)


def keep_latest(cur: sqlite3.Cursor, thread_id: str) -> None:
    """Drop the thread's checkpoints but the latest of each namespace, and their writes (in the caller's
    transaction: the saver's `cursor()`)."""
    cur.execute(DROP_SUPERSEDED_CHECKPOINTS, (thread_id,))
    cur.execute(DROP_ORPHANED_WRITES, (thread_id,))


# The actor a session's latest checkpoint names (LangGraph copies the run config's `actor_id` into each checkpoint's
# metadata): the owner of a session stored before owners were recorded. Why SQL: `SqliteSaver.list(limit=1)` would
# serve, but it unpickles the checkpoint (the whole conversation) and loads its writes to read one metadata field:
# 6.3 ms against 52 µs for a 100-message session, and 98 against 37 µs for a new one (no checkpoint) — which is
# every new session's first claim, and every owner read of a session nobody has claimed.
LATEST_METADATA = (
    "SELECT metadata FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' "
    "ORDER BY checkpoint_id DESC LIMIT 1"
)


def latest_actor(conn: sqlite3.Connection, thread_id: str) -> str | None:
    """The `actor_id` in the metadata of the thread's latest checkpoint, if it has one (in the caller's
    transaction: a claim reads it and writes the owner atomically)."""
    latest = conn.execute(LATEST_METADATA, (thread_id,)).fetchone()
    return _metadata_actor(latest[0]) if latest else None


def _metadata_actor(raw: Any) -> str | None:
    try:
        actor = json.loads(raw).get("actor_id")
    except (ValueError, TypeError, AttributeError):
        return None
    return actor if isinstance(actor, str) and actor else None
