"""Time and disconnects: REQUEST_TIMEOUT_S, SIGTERM grace, a client that goes away, nothing after the end."""

from __future__ import annotations

import asyncio
import signal
import time

import anyio
import httpx

from bedrock import agent_runtime
from bedrock.agent_runtime import build_agent
from bedrock.background_server import BackgroundServer
from bedrock.config import Settings
from bedrock.deadlines import bounded
from bedrock.events import EventSequence
from bedrock.offline_endpoint import OfflineBedrockEndpoint
from bedrock.payload import parse_request
from tests.test_http import frames_of

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
    response = httpx.post(live.url + "/stream", json={"prompt": LONG_PROMPT, "session_id": session_id, "stream_tokens": True}, timeout=30)
    assert time.monotonic() - started < 5
    frames = frames_of(response.content)
    assert frames[-1][0] == "error" and frames[-1][1]["code"] == "timeout"
    assert [f[2] for f in frames] == list(range(1, len(frames) + 1))
    assert "llm_token" in [f[0] for f in frames]
    reply = httpx.post(live.url + "/invocations", json={"prompt": LONG_PROMPT, "session_id": session_id + "-b"}, timeout=30)
    assert reply.status_code == 504 and reply.json()["error"]["code"] == "timeout"


def test_sigterm_gives_open_streams_a_grace_period_then_an_error_event(make_server, session_id):
    live = make_server({"SHUTDOWN_GRACE_S": "0.5", "OFFLINE_TOKEN_DELAY_MS": "100", "TOKEN_BUFFER_SIZE": "1"})
    body = bytearray()
    signalled_at = 0.0
    with httpx.Client(timeout=30) as client, client.stream(
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


def test_client_disconnect_cancels_the_run_and_leaves_no_task(monkeypatch, tmp_path, session_id):
    endpoint = OfflineBedrockEndpoint(token_delay_ms=50).start()
    settings = Settings(model_provider="bedrock", memory_path=str(tmp_path / "m.sqlite"), token_buffer_size=1)
    agent = build_agent(settings, endpoint.url)
    monkeypatch.setattr(agent_runtime.app.state, "agent", agent, raising=False)
    server = BackgroundServer(agent_runtime.app)
    url = server.start()
    try:
        def tasks() -> int:
            async def count() -> int:
                return len(asyncio.all_tasks())
            return asyncio.run_coroutine_threadsafe(count(), server.loop).result(5)

        with httpx.Client(timeout=30) as client, client.stream(
            "POST", url + "/stream", json={"prompt": "What is 1 + 1?", "session_id": session_id + "-warm"}
        ) as response:
            assert response.status_code == 200 and b"agent_end" in response.read()
        idle = tasks()  # after one whole stream: sse-starlette keeps one shutdown watcher per loop
        asyncio.run(agent.invoke(parse_request({"prompt": "My name is Alice", "session_id": session_id})))
        with httpx.Client(timeout=30) as client, client.stream(
            "POST", url + "/stream", json={"prompt": LONG_PROMPT, "session_id": session_id, "stream_tokens": True}
        ) as response:
            for line in response.iter_lines():
                if line.startswith("event: llm_token"):
                    break  # leave mid-stream
        deadline = time.monotonic() + 10
        while tasks() > idle and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tasks() <= idle
        assert agent_runtime.slots.active == 0
        state = asyncio.run(agent.graph.aget_state({"configurable": {"thread_id": session_id}}))
        contents = [m.content for m in state.values["messages"]]
        assert LONG_PROMPT not in contents  # the abandoned turn is gone
        assert contents[-2:] == ["My name is Alice", "Nice to meet you, Alice! I'll remember your name."]
    finally:
        server.stop()
        endpoint.stop()
