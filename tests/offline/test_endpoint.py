"""The Bedrock wire path: ChatBedrockConverse → botocore → the local endpoint (scripted where needed)."""

from __future__ import annotations

import json
import threading
from typing import Any, Iterator

import httpx
import pytest
from langchain_aws import ChatBedrockConverse
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from bedrock.core.build import build_agent
from bedrock.server.app import build_app
from bedrock.config import DEFAULT_BEDROCK_MODEL_ID, Settings
from bedrock.core.tools import calculator
from bedrock.offline.rules import Reply, new_tool_call
from bedrock.offline.endpoint import (BreakStream, Hold, HttpError, OfflineBedrockEndpoint, offered_tools,
                                      turns_from_converse)
from bedrock.core.model import make_model
from bedrock.wire.request import parse_request
from testkit.sse import frames_of
from testkit import loopback


@pytest.fixture
def endpoint() -> Iterator[OfflineBedrockEndpoint]:
    ep = OfflineBedrockEndpoint(record=100).start()
    yield ep
    ep.stop()


def bedrock_settings(**overrides: Any) -> Settings:
    # Standard retries: adaptive mode's client-side rate limiter would slow the tests after a 429.
    return Settings(model_provider="bedrock", bedrock_retry_mode="standard", bedrock_max_attempts=2, **overrides)


async def run_turn(agent, prompt: str, session_id: str, **payload: Any) -> list[Any]:
    request = parse_request({"prompt": prompt, "session_id": session_id, **payload})
    return [event async for event in agent.stream(request)]


async def test_an_offline_agent_runs_on_a_local_endpoint_it_stops(session_id):
    agent = build_agent(Settings(model_provider="offline", memory_backend="memory"))
    started = [c.__self__ for c in agent.closers if isinstance(getattr(c, "__self__", None), OfflineBedrockEndpoint)]
    assert len(started) == 1 and started[0].url.startswith("http://127.0.0.1:")
    result = await agent.invoke(parse_request({"prompt": "What is my name?", "session_id": session_id}))
    assert result["output"]  # the endpoint answers, through ChatBedrockConverse
    agent.close()  # it started the endpoint: closing the agent stops it
    with pytest.raises(httpx.TransportError):
        loopback.post(started[0].url + "/model/x/converse", json={}, timeout=2)
    assert isinstance(make_model(Settings(model_provider="offline"), started[0].url), ChatBedrockConverse)
    with pytest.raises(ValueError):
        make_model(Settings(model_provider="offline"))  # only build_agent starts an endpoint


async def test_async_stream_yields_every_chunk_and_stops_early_cleanly(endpoint):
    model = make_model(Settings(model_provider="offline"), endpoint.url)
    endpoint.then(Reply("one two three four", None, 1, 4), Reply("a b c d e f g h", None, 1, 8))
    chunks = [c async for c in model.astream("hi")]
    assert "".join(c.text for c in chunks) == "one two three four"
    assert sum(c.usage_metadata["output_tokens"] for c in chunks if c.usage_metadata) == 4
    stream = model.astream("hi")
    async for _ in stream:
        break  # the reader leaves: the model's stream closes its HTTP response
    await stream.aclose()
    assert (await model.ainvoke("What is 2 * 2?")).content  # the model is still usable


def test_make_model_bedrock_uses_configured_retries():
    model = make_model(Settings(model_provider="bedrock", bedrock_max_attempts=7, bedrock_retry_mode="standard"))
    assert isinstance(model, ChatBedrockConverse) and model.endpoint_url is None
    assert model.client.meta.config.retries == {"mode": "standard", "total_max_attempts": 7}


