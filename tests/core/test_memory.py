"""Session memory: SQLite across requests and restarts, AgentCore Memory under moto, concurrency. (The stores' own
parts: tests/store.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bedrock.core.build import build_agent
from bedrock.config import Settings
from bedrock.errors import AgentError
from bedrock.wire.request import parse_request
from testkit import loopback


def ask(url: str, prompt: str, session_id: str) -> dict[str, Any]:
    response = loopback.post(f"{url}/invocations", json={"prompt": prompt, "session_id": session_id}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_alice_across_two_http_requests(server, session_id):
    ask(server.url, "My name is Alice", session_id)
    assert ask(server.url, "What's my name?", session_id)["output"] == "Your name is Alice."
    assert ask(server.url, "What's my name?", session_id + "-other")["output"].startswith("I don't know")


def test_alice_across_a_server_restart_with_sqlite(make_server, tmp_path, session_id):
    env = {"MEMORY_BACKEND": "sqlite", "AGENT_MEMORY_PATH": str(tmp_path / "nested" / "memory.sqlite")}
    first = make_server(env)
    ask(first.url, "My name is Alice", session_id)
    first.stop()
    assert (tmp_path / "nested" / "memory.sqlite").stat().st_size > 0
    second = make_server(env)
    assert ask(second.url, "What's my name?", session_id)["output"] == "Your name is Alice."


def test_agentcore_memory_under_moto(monkeypatch, session_id):
    from bedrock.store.agentcore import AgentCoreOwners, AgentCoreStore

    calls: list[str] = []
    with mock_aws():
        control = boto3.client("bedrock-agentcore-control", region_name="us-east-1")
        memory_id = control.create_memory(name="agent_memory", eventExpiryDuration=30)["memory"]["id"]
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register(
            "before-call.bedrock-agentcore.*", lambda model, **_: calls.append(model.name)
        )
        monkeypatch.setenv("BEDROCK_AGENTCORE_MEMORY_ID", memory_id)
        monkeypatch.setenv("LONG_TERM_MEMORY", "off")  # moto has no memory records: test_memory_agentcore.py's stand-in
        settings = Settings.from_env()
        agent = build_agent(settings)
        assert isinstance(agent.store, AgentCoreStore) and isinstance(agent.owners.store, AgentCoreOwners)
        assert agent.store.shared_locks is None  # AgentCore routes a session to one microVM

        async def turns() -> list[str]:
            outputs = []
            for prompt in ["My name is Alice", "What's my name?"]:
                request = parse_request({"prompt": prompt, "session_id": session_id, "actor_id": "alice"})
                outputs.append((await agent.invoke(request))["output"])
            # bob may not use alice's session: refused before anything is read, also by a fresh process
            # (another agent, empty caches) that only has AgentCore Memory to go by.
            for whose in (agent, build_agent(settings)):
                other = parse_request({"prompt": "What's my name?", "session_id": session_id, "actor_id": "bob"})
                with pytest.raises(AgentError) as refused:
                    await whose.invoke(other)
                assert refused.value.code == "session_forbidden" and refused.value.status == 403
            again = parse_request({"prompt": "What's my name?", "session_id": session_id, "actor_id": "alice"})
            outputs.append((await build_agent(settings).invoke(again))["output"])
            return outputs

        outputs = asyncio.run(turns())
    assert outputs[1] == outputs[2] == "Your name is Alice."
    assert "CreateEvent" in calls and "ListEvents" in calls


async def test_twenty_parallel_sessions_each_recall_their_own_name(tmp_path):
    agent = build_agent(Settings(memory_path=str(tmp_path / "m.sqlite")))
    names = [f"Name{chr(65 + i)}x" for i in range(20)]

    async def converse(i: int, name: str) -> str:
        await agent.invoke(parse_request({"prompt": f"My name is {name}", "session_id": f"par-{i}"}))
        return (await agent.invoke(parse_request({"prompt": "What's my name?", "session_id": f"par-{i}"})))["output"]

    outputs = await asyncio.gather(*(converse(i, name) for i, name in enumerate(names)))
    assert outputs == [f"Your name is {name}." for name in names]


async def test_ten_concurrent_turns_on_one_session_are_all_stored_in_order(tmp_path, session_id):
    agent = build_agent(Settings(memory_path=str(tmp_path / "m.sqlite")))
    prompts = [f"What is {i} + 1000?" for i in range(10)]
    results = await asyncio.gather(
        *(agent.invoke(parse_request({"prompt": p, "session_id": session_id})) for p in prompts)
    )
    assert sorted(r["output"] for r in results) == sorted(f"The result of {i} + 1000 is {i + 1000}." for i in range(10))
    state = await agent.graph.aget_state({"configurable": {"thread_id": session_id}})
    messages = state.values["messages"]
    assert len(messages) == 40  # 10 whole turns: human, ai (tool call), tool, ai
    for turn in range(10):
        human, call, result, answer = messages[turn * 4: turn * 4 + 4]
        assert (human.type, call.type, result.type, answer.type) == ("human", "ai", "tool", "ai")
        i = int(human.content.split()[2])
        assert result.content == str(i + 1000) and call.tool_calls[0]["id"] == result.tool_call_id


async def test_a_turn_that_waits_too_long_gets_session_busy(tmp_path, session_id):
    agent = build_agent(Settings(memory_path=str(tmp_path / "m.sqlite"), session_wait_s=0.05))
    request = parse_request({"prompt": "What is 1 + 1?", "session_id": session_id})
    other = parse_request({"prompt": "What is 1 + 1?", "session_id": session_id + "-free"})
    await agent.locks.acquire(session_id)  # another turn holds the session
    try:
        events = [e async for e in agent.stream(request)]
        assert (await agent.invoke(other))["output"] == "The result of 1 + 1 is 2."  # other sessions never wait
    finally:
        agent.locks.release(session_id)
    assert [e.type for e in events] == ["agent_start", "agent_step", "error"]
    assert events[-1].data["code"] == "session_busy" and events[-1].data["retryable"] is True


def test_sqlite_saver_works_from_successive_event_loops(tmp_path):
    agent = build_agent(Settings(memory_path=str(Path(tmp_path) / "m.sqlite")))
    asyncio.run(agent.invoke(parse_request({"prompt": "My name is Zed", "session_id": "loops"})))
    reply = asyncio.run(agent.invoke(parse_request({"prompt": "What's my name?", "session_id": "loops"})))
    assert reply["output"] == "Your name is Zed."


def test_invoke_agent_prunes_each_kept_turn(session_id):
    """The kept turn's pruning runs after its result; the synchronous helper waits for it before its loop ends."""
    import sqlite3

    from bedrock.agent_runtime import invoke_agent, settings

    for prompt in ["My name is Zed", "What is 2 * 21?", "What's my name?"]:
        reply = invoke_agent({"prompt": prompt, "session_id": session_id})
    assert reply["output"] == "Your name is Zed."
    with sqlite3.connect(settings.memory_path) as conn:
        count = conn.execute("SELECT COUNT(*) FROM checkpoints WHERE thread_id = ?", (session_id,)).fetchone()[0]
    assert count == 1


