"""One suite over every backend a server can keep sessions in (in-process, SQLite, PostgreSQL): durable across
a restart, pruned to the latest checkpoint, owned, concurrent turns serialised, from successive event loops.
(Rollback at every cut point runs over the same backends in test_rollback.py; AgentCore Memory under moto in
test_memory.py.)"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Iterator

import pytest

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.wire.request import parse_request
from bedrock.core.turn import Agent
from bedrock.wire.events import SSEEvent


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Any) -> Settings:
    extra = {"database_url": request.getfixturevalue("postgres_url")} if request.param == "postgres" else {}
    return Settings(memory_backend=request.param, memory_path=str(tmp_path / "m.sqlite"), **extra)


async def ask(agent: Agent, prompt: str, session_id: str, actor_id: str = "alice") -> dict[str, Any]:
    return await agent.invoke(parse_request({"prompt": prompt, "session_id": session_id, "actor_id": actor_id}))


async def turn_events(agent: Agent, prompt: str, session_id: str) -> list[SSEEvent]:
    return [e async for e in agent.stream(parse_request(
        {"prompt": prompt, "session_id": session_id, "actor_id": "alice"}))]


async def turns_until_one_succeeds(agent: Agent, prompt: str, session_id: str, bound: int = 3) -> list[SSEEvent]:
    """The last event of each turn, up to the first that ends with `agent_end` (at most `bound` turns)."""
    ends: list[SSEEvent] = []
    for _ in range(bound):
        ends.append((await turn_events(agent, prompt, session_id))[-1])
        if ends[-1].type == "agent_end":
            break
    return ends


def outcome(end: SSEEvent) -> str:
    return end.data.get("code") or end.data["output"]


def checkpoints_of(settings: Settings, session_id: str) -> int:
    if settings.memory_backend == "postgres":
        import psycopg

        with psycopg.connect(settings.database_url) as conn:
            return conn.execute("SELECT COUNT(*) FROM checkpoints WHERE thread_id = %s", (session_id,)).fetchone()[0]
    import sqlite3

    with sqlite3.connect(settings.memory_path) as conn:
        return conn.execute("SELECT COUNT(*) FROM checkpoints WHERE thread_id = ?", (session_id,)).fetchone()[0]


async def test_a_session_survives_a_restart_pruned_and_owned(settings, session_id):
    agent = build_agent(settings)
    await ask(agent, "My name is Ada", session_id)
    await ask(agent, "What is 25 * 4?", session_id)
    await agent.drain()
    if settings.memory_backend != "memory":
        assert checkpoints_of(settings, session_id) == 1  # CHECKPOINT_HISTORY=latest: superseded ones dropped
    with pytest.raises(Exception) as refused:
        await ask(agent, "What's my name?", session_id, actor_id="mallory")
    assert getattr(refused.value, "code", None) == "session_forbidden"
    agent.close()
    if settings.memory_backend == "memory":
        return  # in-process memory ends with its process, by design
    again = build_agent(settings)  # a restarted process (or another replica)
    assert (await ask(again, "What's my name?", session_id))["output"] == "Your name is Ada."
    with pytest.raises(Exception) as refused:
        await ask(again, "What's my name?", session_id, actor_id="mallory")
    assert getattr(refused.value, "code", None) == "session_forbidden"
    history = await again.history(session_id, "alice")
    assert [m["type"] for m in history["messages"]] == ["human", "ai", "human", "ai", "tool", "ai", "human", "ai"]
    again.close()


async def test_concurrent_turns_of_one_session_are_all_kept_in_order(settings, session_id):
    agent = build_agent(settings)
    prompts = [f"What is {i} + 1000?" for i in range(8)]
    results = await asyncio.gather(*(ask(agent, p, session_id) for p in prompts))
    assert sorted(r["output"] for r in results) == sorted(f"The result of {i} + 1000 is {i + 1000}." for i in range(8))
    history = (await agent.history(session_id, "alice"))["messages"]
    assert [m["type"] for m in history] == ["human", "ai", "tool", "ai"] * 8  # whole turns, none interleaved
    assert sorted(m["content"] for m in history if m["type"] == "human") == sorted(prompts)
    await agent.drain()
    agent.close()


def test_one_agent_serves_successive_event_loops(settings, session_id):
    """`invoke_agent` runs each call on a new loop: the savers are not bound to one."""
    agent = build_agent(settings)
    asyncio.run(ask(agent, "My name is Zed", session_id))
    assert asyncio.run(ask(agent, "What's my name?", session_id))["output"] == "Your name is Zed."
    agent.close()


async def test_postgres_replicas_share_a_session_and_wait_for_each_other(postgres_url, session_id):
    """Two agents on one database, as two replicas: a turn on one waits for the other's turn of the session (its
    advisory lock), then sees it; past SESSION_WAIT_S it is session_busy, and other sessions never wait."""
    settings = Settings(memory_backend="postgres", database_url=postgres_url, session_wait_s=0.2)
    first, second = build_agent(settings), build_agent(settings)
    await ask(first, "My name is Ada", session_id)
    await first.locks.acquire(session_id)  # a turn of this session running on the first replica
    try:
        events = [e async for e in second.stream(parse_request(
            {"prompt": "What's my name?", "session_id": session_id, "actor_id": "alice"}))]
        assert events[-1].data["code"] == "session_busy"
        assert (await ask(second, "What is 1 + 1?", session_id + "-free"))["output"] == "The result of 1 + 1 is 2."
    finally:
        first.locks.release(session_id)
    assert (await ask(second, "What's my name?", session_id))["output"] == "Your name is Ada."
    for agent in (first, second):
        await agent.drain()
        agent.close()


async def test_a_postgres_restart_costs_one_retryable_turn_then_it_serves_again(postgres_url, session_id):
    """Every connection the server had is cut (as by a database restart or failover): a turn that meets a dead
    connection ends with `memory_unavailable` (503, retryable) and leaves the session whole; the pool replaces the
    connections and the next turn runs. (The lock connection's retry and the pool's check usually spare even the
    first turn; `pg_terminate_backend` returns before the backends have gone, so one may still meet a dead one.)"""
    import psycopg

    agent = build_agent(Settings(memory_backend="postgres", database_url=postgres_url))
    await ask(agent, "My name is Ada", session_id)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        cut = admin.execute("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]
    assert cut >= 2  # the pool's and the session locks' connections
    outcomes = []
    for _ in range(3):
        events = [e async for e in agent.stream(parse_request(
            {"prompt": "What's my name?", "session_id": session_id, "actor_id": "alice"}))]
        outcomes.append(events[-1].data.get("code") or events[-1].data["output"])
        if events[-1].type == "agent_end":
            break
    assert outcomes[-1] == "Your name is Ada.", outcomes
    assert set(outcomes[:-1]) <= {"memory_unavailable"}, outcomes
    history = await agent.history(session_id, "alice")
    assert [m["type"] for m in history["messages"]] == ["human", "ai", "human", "ai"]
    await agent.drain()
    agent.close()


@pytest.fixture(scope="module")
def restartable_postgres(postgres_cluster: Any) -> Iterator[Any]:
    """A PostgreSQL server for this module's restart tests alone: restarting or stopping it disturbs no other
    test's database. (`postgres_cluster` for its rule: skipped without PostgreSQL, failed with REQUIRE_POSTGRES=1.)"""
    from testkit.postgres import PostgresCluster

    cluster = PostgresCluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def restartable_url(restartable_postgres: Any) -> str:
    """A new database on the restartable server, which is running (a failed test may have left it stopped)."""
    if not restartable_postgres.running():
        restartable_postgres.start()
    return restartable_postgres.create_database()


