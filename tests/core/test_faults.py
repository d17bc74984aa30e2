"""Faults inside a turn: tools, the model, memory — one typed error, history left whole."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any, Iterator

import pytest
from langchain_core.tools import tool

from bedrock.core.turn import Agent
from bedrock.core.build import build_agent
from bedrock.config import Settings
from bedrock.core.graph import build_graph
from bedrock.core.model import make_model
from bedrock.offline.rules import Reply
from bedrock.offline.endpoint import HttpError, OfflineBedrockEndpoint
from bedrock.wire.request import parse_request
from bedrock.core.tools import calculator
from bedrock.store.sqlite import ThreadedSqliteSaver


@pytest.fixture
def endpoint() -> Iterator[OfflineBedrockEndpoint]:
    ep = OfflineBedrockEndpoint().start()
    yield ep
    ep.stop()


async def turn(agent: Agent, prompt: str, session_id: str, **extra: Any) -> list[Any]:
    return [e async for e in agent.stream(parse_request({"prompt": prompt, "session_id": session_id, **extra}))]


async def history(agent: Agent, session_id: str) -> list[str]:
    state = await agent.graph.aget_state({"configurable": {"thread_id": session_id}})
    return [m.type for m in state.values.get("messages", [])]


async def test_division_by_zero_is_a_tool_error_the_agent_reports(tmp_path, session_id):
    agent = build_agent(Settings(memory_path=str(tmp_path / "m.sqlite")))
    events = await turn(agent, "What is 1/0?", session_id)
    tool_step = next(e for e in events if e.type == "agent_step" and e.data["type"] == "tool")
    assert tool_step.data["status"] == "error" and "division by zero" in tool_step.data["content"]
    assert events[-1].type == "agent_end"
    assert "couldn't calculate 1/0" in events[-1].data["output"]
    assert events[-1].data["metrics"]["errors"] == 1 and events[-1].data["metrics"]["tool_calls"] == 1


async def test_a_tool_that_raises_unexpectedly_does_not_leak_or_break_the_turn(endpoint, tmp_path, session_id):
    @tool("calculator")
    def broken_calculator(expression: str) -> str:
        """Evaluate arithmetic."""
        raise RuntimeError("secret internal path /srv/app/db.py")

    settings = Settings(model_provider="bedrock", memory_path=str(tmp_path / "m.sqlite"))
    graph = build_graph(make_model(settings, endpoint.url), [broken_calculator], ThreadedSqliteSaver.open(settings.memory_path))
    events = await turn(Agent(graph, settings), "What is 2 * 2?", session_id)
    assert events[-1].type == "agent_end" and events[-1].data["metrics"]["errors"] == 1
    assert "secret" not in "".join(events)
    assert "the tool failed unexpectedly" in "".join(events)


async def test_model_5xx_past_retries_is_a_retryable_error_and_history_stays_whole(endpoint, tmp_path, session_id):
    settings = Settings(model_provider="bedrock", bedrock_retry_mode="standard", bedrock_max_attempts=1,
                        memory_path=str(tmp_path / "m.sqlite"))
    agent = build_agent(settings, endpoint.url)
    await turn(agent, "What is 2 * 3?", session_id)
    assert await history(agent, session_id) == ["human", "ai", "tool", "ai"]
    # The first model call succeeds (a tool call), the second fails: the half turn must not be kept.
    endpoint.then(Reply("Let me compute.", {"id": "t1", "name": "calculator", "args": {"expression": "7 * 6"}}, 1, 1),
                  HttpError(500, "InternalServerException"))
    events = await turn(agent, "What is 7 * 6?", session_id)
    assert events[-1].type == "error" and events[-1].data["code"] == "model_unavailable"
    assert events[-1].data["retryable"] is True
    assert await history(agent, session_id) == ["human", "ai", "tool", "ai"]
    events = await turn(agent, "What is 7 * 6?", session_id)
    assert events[-1].data["output"] == "The result of 7 * 6 is 42."
    assert await history(agent, session_id) == ["human", "ai", "tool", "ai"] * 2


class FlakySaver(ThreadedSqliteSaver):
    """A SQLite saver whose reads or writes fail on demand."""

    fail_reads = False
    fail_writes = False

    def get_tuple(self, config: Any) -> Any:
        if self.fail_reads:
            raise sqlite3.OperationalError("disk I/O error")
        return super().get_tuple(config)

    def put(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail_writes:
            raise sqlite3.OperationalError("database or disk is full")
        return super().put(*args, **kwargs)


@pytest.mark.parametrize("failure", ["fail_reads", "fail_writes"])
async def test_memory_failures_are_one_typed_error_and_history_survives(endpoint, tmp_path, session_id, failure):
    settings = Settings(model_provider="bedrock", memory_path=str(tmp_path / "m.sqlite"))
    saver = FlakySaver.open(settings.memory_path)
    agent = Agent(build_graph(make_model(settings, endpoint.url), [calculator], saver), settings)
    await turn(agent, "My name is Alice", session_id)
    setattr(saver, failure, True)
    events = await turn(agent, "What is 5 * 5?", session_id, stream_tokens=True)
    types = [e.type for e in events]
    assert types[0] == "agent_start" and types[-1] == "error" and types.count("error") == 1
    assert events[-1].data["code"] == "memory_unavailable" and events[-1].data["retryable"] is True
    assert "disk" not in events[-1].data["error"]
    setattr(saver, failure, False)
    assert await history(agent, session_id) == ["human", "ai"]
    events = await turn(agent, "What's my name?", session_id)
    assert events[-1].data["output"] == "Your name is Alice."


@pytest.mark.parametrize("durability", ["exit", "sync"])
async def test_a_turn_right_after_an_abandoned_one_never_sees_its_half(tmp_path, session_id, durability):
    endpoint = OfflineBedrockEndpoint(token_delay_ms=20, record=100).start()
    try:
        settings = Settings(model_provider="bedrock", memory_path=str(tmp_path / "m.sqlite"), token_buffer_size=1,
                            checkpoint_durability=durability)
        agent = build_agent(settings, endpoint.url)
        await turn(agent, "My name is Alice", session_id)
        first_token = asyncio.Event()

        async def consume() -> None:
            request = parse_request({"prompt": "Tell me about the sea", "session_id": session_id, "stream_tokens": True})
            async for event in agent.stream(request):
                if event.type == "llm_token":
                    first_token.set()

        consumer = asyncio.ensure_future(consume())
        await first_token.wait()
        # The client leaves mid-answer, cancelled the way sse-starlette's cancel scope does it: again and again,
        # so the cleanup cannot be awaited by the cancelled task …
        for _ in range(5):
            consumer.cancel()
            await asyncio.sleep(0)
        with pytest.raises(asyncio.CancelledError):
            await consumer
        nxt = await turn(agent, "What's my name?", session_id)  # … and the next turn starts at once
        assert nxt[-1].data["output"] == "Your name is Alice."
        sent = [m["content"][0].get("text") for m in endpoint.requests[-1].body["messages"]]
        assert "Tell me about the sea" not in sent
        assert await history(agent, session_id) == ["human", "ai", "human", "ai"]
    finally:
        endpoint.stop()
