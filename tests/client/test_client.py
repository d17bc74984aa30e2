"""AgentClient and its CLI against real servers: the live agent over HTTP, the deployed-runtime path through boto3
and a local InvokeAgentRuntime stand-in, the starter toolkit's `agentcore invoke --dev`, and small scripted SSE
servers for retries, timeouts and failed turns."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from bedrock.client import (
    AgentClient,
    AgentConnectionError,
    AgentHTTPError,
    AgentStreamError,
    AgentTimeoutError,
    runtime_session_id,
)
from bedrock.wire.events import encode_frame
from bedrock.wire.headers import SESSION_HEADER
from testkit.sse import frames_of
from tests.client.runtime_standin import RuntimeStandIn

from testkit.live_server import ROOT  # noqa: E402
from testkit import loopback
ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/langgraph_agent-abc"
CALC = {"prompt": "What is 25 * 4?"}
METRICS_LINE = re.compile(r"tokens=\d+ tool_calls=\d+ errors=\d+ latency_ms=[\d.]+( ttft_ms=[\d.]+)?")


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kwargs)


# --- scripted SSE servers ---------------------------------------------------------------------------------------


def scripted_app(frames: list[str], then_sleep_s: float = 0.0, seen: list[dict[str, Any]] | None = None) -> Starlette:
    """An /invocations that streams `frames`, then optionally hangs; records each request in `seen`."""

    async def invocations(request: Request) -> StreamingResponse:
        if seen is not None:
            seen.append({"headers": dict(request.headers), "body": json.loads(await request.body())})

        async def body() -> AsyncIterator[str]:
            for frame in frames:
                yield frame
            await asyncio.sleep(then_sleep_s)

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/invocations", invocations, methods=["POST"])])


START = encode_frame("agent_start", {"session_id": "s", "actor_id": "a", "timestamp": "t"}, 1)
END = encode_frame("agent_end", {"output": "ok", "steps": 1, "metrics": {"tokens": 1}, "timestamp": "t"}, 2)


# --- (b) the deployed-runtime path: boto3 → InvokeAgentRuntime stand-in → live agent ------------------------------


@pytest.fixture
def standin(server, serve) -> RuntimeStandIn:
    runtime = RuntimeStandIn(server.url)
    runtime.url = serve(runtime.app)  # type: ignore[attr-defined]
    return runtime


async def test_runtime_arn_streams_typed_events_through_boto3(standin):
    short_session = f"s-{uuid.uuid4().hex[:8]}"  # too short for InvokeAgentRuntime on its own
    async with AgentClient(agent_runtime_arn=ARN, region="us-east-1", endpoint_url=standin.url) as client:
        events = [e async for e in client.stream({**CALC, "session_id": short_session, "stream_tokens": True})]
        again = await client.invoke({"prompt": "What is 6 * 7?", "session_id": short_session})
    types = [e.type for e in events]
    assert types[0] == "agent_start" and types[-1] == "agent_end" and "llm_token" in types
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert events[0].data["session_id"] == short_session  # the agent keeps the payload's own id
    assert "100" in events[-1].data["output"] and events[-1].data["metrics"]["tool_calls"] == 1
    assert "42" in again["output"] and again["session_id"] == short_session

    first, second = standin.calls
    assert first["arn"] == ARN and first["qualifier"] == "DEFAULT" and first["accept"] == "text/event-stream"
    assert 33 <= len(first["session_id"]) <= 256 and first["session_id"] == second["session_id"]
    assert first["session_id"] == runtime_session_id(short_session)


async def test_runtime_arn_refusal_is_an_http_error_with_the_agents_code(standin):
    async with AgentClient(agent_runtime_arn=ARN, endpoint_url=standin.url) as client:  # region from the ARN
        with pytest.raises(AgentHTTPError) as caught:
            await client.invoke({"prompt": ""})
    assert caught.value.status == 400 and caught.value.code == "invalid_payload"
    assert caught.value.body["error"]["code"] == "invalid_payload"


def test_runtime_session_ids_are_valid_and_stable():
    for session in ["a", "x" * 32, "x" * 33, "y" * 100, "z" * 256, "w" * 300, "test-" + uuid.uuid4().hex]:
        derived = runtime_session_id(session)
        assert 33 <= len(derived) <= 256 and derived == runtime_session_id(session)
    assert runtime_session_id("x" * 40) == "x" * 40
    assert runtime_session_id("ab") != runtime_session_id("aB")
    assert runtime_session_id("w" * 300) != runtime_session_id("w" * 299)
    generated = {runtime_session_id(None) for _ in range(3)}
    assert len(generated) == 3 and all(33 <= len(g) <= 256 for g in generated)


# --- (c) over HTTP against the live agent ---------------------------------------------------------------------


async def test_http_stream_invoke_and_memory(server, session_id):
    async with AgentClient(base_url=server.url) as client:
        events = [e async for e in client.stream({**CALC, "session_id": session_id, "stream_tokens": True})]
        first = await client.invoke({"prompt": "My name is Alice", "session_id": session_id})
        second = await client.invoke({"prompt": "What's my name?", "session_id": session_id})
    assert events[0].type == "agent_start" and events[-1].type == "agent_end"
    assert any(e.type == "llm_token" for e in events)
    assert str(events[-1]) == f"event: agent_end\ndata: {json.dumps(events[-1].data, separators=(',', ':'))}\nid: {events[-1].id}\n\n"
    assert events[-1].data["output"] == "The result of 25 * 4 is 100."
    assert set(first) == {"output", "session_id", "actor_id", "run_id", "steps", "metrics"} and first["session_id"] == session_id
    assert "Alice" in second["output"] and second["metrics"]["tokens"] > 0


async def test_http_refusal_is_an_http_error(server):
    async with AgentClient(base_url=server.url) as client:
        with pytest.raises(AgentHTTPError) as caught:
            async for _ in client.stream({"prompt": ""}):
                pass
    assert caught.value.status == 400 and caught.value.code == "invalid_payload" and caught.value.message
    assert caught.value.body["error"]["details"]


async def test_payload_goes_out_with_stream_true_and_the_session_header(serve):
    seen: list[dict[str, Any]] = []
    url = serve(scripted_app([START, END], seen=seen))
    async with AgentClient(base_url=url) as client:
        assert (await client.invoke({"prompt": "hi", "session_id": "abc"}))["output"] == "ok"
        await client.invoke({"prompt": "hi"})
    assert seen[0]["body"] == {"prompt": "hi", "session_id": "abc", "stream": True}
    assert seen[0]["headers"][SESSION_HEADER.lower()] == "abc" and SESSION_HEADER.lower() not in seen[1]["headers"]


async def test_failed_turn_is_the_last_event_of_stream_and_raised_by_invoke(serve):
    error = encode_frame("error", {"error": "The model is throttling requests; retry shortly.", "type": "AgentError",
                                   "code": "model_throttled", "retryable": True, "timestamp": "t"}, 2)
    url = serve(scripted_app([START, error]))
    async with AgentClient(base_url=url) as client:
        events = [e async for e in client.stream({"prompt": "hi"})]
        with pytest.raises(AgentStreamError) as caught:
            await client.invoke({"prompt": "hi"})
    assert [e.type for e in events] == ["agent_start", "error"]
    assert (caught.value.code, caught.value.retryable) == ("model_throttled", True)
    assert "throttling" in caught.value.message


async def test_stream_cut_short_raises(serve):
    url = serve(scripted_app([START]))
    async with AgentClient(base_url=url) as client:
        with pytest.raises(AgentStreamError, match="incomplete_stream"):
            await client.invoke({"prompt": "hi"})


# --- (d) retries ------------------------------------------------------------------------------------------------


def bound_socket() -> socket.socket:
    """A port that refuses connections (bound, not listening) until a server starts on the socket."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    return sock


