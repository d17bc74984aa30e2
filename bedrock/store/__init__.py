"""Where sessions are kept: one Store per backend — in-process, SQLite, PostgreSQL, AgentCore Memory — each with
its checkpointer, its sessions' owners, its lock across processes (or none) and `close()`; `open_store(settings)`
picks one from the settings alone.

Below `core`: it never imports `bedrock.core` or `bedrock.server` (only `bedrock.config`; `bedrock.errors` would
do). Modules: `base` (Store, OwnerStore), `locks` (SharedLocks), `backends` (open_store), `threaded` (a sync saver's
async calls on threads of its own), one module per backend (`in_process`, `sqlite`, `postgres`, `agentcore`), and
`sqlite_tables` (every statement on LangGraph's own SQLite tables).
"""

from bedrock.store.backends import open_store
from bedrock.store.base import Store

__all__ = ["Store", "open_store"]