async def test_a_real_postgres_restart_costs_at_most_one_retryable_turn(restartable_postgres, restartable_url,
                                                                        session_id):
    """The database restarts under a running agent (`pg_ctl stop -m fast`, then start: every connection ends with
    AdminShutdown). No turn after it is an `internal_error`; at most the first is `memory_unavailable` (503,
    retryable); then turns run, and the session holds whole turns only."""
    agent = build_agent(Settings(memory_backend="postgres", database_url=restartable_url))
    await ask(agent, "My name is Ada", session_id)
    await agent.drain()  # the turn released and pruned: its connections idle, as between turns
    restartable_postgres.restart()
    ends = await turns_until_one_succeeds(agent, "What's my name?", session_id)
    outcomes = [outcome(end) for end in ends]
    assert outcomes[-1] == "Your name is Ada.", outcomes
    assert outcomes[:-1] in ([], ["memory_unavailable"]), outcomes
    assert all(end.data["retryable"] is True for end in ends[:-1])
    history = await agent.history(session_id, "alice")
    assert [m["type"] for m in history["messages"]] == ["human", "ai", "human", "ai"]
    await agent.drain()
    agent.close()


async def test_a_turn_while_postgres_is_down_is_one_retryable_error_then_turns_succeed(
        restartable_postgres, restartable_url, session_id):
    """The database is stopped at the turn: one `error` event, `memory_unavailable` (retryable), nothing kept.
    Once it is started again (`pg_ctl start -w`: accepting connections), turns run, the first one already."""
    agent = build_agent(Settings(memory_backend="postgres", database_url=restartable_url))
    await ask(agent, "My name is Ada", session_id)
    await agent.drain()
    restartable_postgres.halt()
    try:
        events = await turn_events(agent, "What's my name?", session_id)
    finally:
        restartable_postgres.start()
    errors = [event for event in events if event.type == "error"]
    assert len(errors) == 1 and events[-1] is errors[0], [event.type for event in events]
    assert errors[0].data["code"] == "memory_unavailable" and errors[0].data["retryable"] is True
    for _ in range(2):
        assert (await ask(agent, "What's my name?", session_id))["output"] == "Your name is Ada."
    history = await agent.history(session_id, "alice")
    assert [m["type"] for m in history["messages"]] == ["human", "ai"] * 3
    await agent.drain()
    agent.close()