async def test_offline_runtime_turn_goes_through_the_endpoint(endpoint, session_id):
    settings = Settings(model_provider="offline", memory_backend="memory")
    runtime = build_app(settings, agent=build_agent(settings, endpoint.url)).state.runtime
    events = [e async for e in runtime.stream({"prompt": "What is 25 * 4?", "session_id": session_id})]
    assert events[-1].data["output"] == "The result of 25 * 4 is 100."
    mine = [r for r in endpoint.requests if r.body["messages"][0]["content"][0].get("text") == "What is 25 * 4?"]
    turn_two = mine[-1].body["messages"]
    assert mine[-1].path.endswith("/converse")  # not streaming tokens → Converse
    assert turn_two[-1]["content"][0]["toolResult"]["content"][0]["text"] == "100"
    assert "x-amz-date" in mine[-1].headers and mine[-1].headers["authorization"].startswith("AWS4-HMAC-SHA256")


async def test_token_usage_equals_what_the_endpoint_reported(endpoint, session_id):
    agent = build_agent(bedrock_settings(), endpoint.url)
    events = await run_turn(agent, "What is 12 * 12?", session_id, stream_tokens=True)
    assert [r.path.rsplit("/", 1)[1] for r in endpoint.requests] == ["converse-stream", "converse-stream"]
    metrics = events[-1].data["metrics"]
    assert metrics["tokens"] == sum(u["totalTokens"] for u in endpoint.usage_reported) > 0
    assert metrics["input_tokens"] == sum(u["inputTokens"] for u in endpoint.usage_reported)
    assert metrics["llm_calls"] == 2 and metrics["time_to_first_token_ms"] is not None


async def test_throttled_once_is_retried_and_succeeds(endpoint, session_id):
    agent = build_agent(bedrock_settings(), endpoint.url)
    endpoint.then(HttpError(429, "ThrottlingException", "Too many requests"))
    events = await run_turn(agent, "What is 2 * 21?", session_id, stream_tokens=True)
    assert events[-1].type == "agent_end" and "42" in events[-1].data["output"]
    assert len(endpoint.requests) == 3  # 429, retry, then the second model call


@pytest.mark.parametrize("stream_tokens", [True, False])
async def test_throttled_beyond_retries_is_a_retryable_error(endpoint, session_id, stream_tokens):
    agent = build_agent(bedrock_settings(), endpoint.url)
    endpoint.then(HttpError(429, "ThrottlingException"), HttpError(429, "ThrottlingException"))
    events = await run_turn(agent, "hello", session_id, stream_tokens=stream_tokens)
    assert [e.type for e in events] == ["agent_start", "agent_step", "error"]
    error = events[-1].data
    assert error["code"] == "model_throttled" and error["retryable"] is True
    assert "Traceback" not in error["error"] and "scripted" not in error["error"]


async def test_validation_error_is_not_retryable(endpoint, session_id):
    agent = build_agent(bedrock_settings(), endpoint.url)
    endpoint.then(HttpError(400, "ValidationException", "bad input"))
    events = await run_turn(agent, "hello", session_id)
    assert events[-1].data["code"] == "model_validation_error" and events[-1].data["retryable"] is False
    assert len(endpoint.requests) == 1  # not retried


async def test_stream_broken_mid_way_keeps_tokens_then_one_error_and_memory_whole(endpoint, session_id):
    agent = build_agent(bedrock_settings(token_buffer_size=1), endpoint.url)
    await run_turn(agent, "My name is Alice", session_id)
    endpoint.then(BreakStream(after_tokens=3))
    events = await run_turn(agent, "Tell me a long story", session_id, stream_tokens=True)
    types = [e.type for e in events]
    assert types.count("llm_token") == 3 and types[-1] == "error" and types.count("error") == 1
    assert events[-1].data["code"] == "model_stream_error" and events[-1].data["retryable"] is True
    state = await agent.graph.aget_state({"configurable": {"thread_id": session_id}})
    contents = [m.content for m in state.values["messages"]]
    assert contents == ["My name is Alice", "Nice to meet you, Alice! I'll remember your name."]
    events = await run_turn(agent, "What's my name?", session_id)
    assert events[-1].data["output"] == "Your name is Alice."
    sent = endpoint.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]  # the failed turn is not replayed