def test_approvals_and_history_on_agentcore_memory_under_moto(monkeypatch, session_id):
    """AgentCore Memory keeps a session per actor, so every read of a session's state names its actor: the
    pending approval, its resume and the history all read alice's session, not an empty one."""
    from bedrock.server.app import build_app

    with mock_aws():
        control = boto3.client("bedrock-agentcore-control", region_name="us-east-1")
        memory_id = control.create_memory(name="agent_memory", eventExpiryDuration=30)["memory"]["id"]
        monkeypatch.setenv("BEDROCK_AGENTCORE_MEMORY_ID", memory_id)
        monkeypatch.setenv("APPROVAL_REQUIRED_TOOLS", "calculator")
        monkeypatch.setenv("LONG_TERM_MEMORY", "off")  # moto has no memory records: test_memory_agentcore.py's stand-in
        settings = Settings.from_env()

        async def turns() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            runtime = build_app(settings, agent=build_agent(settings)).state.runtime
            who = {"session_id": session_id, "actor_id": "alice"}
            asked = await runtime.ainvoke({**who, "prompt": "What is 25 * 4?"})
            pending = await runtime.ainvoke({**who, "action": "history"})
            answered = await runtime.ainvoke({**who, "resume": {
                "interrupt_id": pending["pending"][0]["interrupt_id"], "approved": True}})
            await runtime.runs.drain()
            return asked, pending, {**await runtime.ainvoke({**who, "action": "history"}), "output": answered["output"]}

        asked, pending, after = asyncio.run(turns())
    assert asked["output"] == "" or "100" not in asked["output"]
    assert [m["type"] for m in pending["messages"]] == ["human", "ai"] and len(pending["pending"]) == 1
    assert [m["type"] for m in after["messages"]] == ["human", "ai", "tool", "ai"] and after["pending"] == []
    assert "100" in after["output"]
