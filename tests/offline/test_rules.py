import re
import time

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from bedrock.offline.rules import (MAX_ARGS_CHARS, MAX_ARGS_DEPTH, MAX_CALLS, Reply, ToolCallError, Turn, find_expression,
                                   find_tool_calls, reply_to, tokenize)
from testkit.chat_models import ScriptedChatModel
from testkit import loopback


def test_find_expression():
    assert find_expression("What is 25 * 4?") == "25 * 4"
    assert find_expression("What is 5+5?") == "5+5"
    assert find_expression("Calculate 15 * 8") == "15 * 8"
    assert find_expression("I am 25 years old") is None


def test_arithmetic_calls_the_calculator_then_answers_from_its_result():
    first = reply_to([Turn("user", "What is 25 * 4?")])
    assert first.tool_call["name"] == "calculator" and first.tool_call["args"] == {"expression": "25 * 4"}
    second = reply_to([Turn("user", "What is 25 * 4?"), Turn("assistant", first.text, first.tool_call), Turn("tool", "100")])
    assert second.text == "The result of 25 * 4 is 100." and second.tool_call is None


def test_tool_errors_are_reported():
    call = {"id": "1", "name": "calculator", "args": {"expression": "1/0"}}
    reply = reply_to([Turn("user", "1/0"), Turn("assistant", "", call), Turn("tool", "Error: division by zero", is_error=True)])
    assert "couldn't calculate 1/0" in reply.text


def test_name_is_recalled_only_from_history():
    assert "don't know" in reply_to([Turn("user", "What's my name?")]).text
    turns = [Turn("user", "My name is Alice"), Turn("assistant", "ok"), Turn("user", "What's my name?")]
    assert reply_to(turns).text == "Your name is Alice."


def test_other_prompts_get_an_honest_offline_reply_with_context():
    reply = reply_to([Turn("system", "User preferences: genre: sci-fi."), Turn("user", "Recommend a movie")])
    assert "offline" in reply.text and "genre: sci-fi" in reply.text
    assert reply.input_tokens > 0 and reply.output_tokens > 0


def test_tokens_join_back():
    text = "The result of 25 * 4 is 100.\n  ok"
    assert "".join(tokenize(text)) == text


async def test_chat_model_streams_chunks_tool_calls_and_usage():
    model = ScriptedChatModel().bind_tools([{"type": "function", "function": {"name": "calculator", "parameters": {}}}])
    chunks = [c async for c in model.astream([HumanMessage("What is 2 * 3?")])]
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert merged.tool_calls[0]["args"] == {"expression": "2 * 3"}
    assert merged.usage_metadata["output_tokens"] > 0
    message = await model.ainvoke([SystemMessage("x"), HumanMessage("hi"), AIMessage("hello"), HumanMessage("my name is Bo")])
    assert "Bo" in message.content


def test_without_the_tool_offered_it_does_not_call_it():
    message = ScriptedChatModel().invoke([HumanMessage("What is 2 * 3?")])
    assert not message.tool_calls


def test_tool_message_turns():
    message = ScriptedChatModel().invoke(
        [HumanMessage("2*3"), AIMessage("", tool_calls=[{"id": "t", "name": "calculator", "args": {"expression": "2*3"}}]),
         ToolMessage("6", tool_call_id="t")]
    )
    assert message.content == "The result of 2*3 is 6."


def test_the_expression_finder_is_linear():
    from bedrock.offline.rules import find_expression

    for text in ("(" * 32_000, "1 " * 16_000, "(1" * 16_000, ")" * 32_000 + "1+"):
        started = time.perf_counter()
        find_expression(text)
        assert time.perf_counter() - started < 0.2  # was 6.6 s for 32,000 "(" (quadratic backtracking)


