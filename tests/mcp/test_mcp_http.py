"""MCP tools through the served runtime (a server process with MCP_SERVERS): a streamed turn over /invocations
calls them; with MCP_REQUIRED=1 and the server down, requests get a retryable 503 until it is up, and the next
request after that builds the agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from testkit.env import OFFLINE_ENV
from testkit.live_server import LiveServer
from testkit.mcp_server import ROOT, McpServer
from testkit.sse import frames_of

STDIO = {"command": sys.executable, "args": ["-m", "testkit.mcp_server", "stdio"], "cwd": str(ROOT)}


def invoke(url: str, payload: dict) -> httpx.Response:
    return httpx.post(f"{url}/invocations", json=payload, timeout=30)


def test_a_streamed_turn_calls_an_mcp_tool_over_invocations(tmp_path: Path, session_id):
    with McpServer(tmp_path / "http") as mcp_server:
        servers = {"remote": {"transport": "streamable_http", "url": mcp_server.url}, "local": STDIO}
        with LiveServer({"MCP_SERVERS": json.dumps(servers)}) as live:
            body = invoke(live.url, {"prompt": 'add({"a": 19, "b": 23})', "session_id": session_id,
                                     "stream": True}).content
            frames = frames_of(body)
            tool = next(data for kind, data, _ in frames if kind == "agent_step" and data["type"] == "tool")
            assert (tool["tool_name"], tool["content"], tool["status"]) == ("add", "42", "success")
            assert frames[-1][0] == "agent_end" and frames[-1][1]["output"] == "add returned: 42"
            answer = invoke(live.url, {"prompt": 'shout({"text": "loud"})', "session_id": session_id}).json()
            assert answer["output"] == "shout returned: LOUD"


def test_mcp_required_with_the_server_down_stops_the_process_naming_it(tmp_path: Path):
    """As any agent that cannot be built: the process ends (AgentCore starts another), its log names the server."""
    mcp_server = McpServer(tmp_path / "http")
    mcp_server.stop()
    servers = {"remote": {"transport": "streamable_http", "url": mcp_server.url}}
    env = {**os.environ, **OFFLINE_ENV, "PORT": "0", "BIND_HOST": "127.0.0.1", "AGENT_MEMORY_PATH": str(tmp_path / "m.sqlite"),
           "MCP_SERVERS": json.dumps(servers), "MCP_REQUIRED": "1"}
    done = subprocess.run([sys.executable, "-m", "bedrock.agent_runtime"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode != 0
    assert (f"MCP server 'remote' (http://127.0.0.1:{mcp_server.port}) is unavailable: ConnectError; MCP_REQUIRED=1 "
            "refuses to serve without its tools") in done.stderr


async def test_mcp_required_in_process_answers_503_until_the_server_is_up(tmp_path: Path, session_id):
    """An embedded app (or stream_agent) keeps serving: a retryable 503 until the build finds the server."""
    from bedrock.config import Settings
    from bedrock.errors import AgentError
    from bedrock.server.app import build_app

    mcp_server = McpServer(tmp_path / "http")
    mcp_server.stop()
    config = Settings(memory_backend="memory", mcp_required=True, mcp_servers=json.dumps(
        {"remote": {"transport": "streamable_http", "url": mcp_server.url}}))
    runtime = build_app(config).state.runtime
    try:
        with pytest.raises(AgentError) as refused:
            await runtime.ainvoke({"prompt": "hi", "session_id": session_id})
        assert (refused.value.code, refused.value.status, refused.value.retryable) == ("tools_unavailable", 503, True)
        mcp_server.start()
        done = await runtime.ainvoke({"prompt": 'add({"a": 1, "b": 2})', "session_id": session_id})
        assert done["output"] == "add returned: 3"
    finally:
        mcp_server.stop()
        if runtime.agent is not None:
            runtime.agent.close()


def test_sigterm_during_an_mcp_call_ends_the_turn_and_the_call(tmp_path: Path, session_id):
    with McpServer(tmp_path / "http") as mcp_server:
        servers = {"remote": {"transport": "streamable_http", "url": mcp_server.url}}
        live = LiveServer({"MCP_SERVERS": json.dumps(servers), "SHUTDOWN_GRACE_S": "1"})
        try:
            with httpx.stream("POST", f"{live.url}/invocations", timeout=60, json={
                    "prompt": 'slow({"seconds": 600})', "session_id": session_id, "stream": True}) as response:
                body, chunks = b"", response.iter_bytes()
                for chunk in chunks:
                    body += chunk
                    if b'"tool_calls"' in body:
                        break
                deadline = time.monotonic() + 30
                while "slow-start" not in mcp_server.events():  # the call has reached the server
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
                live.process.send_signal(15)
                body += b"".join(chunks)
        finally:
            live.stop()
        frames = frames_of(body)
        assert frames[-1][0] == "error" and frames[-1][1]["code"] == "server_shutting_down"
        deadline = time.monotonic() + 30
        while "slow-cancelled" not in mcp_server.events():  # the session closed with the turn: the server's call too
            assert time.monotonic() < deadline, mcp_server.events()
            time.sleep(0.05)


@pytest.mark.parametrize("on_disconnect", ["cancel", "continue"])
def test_a_client_leaving_mid_call(tmp_path: Path, session_id, on_disconnect):
    """`cancel`: the run, and the server's call with it, end when the client leaves, and nothing is kept;
    `continue` (the default): the call and the turn go on without the client, and the turn is kept."""
    with McpServer(tmp_path / "http") as mcp_server:
        servers = {"remote": {"transport": "streamable_http", "url": mcp_server.url}}
        seconds = 600 if on_disconnect == "cancel" else 1
        with LiveServer({"MCP_SERVERS": json.dumps(servers)}) as live:
            with httpx.stream("POST", f"{live.url}/invocations", timeout=60, json={
                    "prompt": f'slow({{"seconds": {seconds}}})', "session_id": session_id, "stream": True,
                    "on_disconnect": on_disconnect}) as response:
                body, chunks = b"", response.iter_bytes()  # kept: a dropped iterator closes the connection
                for chunk in chunks:
                    body += chunk
                    if b'"tool_calls"' in body:
                        break
                deadline = time.monotonic() + 30
                while "slow-start" not in mcp_server.events():
                    assert time.monotonic() < deadline, (body, mcp_server.events())
                    time.sleep(0.02)
            # the connection is closed here, the call still running on the MCP server
            wanted = "cancelled" if on_disconnect == "cancel" else "completed"
            deadline = time.monotonic() + 30
            while (status := invoke(live.url, {"action": "status", "session_id": session_id}).json())[
                    "state"] != wanted:
                assert time.monotonic() < deadline, status
                time.sleep(0.05)
            history = invoke(live.url, {"action": "history", "session_id": session_id}).json()
            if on_disconnect == "cancel":
                assert "slow-cancelled" in mcp_server.events() and history["messages"] == []
            else:
                assert "slow-end" in mcp_server.events() and len(history["messages"]) == 4
            after = invoke(live.url, {"prompt": 'add({"a": 1, "b": 1})', "session_id": session_id}).json()
            assert after["output"] == "add returned: 2"
