from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from bedrock.core.graph import history_window, preferences_message


def turn(i: int, with_tool: bool) -> list:
    if not with_tool:
        return [HumanMessage(f"q{i}"), AIMessage(f"a{i}")]
    call = {"id": f"c{i}", "name": "calculator", "args": {"expression": "1+1"}}
    return [HumanMessage(f"q{i}"), AIMessage("", tool_calls=[call]), ToolMessage("2", tool_call_id=f"c{i}"), AIMessage(f"a{i}")]


def test_window_keeps_whole_turns_only():
    history = [m for i in range(10) for m in turn(i, with_tool=i % 2 == 0)] + [HumanMessage("now")]
    for limit in range(1, 30):
        window = history_window(history, limit)
        assert window[-1].content == "now"
        assert isinstance(window[0], HumanMessage)
        calls = {c["id"] for m in window if isinstance(m, AIMessage) for c in m.tool_calls}
        results = {m.tool_call_id for m in window if isinstance(m, ToolMessage)}
        assert calls == results  # never a call without its result or vice versa
        assert len(window) <= max(limit, 1)


def test_window_never_drops_the_current_turn():
    current = turn(99, with_tool=True)
    history = [m for i in range(3) for m in turn(i, False)] + current
    assert history_window(history, 2) == current


def test_short_history_is_untouched():
    history = turn(1, True) + [HumanMessage("now")]
    assert history_window(history, 40) == history


def test_preferences_message():
    assert preferences_message({"genre": "sci-fi"}) == SystemMessage("User preferences: genre: sci-fi.")


async def test_a_streamed_turn_on_sqlite_memory_never_hops_to_a_thread(tmp_path):
    # Model calls on aiobotocore, SQLite calls inline, the edge after the model a coroutine (a sync one ran on
    # the loop's executor after every model call): nothing of a turn leaves the event loop's thread.
    import asyncio

    from bedrock.config import Settings
    from bedrock.core.build import build_agent
    from bedrock.wire.request import parse_request

    agent = build_agent(Settings(model_provider="offline", memory_path=str(tmp_path / "m.sqlite")))
    payload = {"prompt": "Tell me about the sea", "session_id": "s" * 33, "stream_tokens": True}
    await agent.invoke(parse_request(payload))  # warm: the loop's model client
    loop, hops = asyncio.get_running_loop(), []
    submit = loop.run_in_executor

    def counted(executor, fn, *args):
        hops.append(fn)
        return submit(executor, fn, *args)

    loop.run_in_executor = counted
    try:
        result = await agent.invoke(parse_request({**payload, "session_id": "t" * 33}))
    finally:
        loop.run_in_executor = submit
        agent.close()
    assert result["output"] and hops == []
