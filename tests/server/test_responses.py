"""The SSE response: a client that stops reading loses its stream (and its turn) after SSE_STALL_TIMEOUT_S."""

from __future__ import annotations

import asyncio
import logging
import time

from bedrock.core.build import build_agent
from bedrock.config import Settings
from bedrock.wire.request import parse_request
from bedrock.server.responses import sse_response


async def test_a_stalled_send_ends_the_stream_and_rolls_the_turn_back(tmp_path, session_id, caplog):
    agent = build_agent(Settings(memory_backend="memory", offline_token_delay_ms=1, token_buffer_size=1))
    request = parse_request({"prompt": "What is 25 * 4?", "session_id": session_id, "stream_tokens": True})
    response = sse_response(agent.stream(request), ping_interval_s=15, stall_s=0.2)
    sent: list[dict] = []
    never = asyncio.Event()

    async def send(message: dict) -> None:
        sent.append(message)
        if len([m for m in sent if m["type"] == "http.response.body"]) >= 4:
            await never.wait()  # the client's window is full, and stays full: it stopped reading

    async def receive() -> dict:
        await never.wait()  # and it never disconnects either
        return {"type": "http.disconnect"}

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="bedrock.server.responses"):
        await asyncio.wait_for(response({"type": "http", "method": "POST"}, receive, send), 10)
    assert time.monotonic() - started < 3  # ended by the stall bound, not by the turn or REQUEST_TIMEOUT_S
    assert any("stopped reading" in r.getMessage() for r in caplog.records)
    state = await agent.graph.aget_state({"configurable": {"thread_id": session_id}})
    assert state.values.get("messages", []) == []  # the cut turn was rolled back
    events = [e async for e in agent.stream(parse_request({"prompt": "What is 2 + 2?", "session_id": session_id}))]
    assert events[-1].type == "agent_end"  # and the session was given back


async def test_a_reading_client_is_never_cut(session_id):
    agent = build_agent(Settings(memory_backend="memory", offline_token_delay_ms=20, token_buffer_size=1))
    request = parse_request({"prompt": "What is 25 * 4?", "session_id": session_id, "stream_tokens": True})
    response = sse_response(agent.stream(request), ping_interval_s=15, stall_s=0.05)  # shorter than the pace
    bodies: list[bytes] = []

    async def send(message: dict) -> None:
        bodies.append(message.get("body", b""))

    async def receive() -> dict:
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    await asyncio.wait_for(response({"type": "http", "method": "POST"}, receive, send), 30)
    assert b"event: agent_end" in b"".join(bodies)


async def test_the_deferred_reply_is_a_whole_response():
    """It honours Starlette's Response: `.headers` and `.status_code` read as on any response."""
    from bedrock.errors import AgentError
    from bedrock.server.responses import DeferredJSONResponse

    async def result() -> dict:
        return {"output": "ok"}

    async def failed() -> dict:
        raise AgentError("session_busy")

    for compute, status, body in ((result, 200, b'{"output":"ok"}'), (failed, 409, b'"code":"session_busy"')):
        deferred = DeferredJSONResponse(compute)
        assert deferred.headers["content-type"] == "application/json" and "content-length" not in deferred.headers
        assert deferred.status_code == 200
        sent: list[dict] = []

        async def receive() -> dict:
            await asyncio.Event().wait()  # the client stays
            return {}

        async def send(message: dict) -> None:
            sent.append(message)

        await deferred({"type": "http", "method": "POST", "path": "/invoke", "headers": []}, receive, send)
        assert sent[0]["status"] == status and body in sent[1]["body"]