async def test_scripted_reply_is_served(endpoint, session_id):
    agent = build_agent(bedrock_settings(), endpoint.url)
    endpoint.then(Reply("Scripted answer.", None, 3, 2))
    events = await run_turn(agent, "anything", session_id)
    assert events[-1].data["output"] == "Scripted answer." and events[-1].data["metrics"]["tokens"] == 5


def test_tokens_reach_an_http_client_incrementally(make_server, endpoint, session_id):
    """Causal, not timed: the model's stream holds after its third chunk until the client has seen a token. A token
    that reached the client only with the end of the model's stream (buffered anywhere on the way) would leave the
    hold to time out. (Timed, on a busy 2-core machine, a fresh server's first token measured 25–32% of the turn.)"""
    live = make_server({"MODEL_PROVIDER": "bedrock", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": endpoint.url,
                        "TOKEN_BUFFER_SIZE": "1"})
    seen_a_token = threading.Event()
    hold = Hold(Reply("The sea is deep and wide and full of fish.", None, 5, 10), 3, seen_a_token, timeout_s=20)
    endpoint.then(hold)
    payload = {"prompt": "Tell me about the sea", "session_id": session_id, "stream_tokens": True}
    order: list[str] = []
    with loopback.Client(timeout=60) as client, client.stream("POST", live.url + "/stream", json=payload) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                order.append(line[7:])
                if line[7:] == "llm_token":
                    seen_a_token.set()
    assert order[0] == "agent_start" and order[-1] == "agent_end" and "llm_token" in order
    assert hold.released is True  # the client saw a token while the model was still streaming
    assert endpoint.requests[0].path.endswith("/converse-stream")


def test_http_stream_ends_with_error_event_when_model_fails(make_server, endpoint, session_id):
    live = make_server({"MODEL_PROVIDER": "bedrock", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": endpoint.url,
                        "BEDROCK_RETRY_MODE": "standard", "BEDROCK_MAX_ATTEMPTS": "1"})
    endpoint.then(HttpError(403, "AccessDeniedException", "secret internal detail"))
    with loopback.Client(timeout=30) as client:
        response = client.post(live.url + "/invocations", json={"prompt": "hi", "session_id": session_id, "stream": True})
        frames = frames_of(response.content)
        assert [f[0] for f in frames] == ["agent_start", "agent_step", "error"]
        assert frames[-1][1]["code"] == "model_access_denied" and "secret" not in response.text
        endpoint.then(HttpError(429, "ThrottlingException"))
        reply = client.post(live.url + "/invocations", json={"prompt": "hi", "session_id": session_id})
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "model_throttled"
        assert reply.json()["error"]["retryable"] is True
        ok = client.post(live.url + "/invocations", json={"prompt": "What is 1 + 1?", "session_id": session_id})
        assert ok.status_code == 200 and ok.json()["output"] == "The result of 1 + 1 is 2."


def test_offline_turn_over_http_goes_through_the_endpoint(endpoint, tmp_path, session_id):
    """An app built for the offline model, served over HTTP in this process so its endpoint's record can be read."""
    from bedrock.offline.background import BackgroundServer

    settings = Settings(model_provider="offline", memory_path=str(tmp_path / "m.sqlite"))
    server = BackgroundServer(build_app(settings, agent=build_agent(settings, endpoint.url)))
    url = server.start()
    try:
        response = loopback.post(url + "/invocations", json={"prompt": "What is 25 * 4?", "session_id": session_id,
                                                          "stream": True}, timeout=30)
        assert frames_of(response.content)[-1][1]["output"] == "The result of 25 * 4 is 100."
        mine = [r for r in endpoint.requests if r.body["messages"][0]["content"][0].get("text") == "What is 25 * 4?"
                and len(r.body["messages"]) == 3]
        assert mine, "the second model call of the turn never reached the endpoint"
        assert mine[-1].body["messages"][-1]["content"][0]["toolResult"]["content"][0]["text"] == "100"
    finally:
        server.stop()


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def text(value: str) -> dict[str, Any]:
    return {"text": value}


def tool_use(tool_use_id: str) -> dict[str, Any]:
    return {"toolUse": {"toolUseId": tool_use_id, "name": "calculator", "input": {"expression": "1 + 1"}}}


