"""MEMORY_BACKEND=sqlite (the default): sessions in one SQLite file — LangGraph's SQLite saver (loop-agnostic,
inline when free, pruned), the owners in a table of the same file, and a byte-range lock per session in
`<file>.locks` for the processes on one host that share it."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.store.base import Op, PutOp, Result, SearchOp
from langgraph.store.sqlite import SqliteStore as LangGraphSqliteStore

from bedrock.store import sqlite_tables
from bedrock.store.base import Store
from bedrock.store.long_term import LongTermOptions
from bedrock.store.locks import session_digest
from bedrock.store.threaded import ThreadedCalls

logger = logging.getLogger(__name__)
T = TypeVar("T")


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
    processes read meanwhile; their turns of a session wait for a file lock (FileLocks).
    """

    _thread_name = "sqlite"
    CHECKPOINT_EVERY = 256  # inline calls between WAL checkpoints (~100 turns; SQLite's own default: 4 MB of WAL)

    @classmethod
    def open(cls, path: str | Path) -> ThreadedSqliteSaver:
        """Open (creating folders and tables on demand) the database at `path`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # ours, on the saver's thread (see the class's docstring)
        saver = cls(conn)
        # Reentrant: an inline call holds it around the saver's own `with self.lock`.
        saver.lock = threading.RLock()  # type: ignore[assignment]  # declared a Lock: SqliteSaver only enters it
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
                sqlite_tables.keep_latest(cur, thread_id)

    def close(self) -> None:
        """Close the database connection (after the calls already queued, and a last WAL checkpoint)."""
        self._stop_threads()
        with self.lock:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                logger.warning("could not checkpoint the WAL on close", exc_info=True)
            self.conn.close()


class SqliteOwners:
    """A `session_owners` table in the saver's own database file: one atomic INSERT OR IGNORE per claim.

    Sessions stored before owners were recorded are claimed for the actor their latest checkpoint names
    (LangGraph writes the run config's `actor_id` into each checkpoint's metadata; `sqlite_tables.latest_actor`),
    not for whoever asks first.
    """

    def __init__(self, saver: ThreadedSqliteSaver) -> None:
        self.saver = saver
        with saver.lock, saver.conn:
            saver.conn.execute(
                "CREATE TABLE IF NOT EXISTS session_owners (session_id TEXT PRIMARY KEY, actor_id TEXT NOT NULL, "
                "claimed_at TEXT NOT NULL)"
            )

    def _claim(self, session_id: str, actor_id: str) -> str:
        with self.saver.lock, self.saver.conn as conn:
            row = conn.execute("SELECT actor_id FROM session_owners WHERE session_id = ?", (session_id,)).fetchone()
            if row:
                return row[0]
            owner = sqlite_tables.latest_actor(conn, session_id) or actor_id
            conn.execute(
                "INSERT OR IGNORE INTO session_owners (session_id, actor_id, claimed_at) VALUES (?, ?, ?)",
                (session_id, owner, datetime.now(UTC).isoformat()),
            )
            return conn.execute("SELECT actor_id FROM session_owners WHERE session_id = ?", (session_id,)).fetchone()[0]

    def _owner(self, session_id: str) -> str | None:
        with self.saver.lock, self.saver.conn as conn:
            row = conn.execute("SELECT actor_id FROM session_owners WHERE session_id = ?", (session_id,)).fetchone()
            return row[0] if row else sqlite_tables.latest_actor(conn, session_id)

    async def claim(self, session_id: str, actor_id: str) -> str:
        return await self.saver.call(self._claim, session_id, actor_id)

    async def owner(self, session_id: str) -> str | None:
        return await self.saver.call(self._owner, session_id)


class FileLocks:
    """SessionLocks across processes sharing one SQLite file: POSIX byte-range locks on `<file>.locks`.

    One file and one descriptor per process, each session a byte at an offset from its hash (48 bits: two
    sessions share a byte once in ~10^14 pairs, and then only wait for each other). The kernel drops a process's
    locks when it exits, however it exits. Non-blocking calls, a few µs each: made inline on the event loop.
    Hand-written: filelock and portalocker lock whole files, one per key, and leave the files behind.
    POSIX locks belong to the process, not the descriptor, so this one descriptor is never closed early (closing
    any descriptor of the file would drop them all); within the process the asyncio locks keep turns apart.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        # POSIX locks are the process's, so a second lockf of a byte it holds succeeds: held bytes are tracked
        # here too (one release must not free a byte another turn of this process still counts on).
        self._held: set[int] = set()
        self._guard = threading.Lock()

    @staticmethod
    def _offset(session_id: str) -> int:
        return session_digest(session_id, 6)

    def try_acquire(self, session_id: str) -> bool:
        offset = self._offset(session_id)
        with self._guard:
            if offset in self._held:  # this process holds it already (a turn on another event loop): wait too
                return False
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
            except (BlockingIOError, PermissionError):
                return False
            self._held.add(offset)
            return True

    def release(self, session_id: str) -> None:
        offset = self._offset(session_id)
        with self._guard:
            self._held.discard(offset)
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, offset)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SqliteMemories(LangGraphSqliteStore):
    """LangGraph's SqliteStore on a connection of its own to the sessions' file, its async calls on the loop's
    executor (LangGraph's async one, AsyncSqliteStore, is bound to the loop that made it: see store/threaded.py)."""

    @classmethod
    def open(cls, path: str | Path, options: LongTermOptions) -> SqliteMemories:
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 5000")
        index = options.index()
        if index is not None and not hasattr(conn, "enable_load_extension"):
            logger.warning("long-term memory: this Python's sqlite3 cannot load extensions (sqlite-vec), so SQLite "
                           "memories are found by recency, not meaning")
            index = None
        store = cls(conn, index=index, ttl=options.ttl())
        store.lock = threading.RLock()  # type: ignore[assignment]  # reentrant: an inline call holds it around batch's
        try:
            store.setup()
            if store.ttl_config:
                store.start_ttl_sweeper()
        except BaseException:
            conn.close()
            raise
        return store

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Inline when the connection is free and nothing needs embedding (a read of a local file: ~0.1 ms, less than
        the hop to a thread), as the saver's calls are; else on the loop's executor (an embedding is a network call)."""
        ops = list(ops)
        if not self._embeds(ops) and self.lock.acquire(blocking=False):
            try:
                return self.batch(ops)
            finally:
                self.lock.release()
        return await asyncio.get_running_loop().run_in_executor(None, self.batch, ops)

    def _embeds(self, ops: list[Op]) -> bool:
        return self.index_config is not None and any(
            (isinstance(op, PutOp) and op.value is not None and op.index is not False)
            or (isinstance(op, SearchOp) and op.query) for op in ops)

    def close(self) -> None:
        if self.ttl_config:
            self.stop_ttl_sweeper(timeout=5)
        self.conn.close()


class SqliteStore(Store):
    """The SQLite file at AGENT_MEMORY_PATH: its saver, its owners table, and `<file>.locks` for the other
    processes on this host that serve from it."""

    backend = "sqlite"
    checkpointer: ThreadedSqliteSaver

    @classmethod
    def open(cls, path: str | Path, long_term: LongTermOptions | None = None) -> SqliteStore:
        """Open (creating folders and tables on demand) the database at `path`, and its lock file beside it; the
        actors' memories (`long_term`) in the same file."""
        saver = ThreadedSqliteSaver.open(path)
        memories = None
        try:
            memories = SqliteMemories.open(path, long_term) if long_term is not None else None
            return cls(saver, SqliteOwners(saver), FileLocks(f"{path}.locks"), memories)
        except BaseException:
            if memories is not None:
                memories.close()
            saver.close()
            raise

    def close_long_term(self) -> None:
        if isinstance(self.long_term, SqliteMemories):
            self.long_term.close()

    def close_checkpointer(self) -> None:
        self.checkpointer.close()