async def test_connection_refused_then_accepted_is_retried(caplog):
    sock = bound_socket()
    server = uvicorn.Server(uvicorn.Config(scripted_app([START, END]), log_level="warning", lifespan="off"))
    # Starts listening on the same socket 0.4 s after the client's first attempt was refused.
    starter = threading.Timer(0.4, server.run, kwargs={"sockets": [sock]})
    caplog.set_level(logging.WARNING, logger="bedrock.client")
    try:
        async with AgentClient(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", retries=6, backoff_s=0.1) as client:
            starter.start()
            events = [e async for e in client.stream({"prompt": "hi"})]
    finally:
        starter.cancel()  # in case it never fired
        server.should_exit = True
        starter.join(5)
        sock.close()
    assert [e.type for e in events] == ["agent_start", "agent_end"]
    assert sum("retry" in record.getMessage() for record in caplog.records) >= 1


async def test_port_that_never_accepts_raises_connection_error_quickly(caplog):
    sock = bound_socket()
    caplog.set_level(logging.WARNING, logger="bedrock.client")
    began = time.monotonic()
    try:
        async with AgentClient(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", backoff_s=0.02) as client:
            with pytest.raises(AgentConnectionError, match="after 4 attempt") as caught:
                await client.invoke({"prompt": "hi"})
    finally:
        sock.close()
    assert time.monotonic() - began < 2
    assert isinstance(caught.value, ConnectionError)  # what the guide's retry loop catches
    assert sum("retry" in record.getMessage() for record in caplog.records) == 3


# --- (e) timeout ------------------------------------------------------------------------------------------------


async def test_whole_turn_timeout(serve):
    url = serve(scripted_app([START], then_sleep_s=30))
    received: list[str] = []
    began = time.monotonic()
    async with AgentClient(base_url=url, timeout=0.5) as client:
        with pytest.raises(AgentTimeoutError, match="0.5 s timeout"):
            async for event in client.stream({"prompt": "hi"}):
                received.append(event.type)
    assert received == ["agent_start"] and 0.5 <= time.monotonic() - began < 3


# --- (a) the starter toolkit's CLI, (f) our CLI, and the examples -----------------------------------------------


def test_agentcore_invoke_dev_reaches_the_server(server, session_id, tmp_path):
    agentcore = Path(sys.executable).parent / "agentcore"
    env = {**os.environ, "COLUMNS": "400", "AGENTCORE_SUPPRESS_RECOMMENDATION": "1"}
    payload = json.dumps({**CALC, "stream": True})
    result = run([str(agentcore), "invoke", "--dev", "--port", str(server.port), "--session-id", session_id, payload],
                 cwd=tmp_path, env=env)  # it posts to http://localhost:PORT; the server listens on 127.0.0.1
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Development Server Not Found" not in result.stdout
    assert session_id in result.stdout  # agent_start's data
    assert '"tool_name": "calculator"' in result.stdout and "The result of 25 * 4 is 100." in result.stdout


def test_cli_prints_tokens_then_metrics(server):
    result = run([sys.executable, "-m", "bedrock.client", "--url", server.url, "What is 25 * 4?"], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:-1] == ["I'll calculate that for you.", "The result of 25 * 4 is 100."]
    assert METRICS_LINE.fullmatch(lines[-1]) and "tool_calls=1 errors=0" in lines[-1]


def test_cli_prints_tokens_live_before_the_end(make_server):
    live = make_server({"OFFLINE_TOKEN_DELAY_MS": "40"})  # as `make run` paces it
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "bedrock.client", "--url", live.url, "Tell me about the sea"],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    first = process.stdout.read(1)  # the first character of the first token
    first_at = time.monotonic() - started
    rest = process.stdout.read()
    assert process.wait(30) == 0
    ended_at = time.monotonic() - started
    assert first and METRICS_LINE.fullmatch((first + rest).splitlines()[-1])
    # ~40 chunks at 40 ms: output starts about 1.5 s before the end, not with it (the interpreter start is shared).
    assert ended_at - first_at > 0.3


def test_cli_refusal_exits_1_with_the_message_on_stderr(server):
    result = run([sys.executable, "-m", "bedrock.client", "--url", server.url, ""], cwd=ROOT)
    assert result.returncode == 1 and result.stdout == ""
    assert "invalid_payload" in result.stderr and "Traceback" not in result.stderr


def test_cli_over_a_runtime_arn(standin, session_id):
    args = ["--arn", ARN, "--endpoint-url", standin.url, "--session", session_id, "What is 7 * 6?"]
    result = run([sys.executable, "-m", "bedrock.client", *args], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "42" in result.stdout and METRICS_LINE.fullmatch(result.stdout.splitlines()[-1])
    assert standin.calls[0]["session_id"] == session_id  # already 33+ characters: used as it is


def test_examples_run_from_inside_bedrock(server):
    result = run([sys.executable, "streaming_client_example.py", "--url", server.url], cwd=ROOT / "bedrock")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "The result of 25 * 4 is 100." in out and "144" in out
    assert "turn 2: Your name is Alice." in out and "HTTP 400 invalid_payload" in out


# --- (c) runs that outlive their connection: re-attach, cancel, status ----------------------------------------------


@pytest.fixture
def paced_standin(make_server, serve) -> RuntimeStandIn:
    live = make_server({"OFFLINE_TOKEN_DELAY_MS": "20", "TOKEN_BUFFER_SIZE": "1"})
    runtime = RuntimeStandIn(live.url)
    runtime.url = serve(runtime.app)  # type: ignore[attr-defined]
    return runtime


@pytest.mark.parametrize("over", ["http", "runtime ARN"])
async def test_stream_survives_two_dropped_connections_and_yields_each_event_once(paced_standin, over, session_id,
                                                                                   caplog):
    """The stand-in cuts the connection after 4 frames, then again after 5 more: the client re-attaches to
    the same run each time and the events it yields are the run's, each once, in order."""
    paced_standin.drop_after = [4, 5]
    kwargs = ({"base_url": paced_standin.url} if over == "http" else
              {"agent_runtime_arn": ARN, "endpoint_url": paced_standin.url, "region": "us-east-1"})
    caplog.set_level(logging.WARNING, logger="bedrock.client")
    async with AgentClient(**kwargs, backoff_s=0.01, timeout=60) as client:  # type: ignore[arg-type]
        events = [e async for e in client.stream({"prompt": "Tell me about the sea", "session_id": session_id,
                                                  "stream_tokens": True})]
        status = await client.status(session_id)
    ids = [e.id for e in events]
    assert ids == list(range(1, len(ids) + 1)) and events[-1].type == "agent_end"
    assert status["last_event_id"] == ids[-1] and status["state"] == "completed"
    assert len(paced_standin.upstream) == 4  # the run, two resumes of it (the run itself ran once), the status
    assert sum("re-attaching" in r.getMessage() for r in caplog.records) == 2
    whole = frames_of(paced_standin.upstream[0].body)  # what the container sent the first (cut) call
    assert [(t, d) for t, d, _ in whole] == [(e.type, e.data) for e in events]


@pytest.mark.parametrize("over", ["http", "runtime ARN"])
async def test_cancel_and_status_from_the_client(paced_standin, over, session_id):
    kwargs = ({"base_url": paced_standin.url} if over == "http" else
              {"agent_runtime_arn": ARN, "endpoint_url": paced_standin.url, "region": "us-east-1"})
    async with AgentClient(**kwargs, timeout=60) as client:  # type: ignore[arg-type]
        seen = []
        async for event in client.stream({"prompt": "Tell me about the sea", "session_id": session_id,
                                          "stream_tokens": True}):
            seen.append(event)
            if len(seen) == 4:
                answer = await client.cancel(session_id, seen[0].data["run_id"])
                assert answer == {"session_id": session_id, "run_id": seen[0].data["run_id"], "status": "cancelled"}
        assert seen[-1].type == "error" and seen[-1].data["code"] == "cancelled"
        assert (await client.status(session_id))["state"] == "cancelled"
        with pytest.raises(AgentHTTPError) as none:
            await client.cancel(session_id)
        assert none.value.status == 404 and none.value.code == "no_active_run"
        history = await client.history(session_id)  # the cancelled turn was rolled back: nothing kept
        assert history == {"session_id": session_id, "messages": [], "truncated": False, "pending": [], "run": None}


def test_cli_ctrl_c_cancels_the_run(make_server, session_id):
    # 100 ms a token: the ~30-token answer takes ~3 s, so a busy machine still signals the client mid-stream.
    live = make_server({"OFFLINE_TOKEN_DELAY_MS": "100"})
    # A shell without job control starts background commands with SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: a test run so (`make test &` in a script) once saw the CLI finish its answer and
    # exit 0, as a terminal's Ctrl-C never would. The client starts as from a terminal: SIGINT at its default.
    process = subprocess.Popen([sys.executable, "-m", "bedrock.client", "--url", live.url, "--session", session_id,
                                "Tell me about the sea"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stdout is not None and process.stdout.read(1)  # streaming has begun
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and "cancelled run run-" in err, err
    status = loopback.post(live.url + "/invocations", json={"action": "status", "session_id": session_id}, timeout=10)
    assert status.json()["state"] == "cancelled"


# --- (d) approvals: the client's resume, the CLI's y/N -----------------------------------------------------------


async def test_client_resume_answers_an_approval(make_server, session_id):
    live = make_server({"APPROVAL_REQUIRED_TOOLS": "calculator"})
    async with AgentClient(base_url=live.url) as client:
        first = [e async for e in client.stream({**CALC, "session_id": session_id})]
        pending = first[-1].data["interrupts"][0]
        assert first[-2].type == "interrupt" and first[-1].data["status"] == "interrupted"
        rest = [e async for e in client.resume(session_id, pending["interrupt_id"], True, {"expression": "6 * 7"})]
        assert rest[-1].type == "agent_end" and "42" in rest[-1].data["output"]


@pytest.mark.parametrize("answer, expected", [("y\n", "100"), ("n\n", "couldn't calculate"), ("", "couldn't")])
def test_cli_asks_y_or_n_at_an_approval(make_server, session_id, answer, expected):
    live = make_server({"APPROVAL_REQUIRED_TOOLS": "calculator"})
    result = subprocess.run([sys.executable, "-m", "bedrock.client", "--url", live.url, "--session", session_id,
                             "What is 25 * 4?"], cwd=ROOT, input=answer, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'Run calculator({"expression": "25 * 4"})? [y/N]' in result.stderr
    assert "[waiting for approval: calculator" in result.stdout and expected in result.stdout
