"""The model's async path: aiobotocore on the event loop, langchain-aws's own request, botocore's errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from botocore.exceptions import ReadTimeoutError, ResponseStreamingError

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.core.model import make_model
from bedrock.wire.request import parse_request
from bedrock.core.tools import default_tools
from bedrock.errors import classify
from bedrock.offline.endpoint import OfflineBedrockEndpoint, event_frame
from bedrock.offline.rules import Reply
from testkit.live_server import ROOT


@pytest.fixture
def endpoint() -> Any:
    ep = OfflineBedrockEndpoint(record=20).start()
    yield ep
    ep.stop()


def bedrock_settings(**overrides: Any) -> Settings:
    return Settings(model_provider="bedrock", bedrock_retry_mode="standard", bedrock_max_attempts=1, **overrides)


async def test_a_model_stream_takes_no_thread_and_never_builds_the_blocking_client(endpoint):
    model = make_model(Settings(model_provider="offline"), endpoint.url)
    await model.ainvoke("warm up")  # the loop's client is made once, on first use
    endpoint.token_delay_s = 0.01
    threads = threading.active_count()
    counts = []
    async for _ in model.astream("Tell me about the sea"):
        counts.append(threading.active_count())
    assert len(counts) > 20 and set(counts) == {threads}  # one thread per call before this model
    assert (await model.ainvoke("What is 2 * 2?")).content  # not streamed: Converse, also on the loop
    assert model.client._client._client is None  # langchain-aws's blocking client was never needed


async def test_the_request_sent_is_the_one_langchain_aws_builds(endpoint):
    model = make_model(Settings(model_provider="offline", max_tokens=321, temperature=0.25), endpoint.url)
    bound = model.bind_tools(default_tools())
    messages = [("system", "Be brief."), ("human", "What is 6 * 7?")]
    bound.invoke(messages)  # the stock, blocking path: langchain-aws → boto3
    list(bound.stream(messages))
    await bound.ainvoke(messages)  # ours
    [chunk async for chunk in bound.astream(messages)]
    sync_call, sync_stream, async_call, async_stream = list(endpoint.requests)[-4:]
    assert sync_call.body == async_call.body and sync_stream.body == async_stream.body
    assert async_stream.body["inferenceConfig"] == {"maxTokens": 321, "temperature": 0.25}
    assert async_stream.body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "calculator"
    assert async_stream.body["system"] == [{"text": "Be brief."}]
    assert [r.path.rsplit("/", 1)[1] for r in list(endpoint.requests)[-4:]] == ["converse", "converse-stream"] * 2
    assert async_stream.headers["authorization"].startswith("AWS4-HMAC-SHA256")


async def test_the_streamed_and_the_whole_answer_carry_langchain_aws_metadata(endpoint):
    model = make_model(Settings(model_provider="offline"), endpoint.url)
    endpoint.then(Reply("one two three", None, 5, 3), Reply("one two three", None, 5, 3))
    streamed = None
    async for chunk in model.astream("hi"):
        streamed = chunk if streamed is None else streamed + chunk
    whole = await model.ainvoke("hi")
    assert streamed.content and whole.content == "one two three"
    for message in (streamed, whole):
        assert message.usage_metadata["output_tokens"] == 3 and message.usage_metadata["input_tokens"] == 5
        assert message.response_metadata["model_provider"] == "bedrock_converse"
        assert message.response_metadata["stopReason"] == "end_turn"


# A Bedrock-shaped endpoint that misbehaves at the transport level, which the offline endpoint never does.
async def raw_endpoint(behave: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> tuple[str, asyncio.Server]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            await behave(writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", server


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def opening() -> bytes:
    return chunk(event_frame("messageStart", {"role": "assistant"})
                 + event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Half "}}))


async def cut(writer: asyncio.StreamWriter) -> None:
    writer.write(opening())
    await writer.drain()
    writer.transport.abort()  # the connection drops mid-stream


async def unfinished(writer: asyncio.StreamWriter) -> None:
    writer.write(opening() + b"0\r\n\r\n")  # a clean end of the body, but no messageStop


async def stalled(writer: asyncio.StreamWriter) -> None:
    writer.write(opening())
    await writer.drain()
    await asyncio.sleep(5)


@pytest.mark.parametrize("behave, raised, code", [
    (cut, ResponseStreamingError, "model_stream_error"),
    (unfinished, ResponseStreamingError, "model_stream_error"),
    (stalled, ReadTimeoutError, "model_unreachable"),
])
async def test_a_stream_broken_below_bedrock_is_botocore_s_error_and_a_catalogued_code(behave, raised, code):
    url, server = await raw_endpoint(behave)
    async with server:
        model = make_model(bedrock_settings(bedrock_read_timeout_s=0.5), url)
        texts = []
        with pytest.raises(raised) as caught:
            async for piece in model.astream("hi"):
                texts.append(piece.text)
        assert "Half " in texts  # what arrived before the break was streamed
        assert classify(caught.value).code == code
        assert classify(caught.value).retryable


async def test_a_turn_whose_stream_drops_ends_with_one_retryable_error_and_no_half_turn(session_id):
    url, server = await raw_endpoint(cut)
    async with server:
        agent = build_agent(bedrock_settings(memory_backend="memory"), url)
        request = parse_request({"prompt": "hi", "session_id": session_id, "stream_tokens": True})
        events = [event async for event in agent.stream(request)]
        assert [e.type for e in events][-2:] == ["llm_token", "error"]
        assert events[-1].data["code"] == "model_stream_error" and events[-1].data["retryable"] is True
        state = await agent.graph.aget_state({"configurable": {"thread_id": session_id}})
        assert state.values.get("messages", []) == []


async def test_concurrent_first_calls_on_a_loop_share_one_client(endpoint, monkeypatch):
    model = make_model(Settings(model_provider="offline"), endpoint.url)
    made = []
    create = model.async_clients.session.create_client

    def counting(*args: Any, **kwargs: Any) -> Any:
        made.append(1)
        return create(*args, **kwargs)

    monkeypatch.setattr(model.async_clients.session, "create_client", counting)
    answers = await asyncio.gather(*(model.ainvoke(f"My name is N{i}") for i in range(8)))
    assert all(a.content for a in answers) and len(made) == 1


@pytest.mark.parametrize("turns", range(0, 6))
async def test_a_first_call_cancelled_while_the_loops_client_is_made_leaves_it_working(endpoint, turns):
    """A run rolled back during the loop's first model call (the race suite's `rollback`s) cancelled the making of
    the loop's client: the calls waiting for it were told they were cancelled too, and a client already made was
    dropped, its generator finalised later, closing the *next* client of the loop with it — every later call
    failed ('NoneType' object has no attribute 'get'). `turns` loop turns before the cancel: from before the
    making starts to after it is done."""
    import gc

    model = make_model(Settings(model_provider="offline"), endpoint.url)
    first = asyncio.ensure_future(model.ainvoke("hi"))
    waiting = [asyncio.ensure_future(model.ainvoke(f"What is {i} + 2?")) for i in range(3)]
    for _ in range(turns):
        await asyncio.sleep(0)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert all(answer.content for answer in await asyncio.gather(*waiting))
    for _ in range(2):  # a dropped client's generator is finalised (it was, at some later collection)
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)
    answers = await asyncio.gather(*(model.ainvoke(f"What is {i} + 1?") for i in range(3)))
    assert all(answer.content for answer in answers)


def test_each_event_loop_gets_its_own_client_closed_with_it():
    # asyncio.run per call, as invoke_agent does: every loop's aiohttp session must be closed on that loop when it
    # shuts down, or Python reports "Unclosed client session" / "Unclosed connector" (at exit or on collection).
    script = (
        "import asyncio, gc\n"
        "from bedrock.config import Settings\n"
        "from bedrock.core.model import make_model\n"
        "from bedrock.offline.endpoint import OfflineBedrockEndpoint\n"
        "ep = OfflineBedrockEndpoint().start()\n"
        "model = make_model(Settings(model_provider='offline'), ep.url)\n"
        "async def turn():\n"
        "    return [c.text async for c in model.astream('hi')]\n"
        "for _ in range(3):\n"
        "    assert asyncio.run(turn())\n"
        "    gc.collect()\n"
        "print('clients', len(model.async_clients._clients))\n"
        "ep.stop()\n"
    )
    done = subprocess.run([sys.executable, "-X", "dev", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "clients 0" in done.stdout  # each loop's entry went with its loop
    assert "Unclosed" not in done.stderr and "never awaited" not in done.stderr, done.stderr


async def test_the_model_stream_closes_its_response_when_the_reader_leaves(endpoint):
    model = make_model(Settings(model_provider="offline"), endpoint.url)
    endpoint.token_delay_s = 0.02
    stream: AsyncIterator[Any] = model.astream("Tell me about the sea")
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    client = await model.async_clients.get()
    sessions = client._endpoint.http_session._sessions.values()  # aiohttp's, one per proxy (here: none)
    assert sessions and not any(session.connector._acquired for session in sessions)  # no connection held
    assert (await model.ainvoke("What is 2 * 2?")).content  # and the model is still usable


async def test_finished_turns_leave_nothing_of_themselves_on_the_event_loop(session_id):
    # aiohttp re-arms a read timer on every chunk; a cancelled timer stays in the loop's heap until its time is up
    # (BEDROCK_READ_TIMEOUT_S), holding the context it was made in — once, every turn's graph run and messages.
    import gc

    agent = build_agent(Settings(model_provider="offline", memory_backend="memory"))
    for i in range(12):
        request = parse_request({"prompt": f"What is {i} * 7?", "session_id": f"{session_id}-{i % 3}",
                                 "stream_tokens": i % 2 == 0})
        assert (await agent.invoke(request))["output"] == f"The result of {i} * 7 is {i * 7}."
    gc.collect()
    alive = [o for o in gc.get_objects() if type(o).__name__ in ("AsyncPregelLoop", "TappedStream", "TokenTap")]
    assert alive == []
    agent.close()
