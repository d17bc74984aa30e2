"""Time and disconnects: REQUEST_TIMEOUT_S, SIGTERM grace, a client that goes away, nothing after the end."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anyio
import pytest

from bedrock.server.app import build_app
from bedrock.core.build import build_agent
from bedrock.offline.background import BackgroundServer
from bedrock.config import Settings
from bedrock.core.deadlines import bounded
from bedrock.wire.events import EventSequence
from bedrock.offline.endpoint import OfflineBedrockEndpoint
from bedrock.wire.request import parse_request
from testkit.sse import frames_of
from testkit import loopback

LONG_PROMPT = "Tell me everything about the sea"  # the offline reply is ~40 chunks


async def test_bounded_ends_with_a_numbered_timeout_error():
    async def slow():
        seq = EventSequence()
        yield seq.emit("agent_start", {})
        await asyncio.sleep(10)
        yield seq.emit("agent_end", {})

    started = time.monotonic()
    events = [e async for e in bounded(slow(), timeout_s=0.1)]
    assert time.monotonic() - started < 2
    assert [(e.type, e.id) for e in events] == [("agent_start", 1), ("error", 2)]
    assert events[-1].data["code"] == "timeout" and events[-1].data["retryable"] is True


async def test_bounded_never_relays_after_a_terminal_event():
    async def chatty():
        seq = EventSequence()
        yield seq.emit("agent_start", {})
        yield seq.emit("error", {"code": "x"})
        yield "never"  # a buggy producer

    assert [e.type for e in [e async for e in bounded(chatty(), timeout_s=None)]] == ["agent_start", "error"]


async def test_bounded_gives_a_grace_period_on_shutdown():
    shutdown = anyio.Event()

    async def steady():
        seq = EventSequence()
        yield seq.emit("agent_start", {})
        for _ in range(100):
            await asyncio.sleep(0.02)
            yield seq.emit("llm_token", {"token": "x"})
        yield seq.emit("agent_end", {})

    async def trigger():
        await asyncio.sleep(0.1)
        shutdown.set()

    asyncio.get_running_loop().create_task(trigger())
    events = [e async for e in bounded(steady(), timeout_s=None, shutdown=shutdown, grace_s=0.2)]
    assert events[-1].type == "error" and events[-1].data["code"] == "server_shutting_down"
    assert 8 <= len(events) <= 25  # tokens kept flowing during the grace, then it ended
    assert [e.id for e in events] == list(range(1, len(events) + 1))


def test_request_timeout_over_http(make_server, session_id):
    live = make_server({"REQUEST_TIMEOUT_S": "0.5", "OFFLINE_TOKEN_DELAY_MS": "100", "TOKEN_BUFFER_SIZE": "1"})
    started = time.monotonic()
    response = loopback.post(live.url + "/stream", json={"prompt": LONG_PROMPT, "session_id": session_id, "stream_tokens": True}, timeout=30)
    assert time.monotonic() - started < 5
    frames = frames_of(response.content)
    assert frames[-1][0] == "error" and frames[-1][1]["code"] == "timeout"
    assert [f[2] for f in frames] == list(range(1, len(frames) + 1))
    assert "llm_token" in [f[0] for f in frames]
    reply = loopback.post(live.url + "/invocations", json={"prompt": LONG_PROMPT, "session_id": session_id + "-b"}, timeout=30)
    assert reply.status_code == 504 and reply.json()["error"]["code"] == "timeout"


def test_sigterm_gives_open_streams_a_grace_period_then_an_error_event(make_server, session_id):
    live = make_server({"SHUTDOWN_GRACE_S": "0.5", "OFFLINE_TOKEN_DELAY_MS": "100", "TOKEN_BUFFER_SIZE": "1"})
    body = bytearray()
    signalled_at = 0.0
    with loopback.Client(timeout=30) as client, client.stream(
        "POST", live.url + "/stream", json={"prompt": LONG_PROMPT, "session_id": session_id, "stream_tokens": True}
    ) as response:
        for chunk in response.iter_raw():  # keep reading what the grace period allows
            body += chunk
            if not signalled_at and b"llm_token" in body:
                live.process.send_signal(signal.SIGTERM)
                signalled_at = time.monotonic()
    ended_after = time.monotonic() - signalled_at
    frames = frames_of(bytes(body))
    assert frames[-1][0] == "error" and frames[-1][1]["code"] == "server_shutting_down"
    assert frames[-1][1]["retryable"] is True
    assert 0.3 < ended_after < 5
    assert live.process.wait(timeout=15) is not None


def test_client_disconnect_cancels_the_run_and_leaves_no_task(tmp_path, session_id):
    endpoint = OfflineBedrockEndpoint(token_delay_ms=50).start()
    settings = Settings(model_provider="bedrock", memory_path=str(tmp_path / "m.sqlite"), token_buffer_size=1)
    agent = build_agent(settings, endpoint.url)
    app = build_app(settings, agent=agent)
    slots = app.state.runtime.slots
    server = BackgroundServer(app)
    url = server.start()
    try:
        def tasks() -> int:
            async def count() -> int:
                return len(asyncio.all_tasks())
            return asyncio.run_coroutine_threadsafe(count(), server.loop).result(5)

        with loopback.Client(timeout=30) as client, client.stream(
            "POST", url + "/stream", json={"prompt": "What is 1 + 1?", "session_id": session_id + "-warm"}
        ) as response:
            assert response.status_code == 200 and b"agent_end" in response.read()
        # The kept turn's prune runs after agent_end, as a task of its own: let it finish, then count.
        asyncio.run_coroutine_threadsafe(agent.drain(), server.loop).result(5)
        idle = tasks()  # after one whole stream: sse-starlette keeps one shutdown watcher per loop
        asyncio.run(agent.invoke(parse_request({"prompt": "My name is Alice", "session_id": session_id})))
        with loopback.Client(timeout=30) as client, client.stream(
            "POST", url + "/stream", json={"prompt": LONG_PROMPT, "session_id": session_id, "stream_tokens": True,
                                           "on_disconnect": "cancel"}  # (the default lets the run go on)
        ) as response:
            for line in response.iter_lines():
                if line.startswith("event: llm_token"):
                    break  # leave mid-stream
        deadline = time.monotonic() + 10
        while (tasks() > idle or slots.active) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tasks() <= idle
        assert slots.active == 0
        state = asyncio.run(agent.graph.aget_state({"configurable": {"thread_id": session_id}}))
        contents = [m.content for m in state.values["messages"]]
        assert LONG_PROMPT not in contents  # the abandoned turn is gone
        assert contents[-2:] == ["My name is Alice", "Nice to meet you, Alice! I'll remember your name."]
    finally:
        server.stop()
        endpoint.stop()


def test_a_non_streamed_client_that_leaves_frees_its_slot_and_leaves_no_turn(make_server, session_id):
    live = make_server({"OFFLINE_TOKEN_DELAY_MS": "500", "MAX_CONCURRENT_INVOCATIONS": "1"})
    # on_disconnect: cancel (the default lets a run go on, as on AgentCore, where no disconnect is ever seen)
    body = json.dumps({"prompt": "My name is Zed", "session_id": session_id, "on_disconnect": "cancel"}).encode()
    with socket.create_connection(("127.0.0.1", live.port)) as conn:
        conn.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        live.wait_for_ping("HealthyBusy")  # the turn holds the only slot
    left_at = time.monotonic()
    live.wait_for_ping("Healthy")  # freed when the client left, not when the turn would have ended (~4 s)
    assert time.monotonic() - left_at < 2.0
    reply = loopback.post(live.url + "/invocations", json={"prompt": "What's my name?", "session_id": session_id}, timeout=30)
    assert reply.status_code == 200 and reply.json()["output"].startswith("I don't know")


@pytest.mark.slow
def test_turns_cut_by_sigterm_leave_nothing_behind(make_server, tmp_path):
    """Four first turns (plain) and four later turns (with a tool call) streaming when SIGTERM comes: after the
    grace every one ends with `server_shutting_down`, and after a restart none of them is in memory."""
    # 250 ms a chunk: a later turn streams ~3.5 s from its first token to its end (a first turn ~10 s), so every
    # turn is still streaming when the last of the eight shows its first token, even on a loaded machine (at
    # 100 ms, and first turns of a 12-chunk reply, a loaded run once saw one end before SIGTERM).
    env = {"SHUTDOWN_GRACE_S": "0.3", "OFFLINE_TOKEN_DELAY_MS": "250", "TOKEN_BUFFER_SIZE": "1",
           "AGENT_MEMORY_PATH": str(tmp_path / "memory.sqlite")}
    live = make_server(env)
    first = [f"sigterm-first-{i}" for i in range(4)]
    later = [f"sigterm-later-{i}" for i in range(4)]
    with ThreadPoolExecutor(len(later)) as pool:
        told = pool.map(lambda s: loopback.post(live.url + "/invocations", timeout=30,
                                             json={"prompt": "My name is Alice", "session_id": s}), later)
        assert [reply.status_code for reply in told] == [200] * len(later)
    started = threading.Barrier(len(first) + len(later) + 1, timeout=30)
    ends: dict[str, str] = {}

    def converse(session: str, prompt: str) -> None:
        body = bytearray()
        payload = {"prompt": prompt, "session_id": session, "stream_tokens": True}
        with loopback.Client(timeout=30) as client, client.stream("POST", live.url + "/stream", json=payload) as response:
            waiting = True
            for chunk in response.iter_raw():
                body += chunk
                if waiting and b"llm_token" in body:
                    waiting = False
                    started.wait()
        ends[session] = frames_of(bytes(body))[-1][1].get("code", "")

    threads = [threading.Thread(target=converse, args=(s, LONG_PROMPT)) for s in first]
    threads += [threading.Thread(target=converse, args=(s, "What is 25 * 4?")) for s in later]
    for thread in threads:
        thread.start()
    started.wait()  # every turn is streaming its answer
    live.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(30)
    assert live.process.wait(timeout=15) is not None
    assert ends == {s: "server_shutting_down" for s in first + later}
    again = make_server({**env, "OFFLINE_TOKEN_DELAY_MS": "0"})
    for session in first + later:
        kept = loopback.post(again.url + "/invocations", json={"action": "history", "session_id": session}, timeout=30)
        said = [step["content"] for step in kept.json()["messages"]]
        assert said == (["My name is Alice", "Nice to meet you, Alice! I'll remember your name."]
                        if session in later else []), session
        reply = loopback.post(again.url + "/invocations", json={"prompt": "What's my name?", "session_id": session}, timeout=30)
        # A later turn's half (a toolUse without its result) would make this a model_validation_error.
        assert reply.status_code == 200, (session, reply.text)
        expected = "Your name is Alice." if session in later else "I don't know"
        assert reply.json()["output"].startswith(expected), session


async def test_a_callers_cancel_landing_with_the_deadline_is_not_swallowed(monkeypatch):
    from bedrock.core import deadlines

    async def slow():
        seq = EventSequence()
        yield seq.emit("agent_start", {})
        await asyncio.sleep(10)
        yield seq.emit("agent_end", {})

    async def consume() -> list:
        return [e async for e in bounded(slow(), timeout_s=0.05)]

    consumer = asyncio.ensure_future(consume())
    fire = deadlines._Deadline._fire

    def fire_and_cancel(self) -> None:  # the caller's cancel lands in the very callback the deadline fires in
        fire(self)
        consumer.cancel()

    monkeypatch.setattr(deadlines._Deadline, "_fire", fire_and_cancel)
    try:
        await consumer
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the caller's cancel was swallowed into a timeout event")
