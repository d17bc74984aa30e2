"""Replicas sharing one session memory (real server processes): PostgreSQL for any number of replicas, one SQLite
file for processes on one host. Every acknowledged turn is stored once, in order; two turns of one session sent
to two replicas at once are both kept (one waits for the other); a replica killed mid-turn leaves whole turns and
a free session."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from testkit import loopback

pytestmark = pytest.mark.slow  # (pyproject.toml: `make test-quick` leaves it out)

TURNS = 10


def post(url: str, payload: dict[str, Any]) -> httpx.Response:
    return loopback.post(url + "/invocations", json=payload, timeout=60)


def humans(url: str, session_id: str) -> list[str]:
    """The session's prompts as stored, in order (read through any replica)."""
    reply = post(url, {"action": "history", "session_id": session_id})
    assert reply.status_code == 200, reply.text
    return [m["content"] for m in reply.json()["messages"] if m["type"] == "human"]


def simultaneous_pairs(first: Any, second: Any, pairs: int) -> None:
    """`pairs` sessions, each sent two turns at the same moment, one to each replica: both answered, both kept."""
    for i in range(pairs):
        session_id = f"pair-{uuid.uuid4().hex}"
        start = threading.Barrier(2)

        def send(server: Any, prompt: str) -> httpx.Response:
            start.wait()
            return post(server.url, {"prompt": prompt, "session_id": session_id})

        with ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(send, (first, second), ("left turn", "right turn")))
        assert [r.status_code for r in replies] == [200, 200], [r.text for r in replies]
        stored = humans(first.url, session_id)
        assert sorted(stored) == ["left turn", "right turn"], (i, stored)  # each once, whichever went first
        assert humans(second.url, session_id) == stored


def test_three_replicas_on_postgres_keep_every_acknowledged_turn_once_and_in_order(make_server, postgres_url):
    env = {"MEMORY_BACKEND": "postgres", "DATABASE_URL": postgres_url}
    replicas = [make_server(env) for _ in range(3)]
    sessions = [f"rr-{uuid.uuid4().hex}" for _ in range(20)]

    def converse(index: int) -> list[int]:
        """One session's turns in order, turn k to replica (index + k) % 3 (round robin)."""
        return [post(replicas[(index + k) % 3].url, {"prompt": f"turn {k}", "session_id": sessions[index]}).status_code
                for k in range(TURNS)]

    with ThreadPoolExecutor(len(sessions)) as pool:  # the sessions at once, each session's turns one after another
        statuses = list(pool.map(converse, range(len(sessions))))
    assert statuses == [[200] * TURNS] * len(sessions)
    for index, session_id in enumerate(sessions):
        assert humans(replicas[index % 3].url, session_id) == [f"turn {k}" for k in range(TURNS)]
    simultaneous_pairs(replicas[0], replicas[1], 10)


def test_two_processes_sharing_one_sqlite_file_lose_no_turn(make_server, tmp_path):
    env = {"AGENT_MEMORY_PATH": str(tmp_path / "shared.sqlite")}
    simultaneous_pairs(make_server(env), make_server(env), 10)


@pytest.mark.parametrize("backend, durability", [("postgres", "exit"), ("sqlite", "exit"), ("postgres", "sync"),
                                                 ("sqlite", "async")])
def test_a_replica_killed_mid_turn_leaves_whole_turns_and_frees_the_session(make_server, tmp_path, request, backend,
                                                                           durability):
    """With `exit` durability the killed turn wrote nothing; with `sync`/`async` it wrote its first steps, which the
    next turn (on another replica) finds orphaned and rolls back before it runs."""
    env = ({"MEMORY_BACKEND": "postgres", "DATABASE_URL": request.getfixturevalue("postgres_url")}
           if backend == "postgres" else {"AGENT_MEMORY_PATH": str(tmp_path / "shared.sqlite")})
    env["CHECKPOINT_DURABILITY"] = durability
    doomed = make_server({**env, "OFFLINE_TOKEN_DELAY_MS": "30"})
    survivor = make_server({**env, "SESSION_WAIT_S": "10"})
    session_id = f"kill-{uuid.uuid4().hex}"
    assert post(doomed.url, {"prompt": "My name is Ada", "session_id": session_id}).status_code == 200
    payload = {"prompt": "Tell me about the sea", "session_id": session_id, "stream": True, "stream_tokens": True}
    with loopback.Client(timeout=30) as client:
        with client.stream("POST", doomed.url + "/invocations", json=payload) as reply:
            for chunk in reply.iter_bytes():
                if b"event: llm_token" in chunk:
                    doomed.process.kill()  # SIGKILL mid-answer: no shutdown, no rollback, no unlock
                    doomed.process.wait(10)
                    break
    started = time.monotonic()
    reply = post(survivor.url, {"prompt": "What's my name?", "session_id": session_id})
    waited = time.monotonic() - started
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"] == "Your name is Ada."
    assert waited < 10, f"the session stayed locked {waited:.1f} s after its replica died"
    assert humans(survivor.url, session_id) == ["My name is Ada", "What's my name?"]  # the cut turn: no trace