def test_ping_stays_fast_while_clients_send_32000_paren_prompts(make_server):
    """/ping of a server answering four prompts of 32,000 parentheses, each ping paired with one of a control server
    answering four plain prompts of the same length at the same moment: the control's latency is the cost of such
    prompts on this machine then (tests run in parallel; a loaded machine stretches every thread's wait for the
    interpreter), so what the parentheses alone cost shows against it. A regex that backtracked stalled the loop
    6.5 s."""
    import threading

    import httpx

    live, control = make_server(), make_server()
    for server in (live, control):  # built and warm (a first turn builds the model's client): the attack alone shows
        assert loopback.post(server.url + "/invocations", json={"prompt": "What is 1 + 1?"}, timeout=60).status_code == 200
    statuses: list[int] = []

    def send(url: str, prompt: str) -> None:
        statuses.append(loopback.post(url + "/invocations", json={"prompt": prompt}, timeout=60).status_code)

    def ping(client: httpx.Client, url: str) -> float:
        started = time.perf_counter()
        assert client.get(url + "/ping").status_code == 200
        return (time.perf_counter() - started) * 1000

    senders = [threading.Thread(target=send, args=(live.url, "(" * 32_000)) for _ in range(4)]
    senders += [threading.Thread(target=send, args=(control.url, "the sea " * 4_000)) for _ in range(4)]
    for thread in senders:
        thread.start()
    latencies, noise = [], []
    with loopback.Client(timeout=10) as client:
        while any(t.is_alive() for t in senders) or len(latencies) < 100:
            latencies.append(ping(client, live.url))
            noise.append(ping(client, control.url))
            if len(latencies) >= 400:
                break
    for thread in senders:
        thread.join(60)
    assert statuses == [200] * 8
    # The pings' total time, not the slowest: a loop stalled by the prompts delays the pings in flight by the whole
    # stall (a backtracking regex: 6.5 s), while one ping of either server held up by the OS scheduler is noise (a
    # quiet two-worker run: the slowest ping 120.9 ms against the control's 31.5 ms, nothing stalled). 100 pairs
    # at least (the prompts last ~20): one such hiccup is a small part of a total, a stall still a large one.
    total, control_total = sum(latencies), sum(noise)
    assert total < 50 + 2 * control_total, (
        f"/ping took {total:.0f} ms in all ({len(latencies)} pings, the slowest {max(latencies):.1f} ms) while 4 "
        f"prompts of parentheses ran; the control's {control_total:.0f} ms (slowest {max(noise):.1f} ms) under 4 "
        "plain ones")


# --- The `NAME({...})` convention (through the endpoint and ChatBedrockConverse: tests/offline/test_endpoint.py)

OFFERED = {"lookup_order", "get_weather", "calculator"}


def test_named_calls_are_found_in_order_only_for_offered_tools():
    text = 'a lookup_order({"order_id": "A1"}), nope({"x": 1}) and get_weather( {"city": "Oslo"} ) then get_weather()'
    assert find_tool_calls(text, OFFERED) == [
        ("lookup_order", {"order_id": "A1"}), ("get_weather", {"city": "Oslo"}), ("get_weather", {})]
    assert find_tool_calls('xlookup_order({"a": 1}) lookup_order ({"a": 1})', OFFERED) == []  # not its name
    assert find_tool_calls('lookup_order({"note": "get_weather({})"})', OFFERED) == [
        ("lookup_order", {"note": "get_weather({})"})]  # a name inside the arguments is data


@pytest.mark.parametrize("text, says", [
    ('lookup_order({"a": NaN})', "NaN is not JSON"),
    ('lookup_order({"a": -Infinity})', "-Infinity is not JSON"),
    ('lookup_order({"a": 1e400})', "out of range"),
    ('lookup_order({"a": "\\ud800"})', "lone surrogate"),
    ('lookup_order({"a": 1}', "expected ')'"),
    ("lookup_order(A1)", "must be one JSON object"),
    ('lookup_order({"a": "' + "x" * MAX_ARGS_CHARS + '"})', f"longer than {MAX_ARGS_CHARS} characters"),
    ('lookup_order({"a": ' + "[" * 5000, "nested too deeply"),
    # well formed, short, and deeper than MAX_ARGS_DEPTH: refused on every Python (3.13's json would parse it)
    ('lookup_order({"a": ' + "[" * MAX_ARGS_DEPTH + "]" * MAX_ARGS_DEPTH + "})", "nested too deeply"),
    ('lookup_order({"a": ' + "[" * 2000 + "]" * 2000 + "})", "nested too deeply"),
    ('lookup_order({"a": "x)', "Unterminated string starting at character 7"),
])
def test_arguments_that_are_not_one_strict_json_object_are_refused(text, says):
    with pytest.raises(ToolCallError, match=re.escape(says)):
        find_tool_calls(text, OFFERED)
    reply = reply_to([Turn("user", text)], OFFERED)
    assert not reply.tool_calls and reply.tool_call is None and says in reply.text


@pytest.mark.parametrize("value", [
    "[" * (MAX_ARGS_DEPTH - 1) + "]" * (MAX_ARGS_DEPTH - 1),  # with the object around it: MAX_ARGS_DEPTH levels
    '"' + "[{" * 100 + '"',  # brackets inside a string are text
    '"\\"' + "[" * 100 + '"',  # and past an escaped quote, still inside it
    '["\\\\", ' + '"]]]", ' * 3 + "[1]]",  # an escaped backslash ends before the quote that closes the string
])
def test_arguments_as_deep_as_max_args_depth_are_a_call(value):
    text = 'lookup_order({"a": ' + value + "})"
    [(name, args)] = find_tool_calls(text, OFFERED)
    assert name == "lookup_order" and list(args) == ["a"]


