"""make_checkpointer(settings): where sessions' histories live — AgentCore Memory, SQLite, or RAM."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, AsyncIterator, Callable, Sequence, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from bedrock.config import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")


class ThreadedCalls:
    """A sync LangGraph saver's async methods, run on the saver's own worker threads.

    Why not the libraries' async savers (AsyncSqliteSaver, AsyncPostgresSaver): they bind to the event loop they
    were created on (aiosqlite's thread, psycopg's async pool). This package serves from uvicorn's loop but also
    runs turns from callers' own loops (`invoke_agent` makes a new one per call), so one loop-agnostic saver
    serves them all. Its calls run on threads of its own, not the loop's default executor: on the shared pool 100
    turns' waiting calls each held a thread (the pool grew by the peak and never shrank: 25 → 109 threads over
    four rounds of stuck clients, bench/soak.py).
    """

    _executor: ThreadPoolExecutor | None = None
    _calls = 0
    _threads = 1
    _thread_name = "saver"

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)`, a call that uses the saver's connections: on the saver's own threads."""
        return await self.call_in_thread(fn, *args, **kwargs)

    async def call_in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool(), partial(fn, *args, **kwargs))

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix=self._thread_name)
        return self._executor

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self.call(self.get_tuple, config)  # type: ignore[attr-defined]

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        items = await self.call(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit)))  # type: ignore[attr-defined]
        for item in items:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self.call(self.put, config, checkpoint, metadata, new_versions)  # type: ignore[attr-defined]

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await self.call(self.put_writes, config, writes, task_id, task_path)  # type: ignore[attr-defined]

    async def adelete_thread(self, thread_id: str) -> None:
        await self.call(self.delete_thread, thread_id)  # type: ignore[attr-defined]

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self.call(self.prune, thread_ids, strategy=strategy)  # type: ignore[attr-defined]

    def _stop_threads(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)


class ThreadedSqliteSaver(ThreadedCalls, SqliteSaver):
    """langgraph-checkpoint-sqlite's SqliteSaver; its async calls run inline when its connection is free, else on
    one thread of its own (ThreadedCalls).

    Inline: a turn's calls (read the session, write its checkpoint, prune, claim its owner) each take tens to a
    few hundred microseconds here, and a hop to a thread and back cost more than the call — two context switches
    and a loop wake-up each, ~1.5 ms of server CPU a turn with five of them (bench/capacity.py, SQLite against
    in-process memory). What could take long never runs inline: the connection busy with another thread's call
    (a turn on another event loop), and the WAL checkpoint — the one step that waits for the disk — which runs on
    the saver's thread every CHECKPOINT_EVERY calls instead of inside a commit.

    Durability: WAL with `synchronous=NORMAL`. A commit is then written to the WAL but not flushed to the disk
    until the next WAL checkpoint: a process that crashes or is killed loses nothing (the OS has the pages); an
    OS crash or power loss can lose the turns since the last checkpoint (~100 turns at most), never
    corrupt the file. On AgentCore a session's storage does not outlive its microVM anyway.
    One connection and one thread: SqliteSaver serialises every call on its connection's lock. WAL lets other
    processes read meanwhile; their turns of a session wait for a file lock (bedrock/core/sessions.py).
    """

    _thread_name = "sqlite"
    CHECKPOINT_EVERY = 256  # inline calls between WAL checkpoints (~100 turns; SQLite's own default: 4 MB of WAL)

    @classmethod
    def open(cls, path: str | Path) -> "ThreadedSqliteSaver":
        """Open (creating folders and tables on demand) the database at `path`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # ours, on the saver's thread (see the class's docstring)
        saver = cls(conn)
        # Reentrant: an inline call holds it around the saver's own `with self.lock`.
        saver.lock = threading.RLock()  # type: ignore[assignment]
        saver._calls = 0
        saver.setup()
        return saver

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if not self.lock.acquire(blocking=False):  # busy: wait on the saver's thread, never on the event loop
            return await self.call_in_thread(fn, *args, **kwargs)
        try:
            return fn(*args, **kwargs)
        finally:
            self.lock.release()
            self._calls += 1
            if self._calls >= self.CHECKPOINT_EVERY:
                self._calls = 0
                self._pool().submit(self.checkpoint_wal)

    def checkpoint_wal(self) -> None:
        """Copy the WAL into the database and flush it (PASSIVE: readers in other processes are never waited for)."""
        try:
            with self.lock:
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            logger.exception("WAL checkpoint failed (retried after the next writes)")

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only each thread's latest checkpoint (and its writes), or delete the threads.

        Every checkpoint holds the whole history, so keeping them all grows storage with the square of
        a session's length (2.5 MB at turn 50 here, against 0.1 MB kept latest-only).
        """
        if strategy == "delete":
            for thread_id in thread_ids:
                self.delete_thread(thread_id)
            return
        if strategy != "keep_latest":
            raise ValueError(f"unknown prune strategy {strategy!r}")
        with self.cursor() as cur:
            for thread_id in thread_ids:
                cur.execute(
                    "DELETE FROM checkpoints WHERE thread_id = ?1 AND checkpoint_id < "
                    "(SELECT MAX(checkpoint_id) FROM checkpoints AS c WHERE c.thread_id = ?1 "
                    "AND c.checkpoint_ns = checkpoints.checkpoint_ns)",
                    (thread_id,),
                )
                cur.execute(
                    "DELETE FROM writes WHERE thread_id = ?1 AND NOT EXISTS (SELECT 1 FROM checkpoints AS c "
                    "WHERE c.thread_id = ?1 AND c.checkpoint_ns = writes.checkpoint_ns "
                    "AND c.checkpoint_id = writes.checkpoint_id)",
                    (thread_id,),
                )

    def close(self) -> None:
        """Close the database connection (after the calls already queued, and a last WAL checkpoint)."""
        self._stop_threads()
        with self.lock:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                logger.warning("could not checkpoint the WAL on close", exc_info=True)
            self.conn.close()


