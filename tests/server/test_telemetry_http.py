"""A turn's trace over real HTTP: the caller's `traceparent` is its parent, a streamed turn's span ends with its
terminal event (not when the response starts, nor when its client leaves), and no prompt reaches a span or an
INFO log line."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Iterator

import httpx
import pytest
from opentelemetry.trace import SpanKind

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.server.app import build_app
from testkit.live_server import LiveServer
from testkit.sse import frames_of
from testkit.telemetry import Collected
from testkit import loopback

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
PROMPT = "What is 25 * 4? Say it plainly, periwinkle."


@pytest.fixture
def traced(serve, tmp_path) -> Iterator[Any]:
    """Start an in-process server whose turns report to an in-memory exporter; yields `start(**settings)`."""
    collected = Collected()

    def start(**fields: Any) -> tuple[str, Collected]:
        settings = Settings(memory_path=str(tmp_path / "m.sqlite"), **fields)
        agent = build_agent(settings, telemetry=collected.telemetry(settings))
        return serve(build_app(settings, agent=agent)), collected

    yield start
    collected.shutdown()


def wait_for(condition: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition never held")


def test_a_streamed_turn_is_a_child_of_the_callers_trace_and_ends_with_its_terminal_event(traced, session_id):
    url, collected = traced(offline_token_delay_ms=20)
    payload = {"prompt": "What is 25 * 4?", "session_id": session_id, "stream": True, "stream_tokens": True}
    body = b""
    with loopback.Client(timeout=30) as client:
        with client.stream("POST", url + "/invocations", json=payload, headers={"traceparent": TRACEPARENT}) as reply:
            assert reply.status_code == 200
            chunks = reply.iter_bytes()
            while b"event: llm_token" not in body:
                body += next(chunks)
            # The response began long ago, and tokens flow: the turn's span is still open.
            assert not collected.turn_spans()
            for chunk in chunks:
                body += chunk
    frames = frames_of(body)
    assert frames[-1][0] == "agent_end"
    turn = collected.turn_span()
    assert format(turn.context.trace_id, "032x") == TRACE_ID
    assert turn.parent is not None and turn.parent.is_remote and format(turn.parent.span_id, "016x") == PARENT_ID
    assert turn.attributes["session.id"] == session_id
    assert turn.attributes["langgraph_agentcore.run.id"] == frames[0][1]["run_id"]
    metrics = frames[-1][1]["metrics"]
    assert turn.attributes["gen_ai.usage.input_tokens"] == metrics["input_tokens"]
    assert turn.attributes["gen_ai.usage.output_tokens"] == metrics["output_tokens"]
    assert [s.name.split(" ")[0] for s in collected.children()] == ["chat", "execute_tool", "chat"]
    assert all(format(s.context.trace_id, "032x") == TRACE_ID for s in collected.spans())


def test_a_json_reply_is_traced_the_same_way(traced, session_id):
    url, collected = traced()
    reply = loopback.post(url + "/invocations", json={"prompt": "What is 25 * 4?", "session_id": session_id},
                       headers={"traceparent": TRACEPARENT}, timeout=30)
    assert reply.status_code == 200
    turn = collected.turn_span()
    assert format(turn.parent.span_id, "016x") == PARENT_ID
    assert turn.attributes["gen_ai.usage.output_tokens"] == reply.json()["metrics"]["output_tokens"]
    # Without a traceparent, a turn starts its own trace.
    loopback.post(url + "/invocations", json={"prompt": "hi", "session_id": session_id + "-b"}, timeout=30)
    second = collected.turn_spans()[-1]
    assert second.parent is None and format(second.context.trace_id, "032x") != TRACE_ID


def leave_after_first_token(client: httpx.Client, url: str, session_id: str) -> None:
    """Start a slow streamed turn and stop reading (and close the connection) at its first token."""
    payload = {"prompt": "Tell me about the sea", "session_id": session_id, "stream": True, "stream_tokens": True}
    with client.stream("POST", url + "/invocations", json=payload) as reply:
        for chunk in reply.iter_bytes():
            if b"event: llm_token" in chunk:
                return


def test_a_turn_whose_client_left_goes_on_and_its_span_ends_when_the_turn_does(traced, session_id):
    url, collected = traced(offline_token_delay_ms=20)
    with loopback.Client(timeout=30) as client:
        leave_after_first_token(client, url, session_id)  # on AgentCore the container would never know
    turn = wait_for(collected.turn_spans)[0]
    assert turn.attributes["langgraph_agentcore.turn.outcome"] == "completed"
    assert turn.attributes["gen_ai.usage.output_tokens"] > 0
    status = loopback.post(url + "/invocations", json={"action": "status", "session_id": session_id}, timeout=30).json()
    assert status["state"] == "completed"


def test_a_cancelled_run_says_so(traced, session_id):
    url, collected = traced(offline_token_delay_ms=30)
    with loopback.Client(timeout=30) as client:
        leave_after_first_token(client, url, session_id)  # the run goes on; then its owner stops it
        cancelled = client.post(url + "/invocations", json={"action": "cancel", "session_id": session_id})
    assert cancelled.json()["status"] == "cancelled"
    turn = wait_for(collected.turn_spans)[0]
    assert turn.attributes["langgraph_agentcore.turn.outcome"] == "cancelled"


def test_no_prompt_in_spans_or_info_logs_by_default(traced, session_id, caplog):
    caplog.set_level(logging.DEBUG)
    url, collected = traced()
    for stream in (True, False):
        reply = loopback.post(url + "/invocations", json={"prompt": PROMPT, "session_id": session_id, "stream": stream},
                           headers={"traceparent": TRACEPARENT}, timeout=30)
        assert reply.status_code == 200 and "100" in reply.text
    spans = json.dumps([json.loads(span.to_json()) for span in collected.spans()])
    assert len(collected.turn_spans()) == 2 and "periwinkle" not in spans and "25 * 4" not in spans
    info = [record for record in caplog.records if record.levelno >= logging.INFO]
    assert any("turn done" in record.getMessage() for record in info)  # the turns did log
    assert not [r.getMessage() for r in info if "periwinkle" in r.getMessage() or "periwinkle" in str(r.__dict__)]


def test_the_capture_variable_puts_the_prompt_in_the_turns_span(traced, session_id):
    url, collected = traced(otel_capture_content=True)
    loopback.post(url + "/invocations", json={"prompt": PROMPT, "session_id": session_id}, timeout=30)
    assert PROMPT in collected.turn_span().attributes["gen_ai.input.messages"]


def test_a_globally_configured_sdk_gets_every_span_though_sigterm_ends_the_process(tmp_path, session_id):
    """As on AgentCore: the SDK set up globally (`opentelemetry-instrument`), a batching exporter, and the process
    ended by SIGTERM — after which uvicorn re-raises the signal, so `atexit` (the SDK's own flush) never runs."""
    spans_path = tmp_path / "spans.jsonl"
    server = LiveServer(command=[sys.executable, "-m", "testkit.serve_traced", str(spans_path)])
    try:
        body = loopback.post(server.url + "/invocations", headers={"traceparent": TRACEPARENT}, timeout=30,
                          json={"prompt": "What is 25 * 4?", "session_id": session_id, "stream": True}).content
    finally:
        server.stop()  # SIGTERM, before the batch processor's 60 s delay
    assert server.process.returncode != 0  # killed by the re-raised SIGTERM, as uvicorn does
    spans = [json.loads(line) for line in spans_path.read_text().splitlines()]
    by_name = {span["name"]: span for span in spans}
    turn = by_name["invoke_agent langgraph_agentcore"]
    assert turn["parent_id"] == "0x" + PARENT_ID and turn["context"]["trace_id"] == "0x" + TRACE_ID
    assert turn["attributes"]["langgraph_agentcore.run.id"] == frames_of(body)[0][1]["run_id"]
    assert sorted(span["name"].split(" ")[0] for span in spans) == ["chat", "chat", "execute_tool", "invoke_agent"]


def test_under_an_asgi_server_span_the_turn_is_that_spans_child(serve, tmp_path, session_id):
    """As under `opentelemetry-instrument`, whose ASGI instrumentation opens a server span per request first: the
    turn's span is that span's child (the caller's `traceparent` is the server span's parent, not read twice)."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    collected = Collected()
    settings = Settings(memory_path=str(tmp_path / "m.sqlite"))
    agent = build_agent(settings, telemetry=collected.telemetry(settings))
    url = serve(OpenTelemetryMiddleware(build_app(settings, agent=agent), tracer_provider=collected.tracer_provider))
    body = loopback.post(url + "/invocations", headers={"traceparent": TRACEPARENT}, timeout=30,
                      json={"prompt": "What is 25 * 4?", "session_id": session_id, "stream": True}).content
    assert frames_of(body)[-1][0] == "agent_end"
    # The server span ends once the middleware's call returns, which can be just after the client read the end.
    servers = wait_for(lambda: [s for s in collected.spans() if s.kind == SpanKind.SERVER])
    assert len(servers) == 1 and format(servers[0].parent.span_id, "016x") == PARENT_ID
    turn = collected.turn_span()
    assert turn.parent.span_id == servers[0].context.span_id
    assert {format(s.context.trace_id, "032x") for s in collected.spans()} == {TRACE_ID}
    collected.shutdown()


async def test_over_websocket_and_a2a_the_callers_trace_is_the_turns_parent(traced, session_id):
    from websockets.asyncio.client import connect

    url, collected = traced()
    async with connect(url.replace("http://", "ws://") + "/ws", additional_headers={"traceparent": TRACEPARENT}) as ws:
        await ws.send(json.dumps({"prompt": "What is 25 * 4?", "session_id": session_id}))
        while json.loads(await ws.recv())["event"] not in ("agent_end", "error"):
            pass
    over_ws = wait_for(lambda: collected.turn_spans()[-1:] and collected.turn_spans()[-1])
    assert format(over_ws.parent.span_id, "016x") == PARENT_ID
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {
        "kind": "message", "role": "user", "messageId": "m-1", "contextId": session_id + "-a2a",
        "parts": [{"kind": "text", "text": "What is 25 * 4?"}]}}}
    reply = loopback.post(url + "/a2a", json=body, headers={"traceparent": TRACEPARENT}, timeout=30)
    assert reply.status_code == 200 and reply.json()["result"]["status"]["state"] == "completed", reply.text
    over_a2a = wait_for(lambda: len(collected.turn_spans()) >= 2 and collected.turn_spans()[-1])
    assert format(over_a2a.parent.span_id, "016x") == PARENT_ID and over_a2a is not over_ws