def tool_result(tool_use_id: str) -> dict[str, Any]:
    return {"toolResult": {"toolUseId": tool_use_id, "content": [{"text": "2"}]}}


INVALID_CONVERSATIONS = {
    "starts with the assistant": ([assistant(text("Hi")), user(text("Hello"))], "must start with a user message"),
    "two user messages in a row": ([user(text("Hi")), user(text("Hello"))], "must alternate between user and assistant"),
    "two assistant messages in a row": (
        [user(text("Hi")), assistant(text("a")), assistant(text("b"))], "must alternate between user and assistant"),
    "a toolUse left unanswered": (
        [user(text("1 + 1?")), assistant(tool_use("tooluse_a")), user(text("What's my name?"))],
        "Expected toolResult blocks at messages.2.content for the following Ids: tooluse_a"),
    "one of two toolUses unanswered": (
        [user(text("?")), assistant(tool_use("tooluse_a"), tool_use("tooluse_b")), user(tool_result("tooluse_a"))],
        "Expected toolResult blocks at messages.2.content for the following Ids: tooluse_b"),
    "a toolResult with no toolUse": (
        [user(text("?")), assistant(text("Sure.")), user(tool_result("tooluse_x"))], "exceeds the number of toolUse"),
    "a toolResult answering another id": (
        [user(text("?")), assistant(tool_use("tooluse_a")), user(tool_result("tooluse_a"), tool_result("tooluse_z"))],
        "exceeds the number of toolUse"),
    "empty content": ([user()], "The content field in the Message object at messages.0 is empty"),
    "blank text": ([user(text("  \n"))], "The text field in the ContentBlock object at messages.0.content.0 is blank"),
    "no messages": ([], "The messages field is empty"),
}


@pytest.mark.parametrize("path", ["converse", "converse-stream"])
@pytest.mark.parametrize("name", list(INVALID_CONVERSATIONS))
def test_the_endpoint_refuses_what_converse_refuses(endpoint, path, name):
    messages, says = INVALID_CONVERSATIONS[name]
    reply = loopback.post(f"{endpoint.url}/model/m/{path}", json={"messages": messages}, timeout=10)
    assert reply.status_code == 400 and reply.headers["x-amzn-errortype"] == "ValidationException"
    assert says in reply.json()["message"]


def test_botocore_raises_the_validation_exception(endpoint):
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("bedrock-runtime", endpoint_url=endpoint.url, region_name="us-east-1")
    messages, _ = INVALID_CONVERSATIONS["a toolUse left unanswered"]
    with pytest.raises(ClientError) as raised:
        client.converse(modelId="m", messages=messages)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    good = [user(text("1 + 1?")), assistant(text("Let me see."), tool_use("tooluse_a")), user(tool_result("tooluse_a"))]
    assert client.converse(modelId="m", messages=good)["stopReason"] == "end_turn"


async def test_a_turn_cut_after_its_tool_call_leaves_a_conversation_the_endpoint_accepts(endpoint, session_id):
    agent = build_agent(bedrock_settings(memory_backend="memory"), endpoint.url)
    request = parse_request({"prompt": "What is 25 * 4?", "session_id": session_id})
    async for event in agent.stream(request):
        if event.type == "agent_step" and event.data["type"] == "tool":
            break  # cut right after the tool ran: a toolUse with its result, but no answer yet
    else:
        pytest.fail("the turn never reached its tool step")
    events = await run_turn(agent, "What's my name?", session_id)
    assert events[-1].type == "agent_end"
    assert endpoint.requests[-1].body["messages"][0]["content"][0]["text"] == "What's my name?"


def test_the_request_log_is_off_unless_asked_and_bounded():
    ep = OfflineBedrockEndpoint().start()
    try:
        for _ in range(3):
            loopback.post(f"{ep.url}/model/m/converse", json={"messages": [user(text("hi"))]}, timeout=10)
        assert len(ep.requests) == 0 and len(ep.usage_reported) == 0
        ep.record(2)
        for _ in range(3):
            loopback.post(f"{ep.url}/model/m/converse", json={"messages": [user(text("hi"))]}, timeout=10)
        assert len(ep.requests) == 2 and len(ep.usage_reported) == 2
    finally:
        ep.stop()