def memory_backend(settings: Settings) -> str:
    """The backend to use: MEMORY_BACKEND if set, else agentcore when a memory id is set, else sqlite."""
    if settings.memory_backend:
        return settings.memory_backend
    return "agentcore" if settings.agentcore_memory_id else "sqlite"


def make_checkpointer(settings: Settings) -> BaseCheckpointSaver:
    """The configured checkpointer. AgentCore Memory that cannot be used is logged, and SQLite used instead:
    `agentcore launch` deploys without memory when creating it fails, and the agent must still serve."""
    backend = memory_backend(settings)
    if backend == "agentcore":
        if settings.agentcore_memory_id:
            try:
                # Imported here: only AgentCore Memory deployments pay for langgraph-checkpoint-aws.
                from langgraph_checkpoint_aws import AgentCoreMemorySaver

                saver = AgentCoreMemorySaver(settings.agentcore_memory_id, region_name=settings.aws_region)
                logger.info("session memory: AgentCore Memory %s", settings.agentcore_memory_id)
                return saver
            except Exception:
                logger.exception("AgentCore Memory %s is unusable; using SQLite", settings.agentcore_memory_id)
        else:
            logger.warning("MEMORY_BACKEND=agentcore but no memory id is set; using SQLite")
        backend = "sqlite"
    if backend == "memory":
        logger.info("session memory: in-process (lost on restart)")
        return InMemorySaver()
    if backend == "postgres":
        # A connection per invocation slot at most: a turn's memory calls never queue behind other sessions'.
        # Imported here: only PostgreSQL deployments pay for psycopg and its saver.
        from bedrock.core.postgres import ThreadedPostgresSaver, redacted

        saver = ThreadedPostgresSaver.open(settings.database_url, settings.max_concurrent_invocations)
        logger.info("session memory: PostgreSQL at %s", redacted(settings.database_url))
        return saver
    logger.info("session memory: SQLite at %s", settings.memory_path)
    return ThreadedSqliteSaver.open(settings.memory_path)
