"""Human in the loop, in-process: a tool call waits for approval in the session's state until a resume answers."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import pytest

from bedrock.config import ConfigError, Settings
from bedrock.core.build import build_agent
from bedrock.core.graph import DECLINED
from bedrock.errors import AgentError
from bedrock.offline.endpoint import OfflineBedrockEndpoint
from bedrock.server.app import build_app
from bedrock.server.runtime import Runtime


def make_runtime(**settings: Any) -> Runtime:
    config = Settings(memory_backend="memory", approval_required_tools=("calculator",), **settings)
    return build_app(config, agent=build_agent(config)).state.runtime


async def ask(runtime: Runtime, session_id: str, prompt: str = "What is 25 * 4?") -> dict[str, Any]:
    events = [e async for e in runtime.stream({"prompt": prompt, "session_id": session_id})]
    assert [e.type for e in events][-2:] == ["interrupt", "agent_end"]
    assert events[-1].data["status"] == "interrupted" and events[-1].data["interrupts"] == [events[-2].data]
    return events[-2].data


async def messages(runtime: Runtime, session_id: str) -> list[tuple[str, str]]:
    state = await runtime.get_agent().graph.aget_state({"configurable": {"thread_id": session_id}})
    return [(m.type, m.content if isinstance(m.content, str) else "") for m in state.values["messages"]]


async def test_an_interrupt_names_the_call_and_the_turn_ends_interrupted(session_id):
    runtime = make_runtime()
    pending = await ask(runtime, session_id)
    assert pending["tool_name"] == "calculator" and pending["args"] == {"expression": "25 * 4"}
    assert pending["interrupt_id"].startswith("approval-") and pending["run_id"].startswith("run-")
    assert await runtime.get_agent().pending_approvals(session_id, "default-user") == [
        {k: v for k, v in pending.items() if k != "run_id"}]
    done = await runtime.ainvoke({"prompt": "My name is Zed", "session_id": session_id + "-other"})
    assert done["metrics"]["approvals_asked"] == 0  # a turn without a tool call is not held


@pytest.mark.parametrize("approved, args, answer", [(True, None, "100"), (True, {"expression": "6 * 7"}, "42"),
                                                    (False, None, None)])
async def test_resume_runs_the_tool_with_its_or_edited_args_or_declines(session_id, approved, args, answer):
    runtime = make_runtime()
    pending = await ask(runtime, session_id)
    decision: dict[str, Any] = {"interrupt_id": pending["interrupt_id"], "approved": approved}
    if args is not None:
        decision["args"] = args
    result = await runtime.ainvoke({"session_id": session_id, "resume": decision})
    history = await messages(runtime, session_id)
    if answer is None:
        assert "100" not in result["output"] and ("tool", DECLINED) in history
        assert result["metrics"]["approvals_declined"] == 1 and result["metrics"]["tool_calls"] == 0
    else:
        assert answer in result["output"] and ("tool", answer) in history
        assert result["metrics"]["approvals_granted"] == 1 and result["metrics"]["tool_calls"] == 1
    assert await runtime.get_agent().pending_approvals(session_id, "default-user") == []


async def test_a_new_prompt_declines_what_is_pending_first(session_id):
    runtime = make_runtime()
    await ask(runtime, session_id)
    reply = await runtime.ainvoke({"prompt": "My name is Zed", "session_id": session_id})
    assert reply["output"].startswith("Nice to meet you, Zed") and reply["metrics"]["approvals_declined"] == 1
    assert [t for t, _ in await messages(runtime, session_id)] == ["human", "ai", "tool", "human", "ai"]
    with pytest.raises(AgentError) as nothing:
        await runtime.ainvoke({"session_id": session_id, "resume": {"interrupt_id": "approval-x", "approved": True}})
    assert (nothing.value.code, nothing.value.status) == ("nothing_to_resume", 409)


async def test_a_stale_or_wrong_interrupt_is_refused_and_the_approval_stays(session_id):
    runtime = make_runtime()
    pending = await ask(runtime, session_id)
    for wrong in ("approval-000000000000000000000000", "approval-x"):
        with pytest.raises(AgentError) as mismatch:
            await runtime.ainvoke({"session_id": session_id, "resume": {"interrupt_id": wrong, "approved": True}})
        assert (mismatch.value.code, mismatch.value.status) == ("interrupt_mismatch", 409)
    # streamed, the turn's own check says the same (as its one error event)
    events = [e async for e in runtime.stream({"session_id": session_id,
                                               "resume": {"interrupt_id": "approval-x", "approved": True}})]
    assert events[-1].type == "error" and events[-1].data["code"] == "interrupt_mismatch"
    result = await runtime.ainvoke({"session_id": session_id,
                                    "resume": {"interrupt_id": pending["interrupt_id"], "approved": True}})
    assert "100" in result["output"]


async def test_a_cut_resume_is_rolled_back_and_the_same_approval_is_asked_again(session_id):
    endpoint = OfflineBedrockEndpoint(token_delay_ms=30).start()
    try:
        config = Settings(model_provider="bedrock", memory_backend="memory", approval_required_tools=("calculator",),
                          token_buffer_size=1)
        runtime = build_app(config, agent=build_agent(config, endpoint.url)).state.runtime
        pending = await ask(runtime, session_id)
        resume = {"session_id": session_id, "stream_tokens": True,
                  "resume": {"interrupt_id": pending["interrupt_id"], "approved": True}}
        async with aclosing(runtime.stream(resume)) as events:
            async for event in events:
                if event.type == "llm_token":
                    break  # the tool ran and the answer streams: cut here (in-process: the run is cancelled)
        assert runtime.runs.find(session_id).state == "cancelled"
        again = await runtime.get_agent().pending_approvals(session_id, "default-user")
        assert [item["interrupt_id"] for item in again] == [pending["interrupt_id"]]  # asked again, same id
        assert [t for t, _ in await messages(runtime, session_id)] == ["human", "ai"]  # no half turn
        result = await runtime.ainvoke({**resume, "stream_tokens": False})
        assert "100" in result["output"]
    finally:
        endpoint.stop()


async def test_bad_resume_objects_are_refused_field_by_field(session_id):
    runtime = make_runtime()
    for bad, field in (({"approved": True}, "resume.interrupt_id"), ({"interrupt_id": "a", "approved": "yes"},
                       "resume.approved"), ({"interrupt_id": "a", "approved": True, "args": [1]}, "resume.args"),
                       ({"interrupt_id": "a b", "approved": True}, "resume.interrupt_id"),
                       ({"interrupt_id": "a", "approved": True, "extra": 1}, "resume.extra")):
        with pytest.raises(AgentError) as refused:
            await runtime.ainvoke({"session_id": session_id, "resume": bad})
        assert refused.value.code == "invalid_payload" and refused.value.details[0]["field"] == field, bad
    with pytest.raises(AgentError) as both:
        await runtime.ainvoke({"session_id": session_id, "prompt": "hi",
                               "resume": {"interrupt_id": "a", "approved": True}})
    assert both.value.details[0]["field"] == "resume"
    with pytest.raises(AgentError) as sessionless:
        await runtime.ainvoke({"resume": {"interrupt_id": "a", "approved": True}})
    assert sessionless.value.details[0]["field"] == "session_id"


async def test_without_approvals_configured_a_resume_has_nothing_to_answer(session_id):
    config = Settings(memory_backend="memory")
    runtime = build_app(config, agent=build_agent(config)).state.runtime
    assert "100" in (await runtime.ainvoke({"prompt": "What is 25 * 4?", "session_id": session_id}))["output"]
    with pytest.raises(AgentError) as nothing:
        await runtime.ainvoke({"session_id": session_id, "resume": {"interrupt_id": "approval-x", "approved": True}})
    assert nothing.value.code == "nothing_to_resume"


def test_an_unknown_tool_name_is_refused_at_startup():
    with pytest.raises(ConfigError) as refused:
        build_agent(Settings(memory_backend="memory", approval_required_tools=("calculater",)))
    assert "calculater" in str(refused.value) and "calculator" in str(refused.value)
    assert Settings.from_env({"APPROVAL_REQUIRED_TOOLS": " calculator, ,"}).approval_required_tools == ("calculator",)


async def test_approval_ids_cannot_be_guessed(session_id):
    """Every session's first approval had the same id (`approval-01b9072d…`): the offline model's tool call ids
    were fixed. They are random now, as Bedrock's are, and so are the approvals named after them."""
    runtime = make_runtime()
    ids = {(await ask(runtime, f"{session_id}-{i}"))["interrupt_id"] for i in range(3)}
    assert len(ids) == 3


async def test_edited_arguments_that_fail_the_tools_schema_are_not_echoed(session_id):
    """LangGraph's own message repeats every argument as sent (`with kwargs {'expression': ['x'], 'secret': …}`):
    the tool's result names the problem only, and the turn goes on to an answer."""
    runtime = make_runtime()
    pending = await ask(runtime, session_id)
    decision = {"interrupt_id": pending["interrupt_id"], "approved": True,
                "args": {"expression": ["x"], "secret": "s3cr3t"}}
    events = [e async for e in runtime.stream({"session_id": session_id, "resume": decision})]
    tool = next(e.data for e in events if e.type == "agent_step" and e.data.get("type") == "tool")
    assert tool["content"].startswith("Error: invalid arguments (expression: ") and "Please fix" in tool["content"]
    assert "s3cr3t" not in tool["content"] and "['x']" not in tool["content"] and "kwargs" not in tool["content"]
    assert events[-1].type == "agent_end"
