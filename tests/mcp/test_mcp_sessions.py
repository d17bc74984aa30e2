"""Kept MCP sessions: calls reuse one (a stdio server's process is started once), a call cut short takes its
session with it, a restarted server is reached again without resending a call it may have run, and draining the
agent ends the idle sessions (and a stdio server's process)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from mcp.types import TextContent

from bedrock.mcp import sessions as sessions_module
from bedrock.mcp.sessions import SessionPools
from testkit.mcp_server import ROOT, McpServer, alive

STDIO = {"transport": "stdio", "command": sys.executable, "args": ["-m", "testkit.mcp_server", "stdio"],
         "cwd": str(ROOT)}


@pytest.fixture
def http(tmp_path: Path) -> Iterator[McpServer]:
    with McpServer(tmp_path / "state") as server:
        yield server


def pools_for(http: McpServer, state: Path) -> SessionPools:
    from bedrock.mcp.calls import mcp_http_client

    stdio = {**STDIO, "env": {"TESTKIT_MCP_STATE": str(state), "PATH": os.environ["PATH"]}}
    return SessionPools({"h": {"transport": "streamable_http", "url": http.url, "httpx_client_factory": mcp_http_client},
                         "s": stdio})


def text(result: Any) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


def pids(state: Path) -> list[int]:
    events = (state / "events").read_text().split() if (state / "events").exists() else []
    return [int(e.rsplit("-", 1)[1]) for e in events if e.startswith("nap-start-")]


async def test_calls_one_after_another_reuse_one_session_and_one_stdio_process(http, tmp_path):
    pools = pools_for(http, http.state)
    for i in range(5):
        assert text(await pools.call("h", "add", {"a": i, "b": 1})) == str(i + 1)
        assert text(await pools.call("s", "nap", {"seconds": 0})) == "napped 0.0"
    assert pools.pool("h").opened == 1 and pools.pool("s").opened == 1
    (pid,) = set(pids(http.state))  # one process served every stdio call
    await pools.close_idle()
    await asyncio.sleep(0)
    for _ in range(200):
        if not alive(pid):
            break
        await asyncio.sleep(0.02)
    assert not alive(pid)  # the drain ended it


async def test_calls_at_once_each_have_a_session_and_a_few_stay_idle(http, tmp_path):
    pools = pools_for(http, http.state)
    results = await asyncio.gather(*(pools.call("h", "add", {"a": i, "b": 0}) for i in range(10)))
    assert [text(r) for r in results] == [str(i) for i in range(10)]
    pool = pools.pool("h")
    assert pool.opened == 10 and len(pool.idle) == sessions_module.MAX_IDLE
    await pools.call("h", "add", {"a": 1, "b": 1})
    assert pool.opened == 10  # an idle one served it
    await pools.close_idle()


async def test_a_cancelled_call_takes_its_session_with_it(http, tmp_path):
    pools = pools_for(http, http.state)
    await pools.call("h", "add", {"a": 1, "b": 1})
    call = asyncio.ensure_future(pools.call("h", "slow", {"seconds": 60}))
    for _ in range(500):
        if "slow-start" in http.events():
            break
        await asyncio.sleep(0.02)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    for _ in range(500):
        if "slow-cancelled" in http.events():
            break
        await asyncio.sleep(0.02)
    assert "slow-cancelled" in http.events()  # the server's call ended with the session
    assert pools.pool("h").idle == []  # not given back
    assert text(await pools.call("h", "add", {"a": 2, "b": 2})) == "4" and pools.pool("h").opened == 2
    await pools.close_idle()


async def test_a_restarted_server_is_reached_on_a_new_session_and_a_dead_one_fails_fast(http, tmp_path):
    pools = pools_for(http, http.state)
    await pools.call("h", "add", {"a": 1, "b": 1})
    http.stop()
    with pytest.raises(Exception) as down:
        await asyncio.wait_for(pools.call("h", "add", {"a": 1, "b": 1}), 10)
    assert "ConnectError" in repr(down.value)
    http.start()  # a new process: the idle sessions' ids mean nothing to it
    assert text(await asyncio.wait_for(pools.call("h", "add", {"a": 2, "b": 3}), 10)) == "5"
    await pools.close_idle()


async def test_an_idle_session_the_server_forgot_is_replaced_and_the_call_sent_once(http, tmp_path):
    pools = pools_for(http, http.state)
    await pools.call("h", "echo", {"text": "one"})
    http.kill()
    http.start()  # the idle session's id is unknown to the new process: 404, "Session terminated"
    assert text(await asyncio.wait_for(pools.call("h", "echo", {"text": "two"}), 10)) == "echo: two"
    assert pools.pool("h").opened == 2
    await pools.close_idle()


async def test_a_server_that_never_answers_initialize_is_given_up_at_once_when_the_call_is_cancelled(
        tmp_path, monkeypatch):
    import socket
    import time

    from bedrock.mcp.calls import mcp_http_client

    monkeypatch.setattr(sessions_module, "CLOSE_WAIT_S", 120.0)  # a polite close would wait this long
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel accepts connections; nobody reads or answers them
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/mcp"
        pools = SessionPools({"h": {"transport": "streamable_http", "url": url,
                                    "httpx_client_factory": mcp_http_client}})
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pools.call("h", "add", {"a": 1, "b": 1}), 0.3)
        assert time.monotonic() - started < 60  # not the polite close's wait: the opening task was cancelled
        await asyncio.sleep(0.05)
        leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        assert leftover == []
    finally:
        silent.close()


async def test_a_changed_tool_list_is_said_once_naming_the_server(http, tmp_path, caplog):
    pools = pools_for(http, http.state)
    assert text(await pools.call("h", "grow", {"name": "sprout"})) == "grew sprout"
    for _ in range(250):  # the notification comes on the session's own stream, after or before the answer
        if "changed its tools" in caplog.text:
            break
        await asyncio.sleep(0.02)
    assert "MCP server 'h' changed its tools (notifications/tools/list_changed)" in caplog.text
    await pools.call("h", "grow", {"name": "sprout2"})
    await asyncio.sleep(0.2)
    assert caplog.text.count("changed its tools") == 1
    await pools.close_idle()


async def test_calls_at_once_on_a_stdio_server_start_at_most_max_stdio_calls_processes(http, tmp_path):
    pools = pools_for(http, http.state)
    results = await asyncio.gather(*(pools.call("s", "nap", {"seconds": 0.3}) for _ in range(20)))
    assert all(text(r) == "napped 0.3" for r in results)
    assert pools.pool("s").opened <= sessions_module.MAX_STDIO_CALLS
    assert len(set(pids(http.state))) <= sessions_module.MAX_STDIO_CALLS
    await pools.close_idle()


async def test_an_idle_stdio_session_whose_process_died_is_replaced(http, tmp_path, monkeypatch):
    monkeypatch.setattr(sessions_module, "PROBE_AFTER_S", 0.0)  # however soon after its last call it died
    pools = pools_for(http, http.state)
    assert text(await pools.call("s", "nap", {"seconds": 0})) == "napped 0.0"
    (pid,) = pids(http.state)
    os.kill(pid, 9)
    for _ in range(250):
        if not alive(pid):
            break
        await asyncio.sleep(0.02)
    assert text(await asyncio.wait_for(pools.call("s", "shout", {"text": "again"}), 30)) == "AGAIN"
    assert pools.pool("s").opened == 2
    await pools.close_idle()