async def test_the_session_lock_connection_reconnects_after_a_restart(restartable_postgres, restartable_url, caplog):
    """A try on the lock connection the restart ended takes the lock on a new connection instead of failing the
    turn; the locks the old connection held died with it (logged) and another replica can take them."""
    import psycopg

    from bedrock.store.postgres import AdvisoryLocks, lock_key

    locks = AdvisoryLocks(restartable_url)
    try:
        assert await locks.try_acquire("held-before")
        restartable_postgres.restart()
        with caplog.at_level(logging.WARNING, logger="bedrock.store.postgres"):
            assert await locks.try_acquire("after")
        assert "lost with 1 sessions locked" in caplog.text
        with psycopg.connect(restartable_url, autocommit=True) as replica:
            take = "SELECT pg_try_advisory_lock(%s)"
            assert replica.execute(take, (lock_key("held-before"),)).fetchone()[0] is True
            assert replica.execute(take, (lock_key("after"),)).fetchone()[0] is False
    finally:
        locks.close()


def test_the_checkpoint_pool_hands_out_no_dead_connection_after_a_restart(restartable_postgres, restartable_url):
    """After a restart every idle connection of the pool is dead: the first `getconn` replaces them all and gets a
    live one at once — not one dead connection per turn, nor psycopg_pool's own `check`, which backs off between
    dead ones (0, 1, 2 s…: 7 s for 4 here)."""
    from bedrock.store.postgres import ThreadedPostgresSaver

    saver = ThreadedPostgresSaver.open(restartable_url, 8)
    pool = saver.conn
    try:
        taken = [pool.getconn() for _ in range(4)]  # grown to 4, all idle again
        for conn in taken:
            pool.putconn(conn)
        restartable_postgres.restart()
        started = time.monotonic()
        with pool.connection() as conn:
            assert conn.execute("SELECT 1 AS one").fetchone()["one"] == 1
        assert time.monotonic() - started < 3  # ~20 ms measured; a backoff would take 6.3 s at least
        assert pool.get_stats()["connections_lost"] >= 4
    finally:
        saver.close()


def test_an_unreachable_database_is_one_clear_error_at_startup_without_its_password():
    import socket
    import time

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ConnectionError) as raised:
        build_agent(Settings(memory_backend="postgres", database_url=f"postgresql://agent:s3cret@127.0.0.1:{port}/db"))
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert "s3cret" not in message and f"port={port}" in message and "unreachable" in message, message


async def test_a_pool_of_one_connection_sets_up_and_serves(postgres_url, session_id):
    """MAX_CONCURRENT_INVOCATIONS=1 sizes the pool to one connection: the setup lock must not hold it."""
    agent = build_agent(Settings(memory_backend="postgres", database_url=postgres_url, max_concurrent_invocations=1))
    assert (await ask(agent, "What is 2 * 21?", session_id))["output"] == "The result of 2 * 21 is 42."
    await agent.drain()
    agent.close()
