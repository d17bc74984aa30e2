"""MEMORY_BACKEND=postgres: sessions in PostgreSQL, shared by every replica — the checkpoints (LangGraph's own
Postgres saver over a psycopg pool), each session's owner, and a lock per session that replicas honour.

Imported only when the backend is PostgreSQL (`open_store`): a cold start on any other backend loads no psycopg.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from langgraph.checkpoint.postgres import PostgresSaver
from psycopg import Connection  # loaded by PostgresSaver's module already, as are the two below
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

from bedrock.store.base import Store
from bedrock.store.long_term import LongTermOptions, postgres
from bedrock.store.locks import session_digest
from bedrock.store.threaded import ThreadedCalls

logger = logging.getLogger(__name__)


def redacted(url: str) -> str:
    """A database URL without its password, for logs."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(url)
    except Exception:
        return "(a DATABASE_URL that could not be parsed)"
    params.pop("password", None)
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def has_input(conn: Any) -> bool:
    """Whether the server has sent an idle connection anything (or closed it): a zero-timeout poll of its socket,
    2.5 µs.

    Idle in autocommit, a connection is sent nothing unasked unless its server ends it: a restart, a failover,
    `pg_terminate_backend`, `idle_session_timeout` send a FATAL error (AdminShutdown…) and close; a crash closes.
    Either makes the socket readable (seen after `pg_ctl stop -m fast`, `-m immediate` and
    `pg_terminate_backend`). A notice would too, so a readable connection is then asked (`CheckpointPool`).
    """
    if conn.closed:
        return True
    poller = select.poll()  # not select.select: a descriptor above 1023 is fine
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class CheckpointPool(ConnectionPool[Connection[DictRow]]):  # rows as dicts: what PostgresSaver reads
    """The checkpoints' connection pool: a connection its server has ended is never handed to a turn.

    After a database restart every idle connection of the pool is dead. Unchecked, each was handed to a turn
    that failed with it (`memory_unavailable`): a pool grown to k connections cost up to k failed turns.
    psycopg_pool's own `check=ConnectionPool.check_connection` asks the server at every `getconn`: a round trip,
    getconn + putconn 94–128 µs instead of 12–18 µs on loopback (a network's round trip in production, 0.2–1 ms),
    and a turn takes 4 connections (5 for a new session, 9–14 with CHECKPOINT_DURABILITY=sync): 0.4 ms a turn here,
    up to 14 ms across a network. Worse, its `getconn` sleeps between dead connections (0, 1, 2, 4 s…): with 2, 3,
    4 dead idle ones the first turn after a restart waited 1.0, 3.2, 7.0 s (psycopg_pool 3.3.3); with 6, 31 s,
    past the pool's 30 s timeout. So the check here is `has_input` (2.5 µs), a round trip only for a connection
    the server has sent something; if that one is dead, every idle connection is checked and the dead ones
    replaced at once (`check()`: a round trip each, once per restart), so a `getconn` meets one dead connection
    at most and never backs off (12 turns at once after a restart with 7–10 dead idle connections: all served,
    0.3 s).
    """

    def __init__(self, conninfo: str, **kwargs: Any) -> None:
        super().__init__(conninfo, check=self._check_handed_out, **kwargs)

    def _check_handed_out(self, conn: Any) -> None:
        if not has_input(conn):
            return
        try:
            self.check_connection(conn)  # a notice leaves it usable; an ended connection raises
        except Exception:
            logger.warning("a checkpoint connection was ended by the server; replacing the pool's dead ones")
            self.check()
            raise


