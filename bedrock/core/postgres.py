"""MEMORY_BACKEND=postgres: sessions in PostgreSQL, shared by every replica — the checkpoints (LangGraph's own
Postgres saver over a psycopg pool), each session's owner, and a lock per session that replicas honour.

Imported only when the backend is PostgreSQL: a cold start on any other backend loads no psycopg.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from langgraph.checkpoint.postgres import PostgresSaver

from bedrock.core.memory import ThreadedCalls
from bedrock.core.sessions import session_digest

logger = logging.getLogger(__name__)


def redacted(url: str) -> str:
    """A database URL without its password, for logs."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(url)
    except Exception:
        return "(a DATABASE_URL that could not be parsed)"
    params.pop("password", None)
    return make_conninfo(**{k: v for k, v in params.items() if v is not None})




class ThreadedPostgresSaver(ThreadedCalls, PostgresSaver):
    """langgraph-checkpoint-postgres's PostgresSaver over a psycopg connection pool, its async methods on as many
    threads as the pool has connections (ThreadedCalls), pruned with its own `prune`.

    PostgresSaver takes a process-wide lock around every call, there for one connection shared by threads; with a
    pool each call has a connection of its own, so the lock is a no-op here and sessions do not wait on each other.
    """

    _thread_name = "postgres"

    @classmethod
    def open(cls, url: str, pool_size: int) -> "ThreadedPostgresSaver":
        """Connect a pool of up to `pool_size` connections to `url` and set the tables up (once, whichever replica
        starts first: the migrations run under an advisory lock, so replicas starting together do not collide)."""
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        try:  # one connection first: an unreachable database is one clear error, not a pool retrying for 30 s
            first = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.OperationalError as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ConnectionError(f"PostgreSQL at {redacted(url)} is unreachable: {reason}") from None
        with first:
            # The setup lock on its own connection (not the pool's: with a pool of one, setup would wait for it).
            first.execute("SELECT pg_advisory_lock(%s)", (SETUP_LOCK,))
            pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True, name="checkpoints", timeout=30,
                                  kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row})
            saver = cls(pool)
            saver.lock = contextlib.nullcontext()  # type: ignore[assignment]
            saver._threads = pool_size
            try:
                saver.setup()
            except BaseException:
                pool.close()
                raise
            finally:
                first.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))
        return saver

    def close(self) -> None:
        """Close the pool (after the calls already queued)."""
        self._stop_threads()
        self.conn.close()  # type: ignore[union-attr]


SETUP_LOCK = 0x6C67_6163_7365_7475  # an advisory lock key of our own ("lgacsetu"), held while tables are set up
CONNECT_TIMEOUT_S = 10


class PostgresOwners:
    """A `session_owners` table beside the checkpoints: one atomic `INSERT … ON CONFLICT DO NOTHING` per claim,
    so two replicas racing to create a session agree on its owner."""

    def __init__(self, saver: ThreadedPostgresSaver) -> None:
        self.saver = saver
        with saver.conn.connection() as conn:  # type: ignore[union-attr]
            conn.execute("CREATE TABLE IF NOT EXISTS session_owners (session_id TEXT PRIMARY KEY, "
                         "actor_id TEXT NOT NULL, claimed_at TIMESTAMPTZ NOT NULL)")

    def _claim(self, session_id: str, actor_id: str) -> str:
        with self.saver.conn.connection() as conn:  # type: ignore[union-attr]
            conn.execute("INSERT INTO session_owners (session_id, actor_id, claimed_at) VALUES (%s, %s, %s) "
                         "ON CONFLICT (session_id) DO NOTHING", (session_id, actor_id, datetime.now(timezone.utc)))
            row = conn.execute("SELECT actor_id FROM session_owners WHERE session_id = %s", (session_id,)).fetchone()
            return row["actor_id"]

    async def claim(self, session_id: str, actor_id: str) -> str:
        return await self.saver.call(self._claim, session_id, actor_id)


def lock_key(session_id: str) -> int:
    """A session's advisory lock key: 64 bits of its hash, as PostgreSQL's signed bigint."""
    return session_digest(session_id, 8, signed=True)


class AdvisoryLocks:
    """Sessions locked across replicas with PostgreSQL advisory locks, all held on one connection of this process.

    One connection, not one per running turn: 200 turns on each of 3 replicas would otherwise hold 600
    connections (PostgreSQL allows 100 by default). A session-level advisory lock lives as long as the connection
    that took it, so when a replica dies — even by `kill -9` — the server drops its connection and frees every
    session it held at once. Calls run in order on one thread of their own (a release queued before a later
    try of the same session runs first); `try_acquire` never blocks, so the caller can give up and be cancelled.
    If the connection breaks, the locks it held are gone: that is logged, and the next call reconnects.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="session-locks")
        self._conn: Any = None
        self._held: set[int] = set()  # keys this process holds (only touched on the lock thread)

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            if self._held:
                logger.warning("the session-lock connection was lost with %d sessions locked", len(self._held))
                self._held.clear()
            self._conn = psycopg.connect(self.url, autocommit=True, prepare_threshold=0)
        return self._conn

    def _try(self, key: int) -> bool:
        if key in self._held:
            # Advisory locks are re-entrant per connection: a turn of this process on another event loop holds it.
            return False
        try:
            got = self._connection().execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
        except Exception:
            self._drop()
            raise
        if got:
            self._held.add(key)
        return bool(got)

    def _unlock(self, key: int) -> None:
        if key not in self._held:
            return  # lost with a broken connection: the server has freed it already
        self._held.discard(key)
        try:
            self._connection().execute("SELECT pg_advisory_unlock(%s)", (key,))
        except Exception:
            logger.exception("could not unlock a session; dropping the lock connection frees it")
            self._drop()

    def _drop(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()
        self._conn = None
        self._held.clear()

    async def try_acquire(self, session_id: str) -> bool:
        """Lock the session for this process if no other process holds it; never waits for it."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._try, lock_key(session_id))

    def release(self, session_id: str) -> None:
        """Unlock the session (queued on the lock thread: returns at once, from any thread or loop)."""
        self._executor.submit(self._unlock, lock_key(session_id))

    def close(self) -> None:
        """Run the queued releases, then close the connection (which frees anything still held)."""
        self._executor.shutdown(wait=True)
        self._drop()
