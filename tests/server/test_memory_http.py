"""Long-term memory over HTTP, on every backend a server keeps it in: what actor A states in one session, A's new
sessions recall; actor B's do not; `forget` removes it, and A's next session no longer recalls it. The actions'
errors are the catalog's, in its one shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from testkit import loopback

RECALL = "What do you remember about me?"
NOTHING = "I don't remember anything about you yet."


def post(url: str, payload: dict[str, Any]) -> httpx.Response:
    return loopback.post(url + "/invocations", json=payload, timeout=30)


def say(url: str, prompt: str, actor: str, session: str) -> str:
    reply = post(url, {"prompt": prompt, "actor_id": actor, "session_id": session})
    assert reply.status_code == 200, reply.text
    return reply.json()["output"]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def served(request: pytest.FixtureRequest, make_server: Any, tmp_path: Any) -> Any:
    env = {"MEMORY_BACKEND": request.param, "AGENT_MEMORY_PATH": str(tmp_path / "m.sqlite")}
    if request.param == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("postgres_url")
    return make_server(env)


def test_an_actor_s_preference_crosses_its_sessions_and_no_one_else_s(served):
    url = served.url
    assert say(url, "I prefer metric units", "alice", "a-1").startswith("Got it")
    assert say(url, RECALL, "alice", "a-2") == "Here is what I remember about you: I prefer metric units."
    assert say(url, RECALL, "bob", "b-1").startswith(NOTHING)
    listed = post(url, {"action": "memories", "actor_id": "alice"}).json()
    assert [m["value"] for m in listed["memories"]] == [{"text": "I prefer metric units"}]
    assert listed["memories"][0]["namespace"] == ["alice", "memories"] and listed["next_offset"] is None
    for other in ("bob", "alic", "alice2"):  # a namespace is whole labels: no actor's id is another's prefix
        assert post(url, {"action": "memories", "actor_id": other}).json()["memories"] == []
    # bob cannot forget alice's memory by its key: it is not his
    key = listed["memories"][0]["key"]
    refused = post(url, {"action": "forget", "key": key, "actor_id": "bob"})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "memory_not_found"
    forgot = post(url, {"action": "forget", "key": key, "actor_id": "alice"})
    assert forgot.status_code == 200 and forgot.json() == {"actor_id": "alice", "forgotten": 1}
    assert say(url, RECALL, "alice", "a-3").startswith(NOTHING)


def test_the_same_fact_twice_is_kept_once_and_forget_all_empties(served):
    url = served.url
    say(url, "Remember that my dog is called Rex", "carol", "c-1")
    say(url, "remember that my  dog is called rex", "carol", "c-2")
    say(url, "I prefer tea", "carol", "c-3")
    first = post(url, {"action": "memories", "actor_id": "carol", "limit": 1}).json()
    assert len(first["memories"]) == 1 and first["next_offset"] == 1
    rest = post(url, {"action": "memories", "actor_id": "carol", "limit": 1, "offset": 1}).json()
    assert rest["next_offset"] is None
    assert {first["memories"][0]["key"], rest["memories"][0]["key"]} and len(
        {m["key"] for m in first["memories"] + rest["memories"]}) == 2
    assert post(url, {"action": "forget", "all": True, "actor_id": "carol"}).json()["forgotten"] == 2
    assert post(url, {"action": "memories", "actor_id": "carol"}).json()["memories"] == []


@pytest.mark.parametrize("payload,field", [
    ({"action": "forget"}, "key"),
    ({"action": "forget", "all": True, "key": "k"}, "all"),
    ({"action": "forget", "key": ""}, "key"),
    ({"action": "forget", "key": "k", "namespace": ["a.b"]}, "namespace"),
    ({"action": "memories", "limit": 0}, "limit"),
    ({"action": "memories", "limit": 101}, "limit"),
    ({"action": "memories", "offset": -1}, "offset"),
    ({"action": "memories", "prompt": "hi"}, "prompt"),
])
def test_bad_memory_actions_are_400s_naming_the_field(server, payload, field):
    reply = post(server.url, payload)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == "invalid_payload" and error["details"][0]["field"] == field


def test_with_long_term_memory_off_the_actions_say_so_and_nothing_is_remembered(make_server):
    live = make_server({"LONG_TERM_MEMORY": "off"})
    for payload in ({"action": "memories"}, {"action": "forget", "all": True}):
        reply = post(live.url, payload)
        assert reply.status_code == 409 and reply.json()["error"]["code"] == "long_term_memory_off"
    # No `remember` tool: "remember that …" is an ordinary prompt, and nothing crosses sessions.
    say(live.url, "Remember that my dog is called Rex", "dave", "d-1")
    assert "Rex" not in say(live.url, RECALL, "dave", "d-2")


def leave_after_the_write(url: str, payload: dict[str, Any]) -> None:
    """Stream a remembering turn and leave once its `remember` call's result is shown (the write is made, in the
    turn); the connection closes."""
    with loopback.Client(timeout=30) as client, client.stream("POST", url + "/invocations",
                                                           json={**payload, "stream": True}) as response:
        assert response.status_code == 200
        seen = b""
        for chunk in response.iter_raw():
            seen += chunk
            if b"Remembered: " in seen:
                return
    raise AssertionError(f"the turn ended before its write: {seen!r}")


def settled(url: str, session: str, actor: str) -> str:
    """The session's run's final status, once its run is no longer running (polled: the run ends on its own)."""
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = post(url, {"action": "status", "session_id": session, "actor_id": actor}).json()
        if status["state"] != "running":
            return status["state"]
        time.sleep(0.05)
    raise AssertionError("the run did not end")


@pytest.mark.parametrize("on_disconnect,kept", [("cancel", False), ("continue", True)])
def test_a_client_leaving_after_the_write_keeps_the_memory_only_with_the_turn(make_server, on_disconnect, kept):
    live = make_server({"OFFLINE_TOKEN_DELAY_MS": "40", "TOKEN_BUFFER_SIZE": "1"})
    leave_after_the_write(live.url, {"prompt": "Remember that my dog is called Rex", "actor_id": "erin",
                                     "session_id": "e-1", "on_disconnect": on_disconnect, "stream_tokens": True})
    assert settled(live.url, "e-1", "erin") == ("completed" if kept else "cancelled")
    memories = post(live.url, {"action": "memories", "actor_id": "erin"}).json()["memories"]
    assert [m["value"]["text"] for m in memories] == (["my dog is called Rex"] if kept else [])
