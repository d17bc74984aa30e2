"""A session belongs to its actor: every other caller is refused over HTTP, and alice's history never changes."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from bedrock.core.build import build_agent
from bedrock.config import Settings
from bedrock.errors import AgentError
from bedrock.store.in_process import InProcessOwners
from bedrock.core.ownership import SessionOwners
from bedrock.wire.request import parse_request

from bedrock.wire.headers import SESSION_HEADER
from testkit import loopback


def post(url: str, payload: dict[str, Any], headers: dict[str, str] | None = None, path: str = "/invocations") -> httpx.Response:
    return loopback.post(url + path, json=payload, headers=headers or {}, timeout=30)


def history(live: Any, session_id: str) -> list[tuple[str, str]]:
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    with sqlite3.connect(live.memory_path) as conn:
        state = SqliteSaver(conn).get_tuple({"configurable": {"thread_id": session_id, "checkpoint_ns": ""}})
    messages = state.checkpoint["channel_values"].get("messages", []) if state else []
    return [(m.type, str(m.content)) for m in messages]


def refused(response: httpx.Response) -> bool:
    return response.status_code == 403 and response.json()["error"]["code"] == "session_forbidden"


ATTEMPTS = {
    "bob by payload actor": lambda s: ({"prompt": "What's my name?", "session_id": s, "actor_id": "bob"}, {}),
    "bob writing": lambda s: ({"prompt": "My name is Bob", "session_id": s, "actor_id": "bob"}, {}),
    "bob by custom_data.user_id": lambda s: ({"prompt": "What's my name?", "session_id": s, "custom_data": {"user_id": "bob"}}, {}),
    "anonymous": lambda s: ({"prompt": "What's my name?", "session_id": s}, {}),
    "bob streamed": lambda s: ({"prompt": "My name is Bob", "session_id": s, "actor_id": "bob", "stream": True}, {}),
    "bob by the session header": lambda s: ({"prompt": "My name is Bob", "actor_id": "bob"}, {SESSION_HEADER: s}),
}


def test_every_other_caller_is_refused_and_alice_keeps_her_history(make_server, session_id):
    live = make_server()
    assert post(live.url, {"prompt": "My name is Alice", "session_id": session_id, "actor_id": "alice"}).status_code == 200
    before = history(live, session_id)
    assert before[-2:] == [("human", "My name is Alice"), ("ai", "Nice to meet you, Alice! I'll remember your name.")]
    for name, attempt in ATTEMPTS.items():
        payload, headers = attempt(session_id)
        for path in ("/invocations", "/invoke", "/stream"):
            response = post(live.url, payload, headers, path)
            assert refused(response), (name, path, response.text)
            assert history(live, session_id) == before, (name, path)
    mine = post(live.url, {"prompt": "What's my name?", "session_id": session_id, "actor_id": "alice"})
    assert mine.json()["output"] == "Your name is Alice."
    # custom_data.user_id binds too: alice by that route is alice
    by_custom = post(live.url, {"prompt": "What's my name?", "session_id": session_id, "custom_data": {"user_id": "alice"}})
    assert by_custom.json()["output"] == "Your name is Alice."


def test_the_long_header_digest_does_not_open_the_session(make_server):
    live = make_server()
    runtime_session = "r" * 150  # AgentCore runtime session ids may be longer than memory's 100
    alice = post(live.url, {"prompt": "My name is Alice", "actor_id": "alice"}, {SESSION_HEADER: runtime_session})
    digest = "rt-" + hashlib.sha256(runtime_session.encode()).hexdigest()
    assert alice.json()["session_id"] == digest
    before = history(live, digest)
    for payload, headers in [
        ({"prompt": "What's my name?", "session_id": digest, "actor_id": "bob"}, {}),
        ({"prompt": "What's my name?", "session_id": digest}, {}),
        ({"prompt": "My name is Bob", "actor_id": "bob"}, {SESSION_HEADER: runtime_session}),
    ]:
        assert refused(post(live.url, payload, headers))
    assert history(live, digest) == before


def test_ownership_survives_a_restart(make_server, tmp_path, session_id):
    env = {"AGENT_MEMORY_PATH": str(tmp_path / "memory.sqlite")}
    first = make_server(env)
    post(first.url, {"prompt": "My name is Alice", "session_id": session_id, "actor_id": "alice"})
    first.stop()
    second = make_server(env)
    assert refused(post(second.url, {"prompt": "What's my name?", "session_id": session_id, "actor_id": "bob"}))
    ok = post(second.url, {"prompt": "What's my name?", "session_id": session_id, "actor_id": "alice"})
    assert ok.json()["output"] == "Your name is Alice."


async def test_sessions_stored_before_owners_were_recorded_belong_to_their_actor(tmp_path, session_id):
    """An upgrade: checkpoints without an owner row are claimed for the actor they were written by."""
    import sqlite3

    settings = Settings(memory_path=str(tmp_path / "m.sqlite"), memory_backend="sqlite")
    agent = build_agent(settings)
    await agent.invoke(parse_request({"prompt": "My name is Alice", "session_id": session_id, "actor_id": "alice"}))
    await agent.drain()
    with sqlite3.connect(settings.memory_path) as conn:
        conn.execute("DELETE FROM session_owners")
    fresh = build_agent(settings)  # no cache, no owner row: only the checkpoint says who it was
    with pytest.raises(AgentError) as raised:
        await fresh.invoke(parse_request({"prompt": "What's my name?", "session_id": session_id, "actor_id": "bob"}))
    assert raised.value.code == "session_forbidden"


async def test_in_process_callers_get_the_refusal_as_an_error_event_or_exception(session_id):
    from bedrock.agent_runtime import ainvoke_agent, stream_agent

    await ainvoke_agent({"prompt": "My name is Alice", "session_id": session_id, "actor_id": "alice"})
    events = [e async for e in stream_agent({"prompt": "What's my name?", "session_id": session_id, "actor_id": "bob"})]
    assert [e.type for e in events] == ["error"] and events[0].data["code"] == "session_forbidden"
    with pytest.raises(AgentError) as raised:
        await ainvoke_agent({"prompt": "My name is Bob", "session_id": session_id, "actor_id": "bob"})
    assert raised.value.status == 403
    assert (await ainvoke_agent({"prompt": "What's my name?", "session_id": session_id, "actor_id": "alice"}))["output"] \
        == "Your name is Alice."


async def test_the_owner_cache_is_bounded():
    owners = SessionOwners(InProcessOwners(), cache_size=3)
    for i in range(10):
        await owners.check(f"s{i}", "alice")
    assert len(owners._cache) == 3
    with pytest.raises(AgentError):
        await owners.check("s0", "bob")  # evicted from the cache, still owned in the store


def test_a_refused_stream_is_a_json_error_before_any_stream(make_server, session_id):
    live = make_server()
    post(live.url, {"prompt": "My name is Alice", "session_id": session_id, "actor_id": "alice"})
    response = post(live.url, {"prompt": "hi", "session_id": session_id, "actor_id": "bob", "stream": True})
    assert response.headers["content-type"].startswith("application/json") and refused(response)


def owner_rows(live: Any) -> int:
    import sqlite3

    with sqlite3.connect(live.memory_path) as conn:
        return conn.execute("SELECT COUNT(*) FROM session_owners").fetchone()[0]


def test_reads_of_an_unused_session_claim_nothing(make_server, session_id):
    """bob's `history`, `status`, `cancel` and `resume` on an id nobody has used answer as for an empty session and
    store nothing: alice's first turn on it is hers (they used to make bob its owner, and 3,000 `status` calls
    wrote 3,000 owner rows)."""
    live = make_server()
    assert post(live.url, {"action": "history", "session_id": "warm-up"}).status_code == 200  # the agent is built
    rows = owner_rows(live)
    for action in ("history", "status", "cancel", "resume"):
        reply = post(live.url, {"action": action, "session_id": session_id, "actor_id": "bob"})
        expected = {"history": 200, "status": 404, "cancel": 404, "resume": 404}[action]
        assert reply.status_code == expected, (action, reply.text)
    for i in range(20):
        post(live.url, {"action": "status", "session_id": f"{session_id}-{i}", "actor_id": "bob"})
    assert owner_rows(live) == rows
    mine = post(live.url, {"prompt": "My name is Alice", "session_id": session_id, "actor_id": "alice"})
    assert mine.status_code == 200, mine.text
    assert refused(post(live.url, {"action": "history", "session_id": session_id, "actor_id": "bob"}))
    assert owner_rows(live) == rows + 1


async def test_another_actors_run_is_not_theirs_to_read_or_stop_before_its_turn_claims_the_session(session_id):
    """A run is registered before its turn claims the session (it may wait for a slot, or the session's lock):
    in that window bob must not read, follow or cancel it either."""
    import asyncio

    from bedrock.server.app import build_app
    from bedrock.wire.events import encode_frame

    settings = Settings(memory_backend="memory")
    runtime = build_app(settings, agent=build_agent(settings)).state.runtime
    waiting = asyncio.Event()

    async def not_claimed_yet():  # a turn still waiting for its session: nothing claimed, nothing sent
        await waiting.wait()
        yield encode_frame("agent_end", {"output": ""}, 1)

    run = runtime.runs.start("run-alices", session_id, "alice", not_claimed_yet(), "continue")
    for action in ("status", "cancel", "resume"):
        with pytest.raises(AgentError) as forbidden:
            await runtime.ainvoke({"action": action, "session_id": session_id, "actor_id": "bob"})
        assert forbidden.value.code == "session_forbidden", action
    history = await runtime.ainvoke({"action": "history", "session_id": session_id, "actor_id": "bob"})
    assert history["run"] is None and not run.finished
    mine = await runtime.ainvoke({"action": "cancel", "session_id": session_id, "actor_id": "alice"})
    assert mine == {"session_id": session_id, "run_id": "run-alices", "status": "cancelled"}
