"""One suite over every backend a server can keep sessions in (in-process, SQLite, PostgreSQL): durable across
a restart, pruned to the latest checkpoint, owned, concurrent turns serialised, from successive event loops.
(Rollback at every cut point runs over the same backends in test_rollback.py; AgentCore Memory under moto in
test_memory.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.core.request import parse_request
from bedrock.core.turn import Agent


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Any) -> Settings:
    extra = {"database_url": request.getfixturevalue("postgres_url")} if request.param == "postgres" else {}
    return Settings(memory_backend=request.param, memory_path=str(tmp_path / "m.sqlite"), **extra)


async def ask(agent: Agent, prompt: str, session_id: str, actor_id: str = "alice") -> dict[str, Any]:
    return await agent.invoke(parse_request({"prompt": prompt, "session_id": session_id, "actor_id": actor_id}))


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
    """Every connection the server had is cut (as by a database restart or failover): the turn that meets a dead
    connection ends with `memory_unavailable` (503, retryable) and leaves the session whole; the pool replaces the
    connections and the next turn runs."""
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