def test_at_most_max_calls_in_one_message():
    assert len(find_tool_calls("get_weather()" * MAX_CALLS, OFFERED)) == MAX_CALLS
    reply = reply_to([Turn("user", "get_weather()" * (MAX_CALLS + 1))], OFFERED)
    assert not reply.tool_calls and f"at most {MAX_CALLS}" in reply.text


def test_several_calls_make_one_reply_and_a_named_call_beats_arithmetic():
    reply = reply_to([Turn("user", 'What is 2 + 2? lookup_order({"order_id": "A1"}) get_weather({"city": "Oslo"})')],
                     OFFERED)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("lookup_order", {"order_id": "A1"}), ("get_weather", {"city": "Oslo"})]
    assert reply.tool_call == reply.tool_calls[0] and reply.text == "I'll call lookup_order and get_weather."
    assert len({c["id"] for c in reply.tool_calls}) == 2 and reply.output_tokens > len(reply.text.split())
    assert reply_to([Turn("user", "What is 2 + 2?")], OFFERED).tool_calls[0]["name"] == "calculator"


def test_without_offered_tools_only_the_calculator_is_known():
    assert reply_to([Turn("user", 'lookup_order({"order_id": "A1"})')]).tool_calls == ()
    assert reply_to([Turn("user", 'calculator({"expression": "1+1"})')]).tool_call["args"] == {"expression": "1+1"}


def test_each_result_is_quoted_in_order_matched_by_id():
    calls = [{"id": "t1", "name": "lookup_order", "args": {}}, {"id": "t2", "name": "calculator",
                                                                 "args": {"expression": "2+2"}},
             {"id": "t3", "name": "get_weather", "args": {}}, {"id": "t4", "name": "get_weather", "args": {}}]
    turns = [Turn("user", "go"), Turn("assistant", "", tool_calls=calls),
             Turn("tool", "4", tool_call_id="t2"), Turn("tool", "shipped", tool_call_id="t1"),
             Turn("tool", "timed out", is_error=True, tool_call_id="t3"), Turn("tool", "", tool_call_id="t4")]
    assert reply_to(turns, OFFERED).text == ("The result of 2+2 is 4.\nlookup_order returned: shipped\n"
                                             "get_weather failed: timed out\nget_weather returned nothing.")


def test_a_reply_with_one_call_reads_as_before():
    call = {"id": "t", "name": "calculator", "args": {"expression": "1"}}
    assert Reply("x", call, 1, 2).tool_calls == (call,) and Reply("x").tool_calls == ()
    made = Reply("", tool_calls=[{"name": "f", "args": {}}])
    assert made.tool_call is made.tool_calls[0] and made.tool_call["id"].startswith("tooluse_")
    with pytest.raises(ValueError):
        Reply("", call, tool_calls=[{"id": "u", "name": "f", "args": {}}])


def test_the_call_finder_is_linear():
    for text in ("(" * 32_000, "lookup_order(" * 2_500, "get_weather()" * 2_500, "x" * 64 + "(" * 32_000,
                 ("a" * 63 + "(") * 500, 'lookup_order({"a": "lookup_order({' * 2_000, "a(" * 16_000,
                 'lookup_order({"a": "' + "x" * 100_000):
        started = time.perf_counter()
        try:
            find_tool_calls(text, OFFERED)
        except ToolCallError:
            pass
        assert time.perf_counter() - started < 0.2


async def test_the_chat_model_makes_and_answers_parallel_calls():
    tools = [{"type": "function", "function": {"name": name, "parameters": {}}}
             for name in ("lookup_order", "get_weather")]
    model = ScriptedChatModel().bind_tools(tools)
    prompt = HumanMessage('lookup_order({"order_id": "A1"}) get_weather({"city": "Oslo"})')
    chunks = [c async for c in model.astream([prompt])]
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [
        ("lookup_order", {"order_id": "A1"}), ("get_weather", {"city": "Oslo"})]
    asked = await model.ainvoke([prompt])
    results = [ToolMessage(f"result {i}", tool_call_id=c["id"]) for i, c in enumerate(asked.tool_calls)]
    answer = await model.ainvoke([prompt, asked, *results])
    assert answer.content == "lookup_order returned: result 0\nget_weather returned: result 1"
