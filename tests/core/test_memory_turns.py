"""Long-term memory is kept with its turn: a turn that writes a memory and is cut anywhere (cancel, close, the
caller's timeout, REQUEST_TIMEOUT_S, the model failing after the write) leaves no memory; completed, it is kept once.
Every backend a server can keep memories in; a first turn of a session and a later one."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any, Iterator

import pytest

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.core.turn import Agent
from bedrock.offline.endpoint import HttpError, OfflineBedrockEndpoint
from bedrock.offline.rules import Reply
from bedrock.wire.request import parse_request

REMEMBER = "Remember that my dog is called Rex"  # human, ai (remember call), tool, ai
ACTOR = "alice"
TIMEOUTS = [1e-6, 3e-4, 1e-3, 2e-3, 3e-3, 5e-3, 7e-3, 1e-2, 1.5e-2, 2e-2, 3e-2, 5e-2]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[OfflineBedrockEndpoint]:
    ep = OfflineBedrockEndpoint(token_delay_ms=0.5).start()
    yield ep
    ep.stop()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "postgres":
        return {"memory_backend": "postgres", "database_url": request.getfixturevalue("postgres_url")}
    return {"memory_backend": request.param}


_AGENTS: list[Agent] = []


@pytest.fixture(autouse=True)
def close_agents() -> Any:
    yield
    while _AGENTS:
        _AGENTS.pop().close()


def make_agent(endpoint: OfflineBedrockEndpoint, backend: dict[str, str], tmp_path: Any, **settings: Any) -> Agent:
    config = Settings(model_provider="bedrock", memory_path=str(tmp_path / "m.sqlite"), token_buffer_size=1,
                      **backend, **settings)
    agent = build_agent(config, endpoint.url)
    _AGENTS.append(agent)
    return agent


def request(prompt: str, session_id: str, actor: str = ACTOR) -> Any:
    return parse_request({"prompt": prompt, "session_id": session_id, "actor_id": actor, "stream_tokens": True})


async def remembered(agent: Agent, actor: str = ACTOR) -> list[str]:
    assert agent.memories is not None
    page = await agent.memories.page(actor, 100, 0)
    return sorted(m["value"]["text"] for m in page["memories"])


async def forget_all(agent: Agent) -> None:
    assert agent.memories is not None
    await agent.memories.forget(ACTOR, None)


async def prepare(agent: Agent, session_id: str, later: bool) -> None:
    if later:
        events = [e async for e in agent.stream(request("My name is Alice", session_id))]
        assert events[-1].type == "agent_end"


@pytest.mark.parametrize("later", [False, True], ids=["first-turn", "later-turn"])
async def test_a_memory_is_kept_with_its_turn_cut_at_every_event(endpoint, tmp_path, backend, later):
    agent = make_agent(endpoint, backend, tmp_path)
    whole = [e async for e in agent.stream(request(REMEMBER, "probe"))]
    assert whole[-1].type == "agent_end"
    assert await remembered(agent) == ["my dog is called Rex"]
    kept = 0
    for index in range(len(whole)):
        for how in ("cancel", "close"):
            await forget_all(agent)
            session_id = f"s-{index}-{how}"
            await prepare(agent, session_id, later)
            seen: list[str] = []
            reached = asyncio.Event()

            async def consume() -> None:
                async with aclosing(agent.stream(request(REMEMBER, session_id))) as events:
                    async for event in events:
                        seen.append(event.type)
                        if len(seen) - 1 == index:
                            if how == "close":
                                return
                            reached.set()
                            await asyncio.Future()

            consumer = asyncio.ensure_future(consume())
            if how == "cancel":
                waiter = asyncio.ensure_future(reached.wait())
                await asyncio.wait((consumer, waiter), return_when=asyncio.FIRST_COMPLETED)
                consumer.cancel()
                waiter.cancel()
            try:
                await consumer
            except asyncio.CancelledError:
                pass
            await agent.drain()
            completed = "agent_end" in seen
            kept += completed
            assert await remembered(agent) == (["my dog is called Rex"] if completed else []), (index, how, seen)
    assert kept == 2  # only a stream that reached `agent_end` kept it (cancel and close at the last event)


async def test_a_memory_is_kept_with_its_turn_whatever_the_caller_s_timeout(endpoint, tmp_path, backend):
    agent = make_agent(endpoint, backend, tmp_path)
    cut = 0
    for i, timeout_s in enumerate(TIMEOUTS):
        await forget_all(agent)
        seen: list[str] = []

        async def consume() -> None:
            async for event in agent.stream(request(REMEMBER, f"t-{i}")):
                seen.append(event.type)

        try:
            await asyncio.wait_for(consume(), timeout_s)
        except TimeoutError:
            cut += 1
        await agent.drain()
        completed = "agent_end" in seen
        assert await remembered(agent) == (["my dog is called Rex"] if completed else []), (timeout_s, seen)
    assert cut >= 3  # the sweep lands inside turns


@pytest.mark.parametrize("timeout_s", [0.002, 0.005, 0.01, 0.02, 0.04, 0.08])
async def test_request_timeout_at_any_moment_keeps_the_memory_only_with_the_turn(endpoint, tmp_path, backend,
                                                                                 timeout_s):
    agent = make_agent(endpoint, backend, tmp_path, request_timeout_s=timeout_s)
    events = [e async for e in agent.stream(request(REMEMBER, "deadline"))]
    await agent.drain()
    completed = events[-1].type == "agent_end"
    assert completed or events[-1].data["code"] == "timeout"
    assert await remembered(agent) == (["my dog is called Rex"] if completed else [])


async def test_the_model_failing_after_the_write_keeps_nothing(tmp_path, backend):
    failing = OfflineBedrockEndpoint().start()
    try:
        agent = make_agent(failing, backend, tmp_path, bedrock_max_attempts=1, bedrock_retry_mode="standard")
        call = Reply("I'll remember that.", {"id": "tooluse_1", "name": "remember",
                                             "args": {"fact": "my dog is called Rex"}}, 1, 1)
        failing.then(call, HttpError(400, "ValidationException"))
        events = [e async for e in agent.stream(request(REMEMBER, "model-fails"))]
        assert events[-1].type == "error" and events[-1].data["code"] == "model_validation_error"
        steps = [e.data for e in events if e.type == "agent_step"]
        assert any(step.get("type") == "tool" for step in steps)  # the write happened, in the turn
        assert await remembered(agent) == []
        # The same turn again, completed: kept once.
        for _ in range(2):
            events = [e async for e in agent.stream(request(REMEMBER, "model-fails"))]
            assert events[-1].type == "agent_end"
        assert await remembered(agent) == ["my dog is called Rex"]
    finally:
        failing.stop()


async def test_sigterm_s_grace_running_out_at_any_event_keeps_the_memory_only_with_the_turn(endpoint, tmp_path,
                                                                                           backend):
    agent = make_agent(endpoint, backend, tmp_path, shutdown_grace_s=0)
    whole = [e async for e in agent.stream(request(REMEMBER, "probe"))]
    cut = 0
    for index in range(len(whole)):
        await forget_all(agent)
        shutdown = asyncio.Event()
        events = []
        async for event in agent.stream(request(REMEMBER, f"g-{index}"), shutdown=shutdown):
            events.append(event)
            if len(events) - 1 == index:
                shutdown.set()
        await agent.drain()
        completed = events[-1].type == "agent_end"
        cut += not completed
        assert completed or events[-1].data["code"] == "server_shutting_down"
        assert await remembered(agent) == (["my dog is called Rex"] if completed else []), index
    assert cut >= len(whole) - 2
