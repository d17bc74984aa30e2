"""open_store(settings): the backend the settings name — the one place a backend is chosen."""

from __future__ import annotations

import logging

from bedrock.config import Settings
from bedrock.store.base import Store
from bedrock.store.long_term import LongTermOptions

logger = logging.getLogger(__name__)


def memory_backend(settings: Settings) -> str:
    """The backend to use: MEMORY_BACKEND if set, else agentcore when a memory id is set, else sqlite."""
    if settings.memory_backend:
        return settings.memory_backend
    return "agentcore" if settings.agentcore_memory_id else "sqlite"


def open_store(settings: Settings, long_term: LongTermOptions | None = None) -> Store:
    """The configured backend, opened, with the actors' long-term memory made with `long_term` (None: none). AgentCore
    Memory that cannot be used is logged, and SQLite used instead: `agentcore launch` deploys without memory when
    creating it fails, and the agent must still serve.

    Each backend's module is imported only when chosen: a cold start loads no psycopg, no
    langgraph-checkpoint-aws, unless it uses them."""
    backend = memory_backend(settings)
    if backend == "agentcore":
        store = _agentcore(settings, long_term)
        if store is not None:
            return store
        backend = "sqlite"
    if backend == "memory":
        return _in_process(long_term)
    if backend == "postgres":
        return _postgres(settings, long_term)
    return _sqlite(settings, long_term)


def _agentcore(settings: Settings, long_term: LongTermOptions | None) -> Store | None:
    """AgentCore Memory, or None (logged) when it cannot be used."""
    if not settings.agentcore_memory_id:
        logger.warning("MEMORY_BACKEND=agentcore but no memory id is set; using SQLite")
        return None
    try:
        from bedrock.store.agentcore import AgentCoreStore

        store = AgentCoreStore.open(settings.agentcore_memory_id, settings.aws_region, long_term)
    except Exception:
        logger.exception("AgentCore Memory %s is unusable; using SQLite", settings.agentcore_memory_id)
        return None
    logger.info("session memory: AgentCore Memory %s", settings.agentcore_memory_id)
    return store


def _in_process(long_term: LongTermOptions | None) -> Store:
    from bedrock.store.in_process import InProcessStore

    logger.info("session memory: in-process (lost on restart)")
    return InProcessStore.open(long_term)


def _postgres(settings: Settings, long_term: LongTermOptions | None) -> Store:
    # Imported here: only PostgreSQL deployments pay for psycopg and its saver.
    from bedrock.store.postgres import PostgresStore, redacted

    # A connection per invocation slot at most: a turn's memory calls never queue behind other sessions'.
    store = PostgresStore.open(settings.database_url, settings.max_concurrent_invocations, long_term)
    logger.info("session memory: PostgreSQL at %s", redacted(settings.database_url))
    return store


def _sqlite(settings: Settings, long_term: LongTermOptions | None) -> Store:
    from bedrock.store.sqlite import SqliteStore

    logger.info("session memory: SQLite at %s", settings.memory_path)
    return SqliteStore.open(settings.memory_path, long_term)
