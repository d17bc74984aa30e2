"""Every way a turn with an MCP call in flight can end — the caller's cancel, two cancels at once, REQUEST_TIMEOUT_S,
the model failing after the call — on a first turn and a later one, on every memory backend: each request is
answered, the server's call ends with the turn, the session keeps only whole turns, the slot comes back, and the
next turn works. (SIGTERM and a server dying mid-call: test_mcp_http.py, test_mcp_tools.py.)"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.offline.endpoint import HttpError, OfflineBedrockEndpoint
from bedrock.offline.rules import Reply, new_tool_call
from bedrock.server.app import build_app
from bedrock.server.runtime import Runtime
from testkit.mcp_server import McpServer

_OPEN: list[Runtime] = []


@pytest.fixture
def http(tmp_path: Path) -> Iterator[McpServer]:
    with McpServer(tmp_path / "state") as server:
        yield server


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "postgres":
        return {"memory_backend": "postgres", "database_url": request.getfixturevalue("postgres_url")}
    if request.param == "sqlite":
        return {"memory_backend": "sqlite", "memory_path": str(tmp_path / "m.sqlite")}
    return {"memory_backend": "memory"}


@pytest.fixture(autouse=True)
async def close_runtimes() -> Any:
    yield
    while _OPEN:
        agent = _OPEN.pop().get_agent()
        await agent.drain()
        agent.close()


def runtime_for(http: McpServer, backend: dict[str, Any], endpoint_url: str | None = None,
                **settings: Any) -> Runtime:
    config = Settings(mcp_servers=json.dumps({"remote": {"transport": "streamable_http", "url": http.url}}),
                      mcp_tool_timeout_s=600, **backend, **settings)
    runtime = build_app(config, agent=build_agent(config, endpoint_url)).state.runtime
    _OPEN.append(runtime)
    return runtime


async def kinds(runtime: Runtime, session_id: str) -> list[str]:
    state = await runtime.get_agent().graph.aget_state({"configurable": {"thread_id": session_id}})
    return [m.type for m in state.values.get("messages", [])]


async def until(condition: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def earlier_turn(runtime: Runtime, session_id: str, earlier: bool) -> list[str]:
    if earlier:
        done = await runtime.ainvoke({"prompt": 'add({"a": 1, "b": 1})', "session_id": session_id})
        assert done["output"] == "add returned: 2"
    return await kinds(runtime, session_id)


async def started_slow_call(runtime: Runtime, http: McpServer, session_id: str) -> tuple[Any, str]:
    """A run whose MCP call (slow, 600 s) has reached the server: its reader task and its run id."""
    stream = runtime.stream({"prompt": 'slow({"seconds": 600})', "session_id": session_id})
    first = await stream.__anext__()
    assert first.type == "agent_start"
    rest = asyncio.ensure_future(_drain(stream))
    await until(lambda: http.events().count("slow-start") == 1)
    return rest, first.data["run_id"]


async def _drain(stream: Any) -> list[Any]:
    return [event async for event in stream]


async def next_turn_works(runtime: Runtime, session_id: str, before: list[str]) -> None:
    assert await kinds(runtime, session_id) == before  # nothing of the cut turn kept
    assert runtime.slots.active == 0  # every slot back
    done = await runtime.ainvoke({"prompt": 'add({"a": 2, "b": 3})', "session_id": session_id})
    assert done["output"] == "add returned: 5"


@pytest.mark.parametrize("earlier", [False, True], ids=["first turn", "later turn"])
async def test_the_callers_cancel_mid_call(http, backend, session_id, earlier):
    runtime = runtime_for(http, backend)
    before = await earlier_turn(runtime, session_id, earlier)
    rest, run_id = await started_slow_call(runtime, http, session_id)
    answer = await runtime.ainvoke({"action": "cancel", "run_id": run_id, "session_id": session_id})
    events = await asyncio.wait_for(rest, 30)
    assert answer["status"] == "cancelled" and events[-1].data["code"] == "cancelled"
    await until(lambda: "slow-cancelled" in http.events())
    await next_turn_works(runtime, session_id, before)


@pytest.mark.parametrize("earlier", [False, True], ids=["first turn", "later turn"])
async def test_two_cancels_in_the_same_instant_mid_call(http, backend, session_id, earlier):
    runtime = runtime_for(http, backend)
    before = await earlier_turn(runtime, session_id, earlier)
    rest, run_id = await started_slow_call(runtime, http, session_id)
    cancel = {"action": "cancel", "run_id": run_id, "session_id": session_id}
    answers = await asyncio.gather(runtime.ainvoke(cancel), runtime.ainvoke(cancel))
    assert [a["status"] for a in answers] == ["cancelled", "cancelled"]
    events = await asyncio.wait_for(rest, 30)
    assert [e.data["code"] for e in events if e.type == "error"] == ["cancelled"]  # one terminal event
    await until(lambda: "slow-cancelled" in http.events())
    assert http.events().count("slow-cancelled") == 1
    await next_turn_works(runtime, session_id, before)


@pytest.mark.parametrize("earlier", [False, True], ids=["first turn", "later turn"])
async def test_request_timeout_mid_call(http, backend, session_id, earlier):
    # 4 s: time for the call to reach the server first, even on a busy machine (with 1 s, a loaded run's first turn
    # on PostgreSQL timed out before its session had opened, and no call was in flight to cut).
    runtime = runtime_for(http, backend, request_timeout_s=4.0)
    before = await earlier_turn(runtime, session_id, earlier)
    events = [e async for e in runtime.stream({"prompt": 'slow({"seconds": 600})', "session_id": session_id})]
    assert events[-1].type == "error" and events[-1].data["code"] == "timeout"
    assert "slow-start" in http.events()  # the timeout landed mid-call
    await until(lambda: "slow-cancelled" in http.events())
    await next_turn_works(runtime, session_id, before)


@pytest.mark.parametrize("earlier", [False, True], ids=["first turn", "later turn"])
async def test_the_model_failing_after_the_call_rolls_the_turn_back(http, backend, session_id, earlier):
    endpoint = OfflineBedrockEndpoint().start()
    try:
        runtime = runtime_for(http, backend, endpoint.url, bedrock_max_attempts=1)
        before = await earlier_turn(runtime, session_id, earlier)
        endpoint.then(Reply("", tool_call=new_tool_call("echo", {"text": "ran"})),
                      HttpError(500, "InternalServerException"))
        events = [e async for e in runtime.stream({"prompt": "go", "session_id": session_id})]
        tool = next(e.data for e in events if e.type == "agent_step" and e.data["type"] == "tool")
        assert tool["content"] == "echo: ran"  # the call was made, and its result streamed
        assert events[-1].type == "error" and events[-1].data["code"] == "model_unavailable"
        await next_turn_works(runtime, session_id, before)
    finally:
        endpoint.stop()