def test_starting_the_endpoint_leaves_the_process_uvicorn_logging_alone():
    """The endpoint starts on the agent-build thread while the main server logs: it must not reconfigure the
    process's `uvicorn.*` loggers (its level once silenced the main server's "Uvicorn running on …" line)."""
    import logging

    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
    for name in names:
        logging.getLogger(name).setLevel(logging.INFO)
    before = [(logging.getLogger(n).level, list(logging.getLogger(n).handlers), logging.getLogger(n).propagate)
              for n in names]
    endpoint = OfflineBedrockEndpoint().start()
    endpoint.stop()
    after = [(logging.getLogger(n).level, list(logging.getLogger(n).handlers), logging.getLogger(n).propagate)
             for n in names]
    assert after == before


# --- The `NAME({...})` convention: any tool the request offers, through ChatBedrockConverse as a user's graph runs it


@tool
def lookup_order(order_id: str) -> str:
    """Look up an order by its id."""
    return f"order {order_id} has shipped"


@tool
def get_weather(city: str) -> str:
    """Today's weather in a city."""
    return f"sunny in {city}"


@pytest.fixture(scope="module")
def shared_endpoint() -> Iterator[OfflineBedrockEndpoint]:
    """One endpoint for the module's convention tests (port 0; none of them scripts it but the hook's test, which
    leaves its script empty): starting one, and above all a ChatBedrockConverse (boto3 loads its service models),
    would take most of each test's time."""
    ep = OfflineBedrockEndpoint(record=10).start()
    yield ep
    ep.stop()


@pytest.fixture(scope="module")
def base_model(shared_endpoint) -> ChatBedrockConverse:
    """ChatBedrockConverse as a user builds it, pointed at the endpoint (dummy credentials, 127.0.0.1 only)."""
    return ChatBedrockConverse(model=DEFAULT_BEDROCK_MODEL_ID,  # a provider it streams (another falls back to Converse)
                               endpoint_url=shared_endpoint.url, region_name="us-east-1",
                               aws_access_key_id="offline", aws_secret_access_key="offline")


@pytest.fixture
def user_model(base_model):
    """The model with the user's two tools bound (and no calculator)."""
    return base_model.bind_tools([lookup_order, get_weather])


def ask(model: Any, messages: Any, mode: str) -> AIMessage:
    """One model call: Converse (`invoke`) or ConverseStream (`stream`, the chunks merged as LangChain does)."""
    if mode == "invoke":
        return model.invoke(messages)
    merged = None
    for chunk in model.stream(messages):
        merged = chunk if merged is None else merged + chunk
    assert merged is not None
    return merged


MODES = ["invoke", "stream"]


@pytest.mark.parametrize("mode", MODES)
def test_a_named_call_with_json_arguments_is_a_tool_call(shared_endpoint, user_model, mode):
    message = ask(user_model, 'Please lookup_order({"order_id": "A1"}) for me', mode)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("lookup_order", {"order_id": "A1"})]
    assert message.tool_calls[0]["id"].startswith("tooluse_")
    assert shared_endpoint.requests[-1].path.endswith("/converse-stream" if mode == "stream" else "/converse")


@pytest.mark.parametrize("mode", MODES)
def test_two_calls_in_one_message_are_two_tool_calls_in_order(user_model, mode):
    message = ask(user_model, 'get_weather({"city": "Oslo"}) then lookup_order({"order_id": "B2"})', mode)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("get_weather", {"city": "Oslo"}), ("lookup_order", {"order_id": "B2"})]
    assert len({c["id"] for c in message.tool_calls}) == 2  # each its own random id
    assert message.response_metadata["stopReason"] == "tool_use"


