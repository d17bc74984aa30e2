"""Tokens from the model's callback (TokenTap) merged with the graph's updates (TappedStream)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, AsyncIterator

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.wire.request import parse_request
from bedrock.core.tokens import TappedStream, TokenTap


def test_the_tap_passes_every_node_s_model_chunks_with_their_node_but_not_nostream_ones():
    tap, seen = TokenTap(), []
    tap.sink = seen.append
    ours, nested, quiet, outside = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    tap.on_chat_model_start({}, [[]], run_id=ours, metadata={"langgraph_node": "model",
                                                             "langgraph_checkpoint_ns": "model:1"})
    tap.on_chat_model_start({}, [[]], run_id=nested, metadata={
        "langgraph_node": "summarise", "langgraph_checkpoint_ns": "research:2|summarise:3"})
    tap.on_chat_model_start({}, [[]], run_id=quiet, metadata={"langgraph_node": "judge"}, tags=["nostream"])
    tap.on_chat_model_start({}, [[]], run_id=outside, metadata={})  # not a graph node's call
    for run_id, text in ((ours, "yes"), (nested, "deep"), (quiet, "no"), (outside, "no"), (ours, " and")):
        tap.on_llm_new_token(text, chunk=ChatGenerationChunk(message=AIMessageChunk(text)), run_id=run_id)
    tap.on_llm_end(None, run_id=ours)
    tap.on_llm_new_token("late", chunk=ChatGenerationChunk(message=AIMessageChunk("late")), run_id=ours)
    assert [(ns, mode, message.content, source.data) for ns, mode, (message, source) in seen] == [
        (None, "messages", "yes", {"node": "model"}),
        (None, "messages", "deep", {"node": "summarise", "namespace": ["research"]}),
        (None, "messages", " and", {"node": "model"})]


async def test_tapped_items_keep_their_order_and_a_failure_is_raised_where_it_is_read():
    tap = TokenTap()

    async def graph() -> AsyncIterator[Any]:
        tap.sink(("messages", "t1"))
        await asyncio.sleep(0)
        tap.sink(("messages", "t2"))
        yield ("updates", "u1")
        tap.sink(("messages", "t3"))
        raise ValueError("model failed")

    stream = TappedStream(graph(), tap)
    seen = []
    with pytest.raises(ValueError, match="model failed"):
        async for item in stream:
            seen.append(item[1])
    assert seen == ["t1", "t2", "u1", "t3"]
    await stream.aclose()


async def test_aclose_stops_a_running_graph_and_waits_for_it():
    tap, stopped = TokenTap(), asyncio.Event()

    async def graph() -> AsyncIterator[Any]:
        try:
            while True:
                tap.sink(("messages", "t"))
                await asyncio.sleep(0.005)
                yield ("updates", "u")
        finally:
            stopped.set()

    stream = TappedStream(graph(), tap)
    assert (await stream.__anext__())[0] == "messages"
    await stream.aclose()
    assert stopped.is_set()  # the graph's own `finally` ran before aclose returned


async def test_a_tokens_turn_streams_every_chunk_then_the_same_steps_as_without(session_id):
    agent = build_agent(Settings(model_provider="offline", memory_backend="memory", token_buffer_size=1))
    with_tokens = [e async for e in agent.stream(parse_request(
        {"prompt": "What is 6 * 7?", "session_id": session_id, "stream_tokens": True}))]
    without = [e async for e in agent.stream(parse_request(
        {"prompt": "What is 6 * 7?", "session_id": session_id + "-b"}))]
    tokens = [e for e in with_tokens if e.type == "llm_token"]
    steps = [e for e in with_tokens if e.type != "llm_token"]
    answer = with_tokens[-1].data["output"]
    assert answer == "The result of 6 * 7 is 42." == without[-1].data["output"]
    assert [e.type for e in steps] == [e.type for e in without]
    # the first model call's text, then (a new paragraph) the answer's, token by token, before the step that holds it
    assert "".join(e.data["token"] for e in tokens) == "I'll calculate that for you." + answer
    last_token = max(i for i, e in enumerate(with_tokens) if e.type == "llm_token")
    assert with_tokens[last_token + 1].type == "agent_step" and with_tokens[last_token + 1].data["content"] == answer


async def test_only_callbacks_with_their_own_on_stream_event_observe_the_sse_events(session_id):
    """langchain-core 1.x gave every handler an `on_stream_event` of its own (its streaming protocol's, with a
    run_id): a plain LangChain callback was called with each of our SSE events, and failed, logged, once per event.
    The guide's BaseStreamCallback and any class with its own `on_stream_event` observe them; others do not."""
    from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler

    from bedrock.core.hooks import BaseStreamCallback, stream_observers

    class Guide(BaseStreamCallback):
        pass

    class Own:
        async def on_stream_event(self, event):
            pass

    plain, plain_async, guide, own = BaseCallbackHandler(), AsyncCallbackHandler(), Guide(), Own()
    assert stream_observers([plain, plain_async, guide, own]) == [guide, own]
