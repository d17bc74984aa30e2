"""Long-term memory's store, per backend: LangGraph's own stores, with semantic search and expiry where the backend
has them (what the runtime shows a turn of them is bedrock/core/memory.py).

    in-process   InMemoryStore: semantic search (LangGraph's, in Python); no expiry (it dies with the process)
    SQLite       LangGraph's SqliteStore in the sessions' file: expiry; semantic search where this Python's sqlite3
                 can load extensions (sqlite-vec): the official python images' can, pyenv's default build cannot
    PostgreSQL   LangGraph's PostgresStore on the sessions' pool: expiry; semantic search where the server has the
                 `vector` extension (pgvector: RDS and Aurora do; Debian 12's PostgreSQL does not package it)

Without semantic search a search's `query` is not used: the newest memories come first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langgraph.store.base import IndexConfig, TTLConfig
from langgraph.store.memory import InMemoryStore

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langgraph.store.postgres import PostgresStore
    from psycopg_pool import ConnectionPool

logger = logging.getLogger(__name__)

# How often an expiring store deletes what expired: hourly is ample for a TTL counted in days.
SWEEP_MINUTES = 60


@dataclass(frozen=True)
class LongTermOptions:
    """What every backend's store is made with: `embeddings` for semantic search (None: none), their `dims`, the
    `fields` of a value they embed, and `ttl_days` (0: kept until forgotten; else forgotten that long after last
    written, or read if `refresh_on_read`), swept every `sweep_minutes`."""

    embeddings: Embeddings | None = None
    dims: int = 1024
    ttl_days: float = 0.0
    # "$": the whole value is embedded, whatever fields a user's graph gives its memories (langgraph.json's
    # `store.index.fields` names others).
    fields: tuple[str, ...] = ("$",)
    refresh_on_read: bool = True
    sweep_minutes: int = SWEEP_MINUTES

    def index(self) -> IndexConfig | None:
        if self.embeddings is None:
            return None
        return {"dims": self.dims, "embed": self.embeddings, "fields": list(self.fields)}

    def ttl(self) -> TTLConfig | None:
        if self.ttl_days <= 0:
            return None
        return {"default_ttl": self.ttl_days * 24 * 60, "refresh_on_read": self.refresh_on_read,
                "sweep_interval_minutes": self.sweep_minutes}


def in_process(options: LongTermOptions) -> InMemoryStore:
    return InMemoryStore(index=options.index())


def postgres(pool: ConnectionPool[Any], options: LongTermOptions) -> PostgresStore:
    """LangGraph's PostgresStore on `pool`, its tables set up (call under the setup lock)."""
    from langgraph.store.postgres import PostgresStore

    index = options.index()
    if index is not None and not _has_pgvector(pool):
        logger.warning("long-term memory: this PostgreSQL has no `vector` extension (pgvector), so memories are found "
                       "by recency, not meaning")
        index = None
    store = PostgresStore(pool, index=index, ttl=options.ttl())  # type: ignore[arg-type]  # its PostgresIndexConfig
    store.setup()
    if store.ttl_config:
        store.start_ttl_sweeper()
    return store


def _has_pgvector(pool: ConnectionPool[Any]) -> bool:
    with pool.connection() as conn:
        row = conn.execute("SELECT 1 AS found FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    return row is not None