@pytest.mark.parametrize("mode", MODES)
def test_a_name_the_request_does_not_offer_is_not_a_call(user_model, mode):
    message = ask(user_model, 'cancel_order({"order_id": "A1"})', mode)
    assert message.tool_calls == [] and "offline model" in message.text


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("arguments", ['{"order_id": A1}', '{"order_id": "A1"', '{"order_id": "A1",}', "'A1'",
                                       '["A1"]', '{"order_id": "A1"} extra'])
def test_malformed_arguments_get_a_plain_reply_and_no_call(user_model, mode, arguments):
    message = ask(user_model, f"lookup_order({arguments})", mode)
    assert message.tool_calls == []
    assert message.text.startswith("I didn't call lookup_order: its arguments are not valid JSON")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_number_json_cannot_write_is_not_a_call(user_model, mode, number):
    message = ask(user_model, f'lookup_order({{"order_id": {number}}})', mode)
    assert message.tool_calls == [] and "not valid JSON" in message.text


@pytest.mark.parametrize("mode", MODES)
def test_after_the_tool_results_the_answer_quotes_each_in_order(user_model, mode):
    prompt = HumanMessage(
        'lookup_order({"order_id": "A1"}) get_weather({"city": "Oslo"}) lookup_order({"order_id": "Z"})')
    asked = ask(user_model, [prompt], mode)
    results = [lookup_order.invoke(asked.tool_calls[0]), get_weather.invoke(asked.tool_calls[1]),
               ToolMessage("no such order", tool_call_id=asked.tool_calls[2]["id"], status="error")]
    answer = ask(user_model, [prompt, asked, *results], mode)
    assert answer.tool_calls == []
    assert answer.text == ("lookup_order returned: order A1 has shipped\nget_weather returned: sunny in Oslo\n"
                           "lookup_order failed: no such order")


@pytest.mark.parametrize("mode", MODES)
def test_arithmetic_still_goes_to_the_calculator_and_a_named_call_comes_first(base_model, mode):
    model = base_model.bind_tools([lookup_order, calculator])
    asked = ask(model, "What is 6 * 7?", mode)
    assert [(c["name"], c["args"]) for c in asked.tool_calls] == [("calculator", {"expression": "6 * 7"})]
    answer = ask(model, [HumanMessage("What is 6 * 7?"), asked, calculator.invoke(asked.tool_calls[0])], mode)
    assert answer.text == "The result of 6 * 7 is 42."
    both = ask(model, 'What is 6 * 7? lookup_order({"order_id": "A1"})', mode)
    assert [c["name"] for c in both.tool_calls] == ["lookup_order"]