class ThreadedPostgresSaver(ThreadedCalls, PostgresSaver):
    """langgraph-checkpoint-postgres's PostgresSaver over a psycopg connection pool, its async methods on as many
    threads as the pool has connections (ThreadedCalls), pruned with its own `prune`.

    PostgresSaver takes a process-wide lock around every call, there for one connection shared by threads; with a
    pool each call has a connection of its own, so the lock is a no-op here and sessions do not wait on each other.
    """

    _thread_name = "postgres"

    @classmethod
    def open(cls, url: str, pool_size: int,
             also: Callable[[ThreadedPostgresSaver], None] | None = None) -> ThreadedPostgresSaver:
        """Connect a pool of up to `pool_size` connections to `url` and set the tables up (once, whichever replica
        starts first: the migrations run under an advisory lock, so replicas starting together do not collide).
        `also` sets up more of them under the same lock: two `CREATE TABLE IF NOT EXISTS` of one table at once
        fail (a unique violation in PostgreSQL's catalog, 30 times in 30 tries here)."""
        import psycopg
        from psycopg.rows import dict_row

        try:  # one connection first: an unreachable database is one clear error, not a pool retrying for 30 s
            first = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.OperationalError as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ConnectionError(f"PostgreSQL at {redacted(url)} is unreachable: {reason}") from None
        with first:
            # The setup lock on its own connection (not the pool's: with a pool of one, setup would wait for it).
            _take_setup_lock(first, url)
            pool = CheckpointPool(url, min_size=1, max_size=pool_size, open=True, name="checkpoints", timeout=30,
                                  kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row})
            saver = cls(pool)
            saver.lock = contextlib.nullcontext()  # type: ignore[assignment]  # any context manager: it is only entered
            saver._threads = pool_size
            try:
                saver.setup()
                if also is not None:
                    also(saver)
            except BaseException:
                pool.close()
                raise
            finally:
                first.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))
        return saver

    def close(self) -> None:
        """Close the pool (after the calls already queued)."""
        self._stop_threads()
        self.conn.close()

    @property
    def pool(self) -> CheckpointPool:
        """The pool `open` made: PostgresSaver's `conn`, which its type also allows to be a lone connection."""
        assert isinstance(self.conn, CheckpointPool), self.conn
        return self.conn


SETUP_LOCK = 0x6C67_6163_7365_7475  # an advisory lock key of our own ("lgacsetu"), held while tables are set up
CONNECT_TIMEOUT_S = 10
SETUP_WAIT_S = 120.0  # how long a replica waits for another one's setup (a new database's: well under a second)
SETUP_POLL_S = 0.05


def _take_setup_lock(conn: Connection[Any], url: str) -> None:
    """Take SETUP_LOCK by trying, not by waiting in `pg_advisory_lock`: a replica waiting there is a transaction in
    progress, which the holder's CREATE INDEX CONCURRENTLY (LangGraph's migrations) waits for in turn — a deadlock
    PostgreSQL does not detect (two replicas starting together on a new database hung until one died). Each try is
    a transaction that ends at once, so the index never waits on it."""
    deadline = time.monotonic() + SETUP_WAIT_S
    while not conn.execute("SELECT pg_try_advisory_lock(%s)", (SETUP_LOCK,)).fetchone()[0]:  # type: ignore[index]  # a row, always
        if time.monotonic() > deadline:
            raise ConnectionError(f"PostgreSQL at {redacted(url)}: another replica has been setting the tables up "
                                  f"for over {SETUP_WAIT_S:g} s")
        time.sleep(SETUP_POLL_S)


