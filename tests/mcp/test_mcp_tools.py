"""The agent with real MCP servers (testkit's FastMCP, over streamable HTTP in a process of its own, and over stdio):
the offline model calls their tools by name, and every fault — down at start, killed mid-call, too slow, raising,
10 MB, restarted — ends the turn with an error result the model reads, nothing stored half, the next turn working."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from bedrock.config import ConfigError, Settings
from bedrock.core.build import build_agent
from bedrock.core.loader import GraphLoadError, GraphSource
from bedrock.server.app import build_app
from bedrock.server.runtime import Runtime
from testkit.mcp_server import ROOT, McpServer, alive

GRAPHS = ROOT / "tests" / "graphs"
STDIO = {"command": sys.executable, "args": ["-m", "testkit.mcp_server", "stdio"], "cwd": str(ROOT)}
_RUNTIMES: list[Runtime] = []


@pytest.fixture
def http(tmp_path: Path) -> Iterator[McpServer]:
    with McpServer(tmp_path / "http-state") as server:
        yield server


@pytest.fixture(autouse=True)
def close_runtimes() -> Iterator[None]:
    yield
    while _RUNTIMES:
        _RUNTIMES.pop().get_agent().close()



def runtime_for(servers: dict[str, Any], source: GraphSource | None = None, **settings: Any) -> Runtime:
    config = Settings(memory_backend="memory", mcp_servers=json.dumps(servers), **settings)
    runtime = build_app(config, agent=build_agent(config, source=source)).state.runtime
    _RUNTIMES.append(runtime)
    return runtime


async def turn(runtime: Runtime, session_id: str, prompt: str) -> list[Any]:
    return [event async for event in runtime.stream({"prompt": prompt, "session_id": session_id})]


def tool_results(events: list[Any]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.type == "agent_step" and e.data["type"] == "tool"]


def ended(events: list[Any]) -> dict[str, Any]:
    assert events[-1].type == "agent_end", [(e.type, e.data) for e in events]
    return events[-1].data


async def kept(runtime: Runtime, session_id: str) -> list[tuple[str, str]]:
    state = await runtime.get_agent().graph.aget_state({"configurable": {"thread_id": session_id}})
    return [(m.type, m.text) for m in state.values.get("messages", [])]


async def test_the_model_calls_tools_over_streamable_http_and_stdio_beside_the_calculator(http, session_id):
    runtime = runtime_for({"remote": {"transport": "streamable_http", "url": http.url}, "local": STDIO})
    names = {tool.name for tool in runtime.get_agent().graph.nodes["tools"].bound.tools_by_name.values()}
    assert names == {"calculator", "remember", "add", "echo", "slow", "fail", "big", "grow", "shout", "word_count", "nap"}
    for prompt, answer in (('add({"a": 2, "b": 3})', "5"), ('echo({"text": "hi"})', "echo: hi"),
                           ('shout({"text": "hello"})', "HELLO"), ('word_count({"text": "a b c"})', "3"),
                           ('calculator({"expression": "6 * 7"})', "42")):
        events = await turn(runtime, session_id, prompt)
        result, = tool_results(events)
        assert (result["content"], result["status"]) == (answer, "success")
        assert ended(events)["status"] == "completed" and answer in ended(events)["output"]
    assert len(await kept(runtime, session_id)) == 5 * 4


async def test_an_approval_names_the_mcp_tool_and_the_server_receives_the_edited_args(http, session_id):
    runtime = runtime_for({"remote": {"transport": "streamable_http", "url": http.url}},
                          approval_required_tools=("add",))
    events = await turn(runtime, session_id, 'add({"a": 2, "b": 3})')
    pending = events[-2].data
    assert events[-2].type == "interrupt" and (pending["tool_name"], pending["args"]) == ("add", {"a": 2, "b": 3})
    resumed = [e async for e in runtime.stream({"session_id": session_id, "resume": {
        "interrupt_id": pending["interrupt_id"], "approved": True, "args": {"a": 40, "b": 2}}})]
    assert tool_results(resumed)[0]["content"] == "42" and ended(resumed)["metrics"]["approvals_granted"] == 1


async def test_a_server_down_at_start_leaves_its_tools_out_and_says_so(http, session_id, caplog):
    http.stop()
    runtime = runtime_for({"remote": {"transport": "streamable_http", "url": f"{http.url}?key=SECRET"},
                           "local": STDIO})
    names = set(runtime.get_agent().graph.nodes["tools"].bound.tools_by_name)
    assert names == {"calculator", "remember", "shout", "word_count", "nap"}
    assert "MCP server 'remote' (http://127.0.0.1:" in caplog.text and "unavailable: ConnectError" in caplog.text
    assert "SECRET" not in caplog.text
    events = await turn(runtime, session_id, 'add({"a": 2, "b": 3})')  # not offered: plain text to the model
    assert ended(events)["status"] == "completed" and not tool_results(events)


async def test_mcp_required_refuses_to_build_until_the_server_is_up(http, session_id):
    http.stop()
    config = Settings(memory_backend="memory", mcp_required=True,
                      mcp_servers=json.dumps({"remote": {"transport": "streamable_http", "url": http.url}}))
    with pytest.raises(ConfigError, match=r"MCP server 'remote' \(http://127.0.0.1:\d+\) is unavailable: "
                                          r"ConnectError; MCP_REQUIRED=1"):
        build_agent(config)
    http.start()
    agent = build_agent(config)
    try:
        assert "add" in agent.graph.nodes["tools"].bound.tools_by_name
    finally:
        agent.close()


async def wait_for(condition: Any, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_server_killed_mid_call_is_an_error_result_and_after_its_restart_the_next_turn_works(
        http, session_id):
    # A timeout far beyond the wait below: the call can end only because its server's death was seen.
    runtime = runtime_for({"remote": {"transport": "streamable_http", "url": http.url}}, mcp_tool_timeout_s=600)
    running = asyncio.ensure_future(turn(runtime, session_id, 'slow({"seconds": 600})'))
    await wait_for(lambda: "slow-start" in http.events())
    http.kill()
    events = await asyncio.wait_for(running, 60)
    result, = tool_results(events)
    assert result["status"] == "error" and result["content"].startswith("Error: the MCP server 'remote' failed to "
                                                                        "run slow (")
    assert ended(events)["status"] == "completed" and ended(events)["metrics"]["errors"] == 1
    http.start()  # the same port: the next call opens a new session to it
    after = await turn(runtime, session_id, 'add({"a": 1, "b": 1})')
    assert tool_results(after)[0]["content"] == "2"
    assert [kind for kind, _ in await kept(runtime, session_id)] == ["human", "ai", "tool", "ai"] * 2


async def test_a_call_past_mcp_tool_timeout_s_is_an_error_result_and_counted(http, session_id):
    runtime = runtime_for({"remote": {"transport": "streamable_http", "url": http.url}}, mcp_tool_timeout_s=0.5)
    started = time.monotonic()
    events = await turn(runtime, session_id, 'slow({"seconds": 30})')
    assert time.monotonic() - started < 10
    result, = tool_results(events)
    assert (result["content"], result["status"]) == ("Error: the MCP server 'remote' did not answer slow within "
                                                     "0.5 s", "error")
    assert ended(events)["metrics"]["errors"] == 1 and "did not answer" in ended(events)["output"]


async def test_a_tool_raising_is_an_error_result_the_model_reads(http, session_id):
    runtime = runtime_for({"remote": {"transport": "streamable_http", "url": http.url}})
    events = await turn(runtime, session_id, 'fail({"message": "boom"})')
    result, = tool_results(events)
    assert result["status"] == "error" and result["content"].startswith("Error")
    assert "failed on purpose: boom" in result["content"] and ended(events)["metrics"]["errors"] == 1
    again = await turn(runtime, session_id, 'add({"a": 1, "b": 2})')
    assert tool_results(again)[0]["content"] == "3"


async def test_a_10_mb_result_is_cut_to_max_tool_result_bytes_before_it_is_kept(http, session_id):
    runtime = runtime_for({"remote": {"transport": "streamable_http", "url": http.url}}, max_tool_result_bytes=4096)
    events = await turn(runtime, session_id, 'big({"n_bytes": 10000000})')
    result, = tool_results(events)
    assert result["content"].startswith("x" * 4096) and result["content"].count("x") == 4096
    # 10 MB of text, and FastMCP's structured copy of it (`{"result": …}`): both counted, neither kept.
    assert "[cut: the tool's result was 20,000,014 bytes; the first 4,096 are kept" in result["content"]
    assert ended(events)["status"] == "completed"
    assert max(len(text) for _, text in await kept(runtime, session_id)) < 4096 + 1000


async def test_a_server_restarted_between_turns_is_reached_again(http, session_id):
    runtime = runtime_for({"remote": {"transport": "streamable_http", "url": http.url}}, mcp_tool_timeout_s=600)
    assert tool_results(await turn(runtime, session_id, 'add({"a": 1, "b": 1})'))[0]["content"] == "2"
    http.stop()
    down = await asyncio.wait_for(turn(runtime, session_id, 'add({"a": 2, "b": 2})'), 60)  # refused: at once
    assert tool_results(down)[0]["status"] == "error" and ended(down)["status"] == "completed"
    http.start()
    assert tool_results(await turn(runtime, session_id, 'add({"a": 3, "b": 3})'))[0]["content"] == "6"


@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_cancelling_a_turn_cancels_its_mcp_call_and_rolls_the_turn_back(http, session_id, transport, tmp_path):
    stdio = {**STDIO, "env": {"TESTKIT_MCP_STATE": str(http.state), "PATH": os.environ["PATH"]}}
    runtime = runtime_for({"remote": {"transport": "streamable_http", "url": http.url}, "local": stdio})
    assert tool_results(await turn(runtime, session_id, 'add({"a": 1, "b": 1})'))[0]["content"] == "2"
    prompt, mark = ('slow({"seconds": 60})', "slow-start") if transport == "http" else ('nap({"seconds": 60})',
                                                                                       "nap-start-")
    stream = runtime.stream({"prompt": prompt, "session_id": session_id})
    first = await stream.__anext__()
    assert first.type == "agent_start"
    rest = asyncio.ensure_future(_drain(stream))
    await wait_for(lambda: any(event.startswith(mark) for event in http.events()))
    started = time.monotonic()
    answer = await runtime.ainvoke({"action": "cancel", "run_id": first.data["run_id"], "session_id": session_id})
    events = await asyncio.wait_for(rest, 10)
    assert time.monotonic() - started < 5 and answer["status"] == "cancelled"
    assert events[-1].type == "error" and events[-1].data["code"] == "cancelled"
    if transport == "http":  # the server's own call ends with the session the cancel closed
        await wait_for(lambda: "slow-cancelled" in http.events())
    else:  # the stdio server's process is ended with its session
        pid = int(next(e for e in http.events() if e.startswith(mark)).removeprefix(mark))
        await wait_for(lambda: not alive(pid))
    assert [kind for kind, _ in await kept(runtime, session_id)] == ["human", "ai", "tool", "ai"]
    assert tool_results(await turn(runtime, session_id, 'add({"a": 2, "b": 2})'))[0]["content"] == "4"


async def _drain(stream: Any) -> list[Any]:
    return [event async for event in stream]


def test_two_servers_offering_one_name_are_refused_unless_prefixed(http, session_id):
    servers = {"one": {"transport": "streamable_http", "url": http.url},
               "two": {"transport": "streamable_http", "url": http.url}}
    with pytest.raises(ConfigError, match="MCP server 'two' and MCP server 'one' both offer a tool named 'add': set "
                                          "MCP_TOOL_PREFIX=1"):
        runtime_for(servers)
    names = set(runtime_for(servers, mcp_tool_prefix=True).get_agent().graph.nodes["tools"].bound.tools_by_name)
    assert {"one_add", "two_add", "calculator"} <= names and "add" not in names


def test_a_tool_named_like_the_agents_own_or_as_bedrock_refuses_is_refused():
    from langchain_core.tools import StructuredTool

    from bedrock.mcp import check_names

    def tool(name: str) -> StructuredTool:
        return StructuredTool.from_function(lambda: "", name=name, description="d", metadata={"mcp_server": "gw"})

    with pytest.raises(ConfigError, match="'gw' and the agent itself both offer a tool named 'calculator'"):
        check_names([tool("calculator")], others=("calculator",))
    with pytest.raises(ConfigError, match="'gw' offers a tool named 'get.weather', which Bedrock refuses"):
        check_names([tool("get.weather")])
    check_names([tool("a" * 64), tool("b-c_d")])


async def test_a_create_agent_factory_takes_mcp_tools_and_a_graph_ignoring_them_is_refused(http, session_id):
    servers = {"remote": {"transport": "streamable_http", "url": http.url}}
    runtime = runtime_for(servers, source=GraphSource(f"{GRAPHS / 'mcp_agent.py'}:graph", GRAPHS))
    events = await turn(runtime, session_id, 'add({"a": 20, "b": 22})')
    assert tool_results(events)[0]["content"] == "42" and ended(events)["status"] == "completed"
    with pytest.raises(GraphLoadError, match="MCP_SERVERS is set, but .*graph_without_mcp takes no MCP tools: give "
                                             "its factory an `mcp_tools` parameter"):
        runtime_for(servers, source=GraphSource(f"{GRAPHS / 'mcp_agent.py'}:graph_without_mcp", GRAPHS))
    without = build_agent(Settings(memory_backend="memory"),
                          source=GraphSource(f"{GRAPHS / 'mcp_agent.py'}:graph", GRAPHS))
    try:  # no MCP_SERVERS: the factory gets an empty list
        assert set(without.graph.nodes["tools"].bound.tools_by_name) == {"local_note"}
    finally:
        without.close()


def test_a_build_without_mcp_servers_imports_nothing_of_mcp(tmp_path: Path):
    code = ("import sys; from bedrock.config import Settings; from bedrock.core.build import build_agent; "
            "agent = build_agent(Settings(memory_backend='memory')); agent.close(); "
            "print('\\n'.join(m for m in sys.modules if m.split('.')[0] in ('mcp', 'langchain_mcp_adapters', "
            "'authlib') or m.startswith('bedrock.mcp')))")
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == []


async def test_a_stdio_server_dying_mid_call_is_an_error_result_and_the_next_call_starts_it_again(
        http, session_id):
    stdio = {**STDIO, "env": {"TESTKIT_MCP_STATE": str(http.state), "PATH": os.environ["PATH"]}}
    runtime = runtime_for({"local": stdio}, mcp_tool_timeout_s=600)
    running = asyncio.ensure_future(turn(runtime, session_id, 'nap({"seconds": 600})'))
    await wait_for(lambda: any(event.startswith("nap-start-") for event in http.events()))
    pid = int(next(e for e in http.events() if e.startswith("nap-start-")).removeprefix("nap-start-"))
    os.kill(pid, 9)
    events = await asyncio.wait_for(running, 60)
    result, = tool_results(events)
    assert result["status"] == "error" and result["content"].startswith("Error: the MCP server 'local' failed to run "
                                                                        "nap (")
    assert ended(events)["status"] == "completed"
    after = await turn(runtime, session_id, 'shout({"text": "back"})')
    assert tool_results(after)[0]["content"] == "BACK"