async def test_a_users_own_graph_runs_parallel_calls_offline(user_model):
    """A graph of the user's own (StateGraph, ToolNode: the calls run together), its ChatBedrockConverse called
    as a graph calls it (async)."""
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    model = user_model

    async def chatbot(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("chatbot", chatbot)
    builder.add_node("tools", ToolNode([lookup_order, get_weather]))
    builder.add_edge(START, "chatbot")
    builder.add_conditional_edges("chatbot", tools_condition)
    builder.add_edge("tools", "chatbot")
    state = await builder.compile().ainvoke(
        {"messages": [HumanMessage('lookup_order({"order_id": "A1"}) and get_weather({"city": "Oslo"})')]})
    assert [m.type for m in state["messages"]] == ["human", "ai", "tool", "tool", "ai"]
    assert state["messages"][-1].text == ("lookup_order returned: order A1 has shipped\n"
                                          "get_weather returned: sunny in Oslo")


TOOL_CONFIG = {"tools": [{"toolSpec": {"name": name, "inputSchema": {"json": {"type": "object"}}}}
                         for name in ("lookup_order", "get_weather")]}


def test_parallel_calls_are_the_blocks_bedrock_sends(base_model):
    """Several toolUse blocks as Converse and ConverseStream give them, read by botocore itself."""
    client = base_model.client  # the model's own bedrock-runtime client
    messages = [user(text('lookup_order({"order_id": "A1"}) get_weather({"city": "Oslo"})'))]
    whole = client.converse(modelId="m", messages=messages, toolConfig=TOOL_CONFIG)
    content = whole["output"]["message"]["content"]
    assert whole["stopReason"] == "tool_use" and content[0] == {"text": "I'll call lookup_order and get_weather."}
    assert [(b["toolUse"]["name"], b["toolUse"]["input"]) for b in content[1:]] == [
        ("lookup_order", {"order_id": "A1"}), ("get_weather", {"city": "Oslo"})]
    events = list(client.converse_stream(modelId="m", messages=messages, toolConfig=TOOL_CONFIG)["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"
    blocks: dict[int, dict[str, Any]] = {}
    for event in events[1:-2]:
        kind, body = next(iter(event.items()))
        index = body["contentBlockIndex"]
        if kind == "contentBlockStart":
            assert index not in blocks and set(body["start"]["toolUse"]) == {"toolUseId", "name"}
            blocks[index] = {"start": body["start"]["toolUse"], "input": "", "stopped": False}
        elif kind == "contentBlockDelta" and "toolUse" in body["delta"]:
            assert not blocks[index]["stopped"]
            blocks[index]["input"] += body["delta"]["toolUse"]["input"]
        elif kind == "contentBlockStop" and index in blocks:
            blocks[index]["stopped"] = True
    assert sorted(blocks) == [1, 2] and all(b["stopped"] for b in blocks.values())
    assert [(b["start"]["name"], json.loads(b["input"])) for b in blocks.values()] == [
        ("lookup_order", {"order_id": "A1"}), ("get_weather", {"city": "Oslo"})]
    assert [b["start"]["toolUseId"][:8] for b in blocks.values()] == ["tooluse_"] * 2


@pytest.mark.parametrize("mode", MODES)
def test_the_scripting_hook_serves_a_scripted_parallel_call(shared_endpoint, base_model, mode):
    """The example of OfflineBedrockEndpoint's docstring (on the module's endpoint and model)."""
    endpoint = shared_endpoint
    try:
        endpoint.then(Reply("Let me look.", tool_calls=[new_tool_call("lookup_order", {"order_id": "A1"}),
                                                        new_tool_call("lookup_order", {"order_id": "B2"})]))
        model = base_model.bind_tools([lookup_order])
        message = ask(model, "Where are my orders?", mode)
        assert [call["args"] for call in message.tool_calls] == [{"order_id": "A1"}, {"order_id": "B2"}]
        assert endpoint.requests[-1].body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "lookup_order"
        assert message.text == "Let me look."
        after = ask(model, "lookup_order()", mode)  # the script is spent: the rules answer
        assert [(c["name"], c["args"]) for c in after.tool_calls] == [("lookup_order", {})]
    finally:
        endpoint.script.clear()  # whatever happened, the next test gets the rules


def test_offered_tools_are_the_tool_specs_names():
    assert offered_tools({"toolConfig": TOOL_CONFIG}) == {"lookup_order", "get_weather"}
    assert offered_tools({}) == set() and offered_tools({"toolConfig": None}) == set()
    mixed = {"toolConfig": {"tools": [{"cachePoint": {"type": "default"}}, {"toolSpec": {"name": "a"}}, "junk",
                                      {"toolSpec": {"name": 7}}, {"toolSpec": "x"}], "toolChoice": {"auto": {}}}}
    assert offered_tools(mixed) == {"a"}


def test_turns_carry_every_call_and_the_id_each_result_answers():
    body = {"messages": [user(text("?")), assistant(text("Sure."), tool_use("tooluse_a"), tool_use("tooluse_b")),
                         user(tool_result("tooluse_a"), tool_result("tooluse_b"))]}
    turns = turns_from_converse(body)
    assert [c["id"] for c in turns[1].tool_calls] == ["tooluse_a", "tooluse_b"]
    assert turns[1].tool_call == turns[1].tool_calls[0]
    assert [(t.role, t.tool_call_id) for t in turns[2:]] == [("tool", "tooluse_a"), ("tool", "tooluse_b")]