class PostgresOwners:
    """A `session_owners` table beside the checkpoints: one atomic `INSERT … ON CONFLICT DO NOTHING` per claim,
    so two replicas racing to create a session agree on its owner."""

    def __init__(self, saver: ThreadedPostgresSaver) -> None:
        self.saver = saver

    @staticmethod
    def create_table(saver: ThreadedPostgresSaver) -> None:
        """The table, if missing: run under the setup lock (`ThreadedPostgresSaver.open`'s `also`)."""
        with saver.pool.connection() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS session_owners (session_id TEXT PRIMARY KEY, "
                         "actor_id TEXT NOT NULL, claimed_at TIMESTAMPTZ NOT NULL)")

    def _claim(self, session_id: str, actor_id: str) -> str:
        with self.saver.pool.connection() as conn:
            conn.execute("INSERT INTO session_owners (session_id, actor_id, claimed_at) VALUES (%s, %s, %s) "
                         "ON CONFLICT (session_id) DO NOTHING", (session_id, actor_id, datetime.now(UTC)))
            row = conn.execute("SELECT actor_id FROM session_owners WHERE session_id = %s", (session_id,)).fetchone()
            assert row is not None, session_id  # inserted just now, or by whoever claimed it first
            return row["actor_id"]

    def _owner(self, session_id: str) -> str | None:
        with self.saver.pool.connection() as conn:
            row = conn.execute("SELECT actor_id FROM session_owners WHERE session_id = %s", (session_id,)).fetchone()
            return row["actor_id"] if row else None

    async def claim(self, session_id: str, actor_id: str) -> str:
        return await self.saver.call(self._claim, session_id, actor_id)

    async def owner(self, session_id: str) -> str | None:
        return await self.saver.call(self._owner, session_id)


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
    If the connection breaks, the locks it held are gone: that is logged, and the next call reconnects — a try
    that finds it ended (a database restart) tries once more on a new one, and fails only if that fails too.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="session-locks")
        self._conn: Any = None
        self._held: set[int] = set()  # keys this process holds (only touched on the lock thread)

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._drop()
            # connect_timeout: a database that does not answer (a failover under way) would otherwise hold this
            # thread, and every session's lock call queued behind it, for the OS's TCP timeout (~130 s on Linux).
            self._conn = psycopg.connect(self.url, autocommit=True, prepare_threshold=0,
                                         connect_timeout=CONNECT_TIMEOUT_S)
        return self._conn

    def _try(self, key: int) -> bool:
        if key in self._held:
            # Advisory locks are re-entrant per connection: a turn of this process on another event loop holds it.
            return False
        fresh = self._conn is None or self._conn.closed
        conn = self._connection()
        try:
            got = self._try_on(conn, key)
        except Exception:
            if fresh or not conn.closed:
                raise  # a new connection failed (the database is down), or the query did: the turn's to report
            # The connection died since its last call: a database restart or failover, `pg_terminate_backend`.
            # Once, on a new one, so the first turn after a database that is back does not fail for it.
            logger.warning("the session-lock connection was ended by the server; reconnecting")
            got = self._try_on(self._connection(), key)
        if got:
            self._held.add(key)
        return got

    def _try_on(self, conn: Any, key: int) -> bool:
        try:
            return bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0])
        except Exception:
            self._drop()
            raise

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
        """Forget a connection that broke: the server frees every lock it held (said, if there were any)."""
        if self._held:
            logger.warning("the session-lock connection was lost with %d sessions locked", len(self._held))
        self._disconnect()

    def _disconnect(self) -> None:
        if self._conn is not None:
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
        self._disconnect()


class PostgresStore(Store):
    """One PostgreSQL database shared by every replica: the checkpoints on a pool, the owners table beside them,
    advisory locks on a connection of their own."""

    backend = "postgres"
    checkpointer: ThreadedPostgresSaver

    @classmethod
    def open(cls, url: str, pool_size: int, long_term: LongTermOptions | None = None) -> PostgresStore:
        """Connect to `url` (a pool of up to `pool_size` connections) and set the tables up; the actors' memories
        (`long_term`) in the same database, on the same pool."""
        memories: list[Any] = []

        def tables(saver: ThreadedPostgresSaver) -> None:
            PostgresOwners.create_table(saver)
            if long_term is not None:
                memories.append(postgres(saver.pool, long_term))

        saver = ThreadedPostgresSaver.open(url, pool_size, also=tables)
        try:
            return cls(saver, PostgresOwners(saver), AdvisoryLocks(url), memories[0] if memories else None)
        except BaseException:
            saver.close()
            raise

    def close_long_term(self) -> None:
        if self.long_term is not None and self.long_term.ttl_config:
            self.long_term.stop_ttl_sweeper(timeout=5)  # type: ignore[attr-defined]  # LangGraph's PostgresStore

    def close_checkpointer(self) -> None:
        self.checkpointer.close()
