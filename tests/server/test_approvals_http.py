"""Human in the loop over HTTP, with APPROVAL_REQUIRED_TOOLS=calculator: interrupt, approve, decline, edit,
restart while pending, a new prompt while pending, and the guide's own clients reading an interrupted turn."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bedrock.config import Settings
from bedrock.core.build import build_agent
from testkit.sse import frames_of
from tests.guide import run_httpx_client
from tests.test_js_clients import browser_program, react_program, run_node
from testkit import loopback

APPROVALS = {"APPROVAL_REQUIRED_TOOLS": "calculator"}


def post(url: str, payload: dict[str, Any]) -> httpx.Response:
    return loopback.post(url + "/invocations", json=payload, timeout=30)


def interrupted(url: str, session_id: str, prompt: str = "What is 25 * 4?") -> dict[str, Any]:
    """Stream a turn that stops for approval; the pending interrupt."""
    frames = frames_of(post(url, {"prompt": prompt, "session_id": session_id, "stream": True}).content)
    assert [f[0] for f in frames][-2:] == ["interrupt", "agent_end"]
    end = frames[-1][1]
    assert end["status"] == "interrupted" and end["interrupts"] == [frames[-2][1]]
    return frames[-2][1]


async def stored(memory_path: str, session_id: str) -> list[tuple[str, str]]:
    agent = build_agent(Settings(memory_backend="sqlite", memory_path=memory_path, model_provider="bedrock"),
                        "http://127.0.0.1:9")
    try:
        state = await agent.graph.aget_state({"configurable": {"thread_id": session_id}})
        return [(m.type, m.content if isinstance(m.content, str) else "") for m in state.values["messages"]]
    finally:
        agent.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from testkit.live_server import LiveServer

    server = LiveServer(APPROVALS)
    yield server
    server.stop()


async def test_approve_streams_the_tool_step_and_decline_answers_without_it(live, session_id):
    pending = interrupted(live.url, session_id)
    assert (pending["tool_name"], pending["args"]) == ("calculator", {"expression": "25 * 4"})
    approved = post(live.url, {"session_id": session_id, "stream": True,
                               "resume": {"interrupt_id": pending["interrupt_id"], "approved": True}})
    frames = frames_of(approved.content)
    tool_steps = [f[1] for f in frames if f[0] == "agent_step" and f[1]["type"] == "tool"]
    assert tool_steps[0]["content"] == "100" and frames[-1][1]["status"] == "completed"
    assert "100" in frames[-1][1]["output"] and frames[-1][1]["metrics"]["approvals_granted"] == 1

    other = session_id + "-declined"
    pending = interrupted(live.url, other)
    declined = post(live.url, {"session_id": other, "resume": {"interrupt_id": pending["interrupt_id"],
                                                               "approved": False}})
    assert declined.status_code == 200 and "100" not in declined.json()["output"]
    history = await stored(live.memory_path, other)
    assert history[2][0] == "tool" and "declined" in history[2][1] and "100" not in str(history)


def test_edited_arguments_are_the_ones_that_run(live, session_id):
    pending = interrupted(live.url, session_id)
    reply = post(live.url, {"session_id": session_id, "resume": {"interrupt_id": pending["interrupt_id"],
                                                                 "approved": True, "args": {"expression": "6 * 7"}}})
    assert reply.status_code == 200 and "42" in reply.json()["output"]


def test_refusals_before_any_stream(live, session_id):
    nothing = post(live.url, {"session_id": session_id, "stream": True,
                              "resume": {"interrupt_id": "approval-x", "approved": True}})
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_resume"
    interrupted(live.url, session_id)
    wrong = post(live.url, {"session_id": session_id, "stream": True,
                            "resume": {"interrupt_id": "approval-x", "approved": True}})
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "interrupt_mismatch"
    bad = post(live.url, {"session_id": session_id, "resume": {"approved": "yes"}})
    assert bad.status_code == 400 and {d["field"] for d in bad.json()["error"]["details"]} == {
        "resume.interrupt_id", "resume.approved"}


async def test_a_pending_approval_survives_a_restart(make_server, tmp_path, session_id):
    env = {**APPROVALS, "AGENT_MEMORY_PATH": str(tmp_path / "memory.sqlite")}
    first = make_server(env)
    pending = interrupted(first.url, session_id)
    first.process.kill()  # no goodbye: SIGKILL while the approval is pending
    first.process.wait(10)
    second = make_server(env)
    reply = post(second.url, {"session_id": session_id, "resume": {"interrupt_id": pending["interrupt_id"],
                                                                   "approved": True}})
    assert reply.status_code == 200 and "100" in reply.json()["output"]


async def test_a_new_prompt_while_pending_declines_it_and_every_model_request_is_valid(live, session_id):
    """The offline endpoint validates conversations as Converse does: a tool call without its result would be a
    400 ValidationException, and the turn a `model_validation_error`."""
    interrupted(live.url, session_id)
    reply = post(live.url, {"prompt": "My name is Zed", "session_id": session_id})
    assert reply.status_code == 200 and reply.json()["output"].startswith("Nice to meet you, Zed")
    again = post(live.url, {"prompt": "What's my name?", "session_id": session_id})
    assert again.status_code == 200 and again.json()["output"] == "Your name is Zed."
    history = await stored(live.memory_path, session_id)
    assert [t for t, _ in history] == ["human", "ai", "tool", "human", "ai", "human", "ai"]
    assert "declined" in history[2][1]


def test_the_guides_httpx_client_reads_an_interrupted_turn(live):
    lines = run_httpx_client(live.url, "What is 25 * 4?")
    assert lines[0].startswith("[agent_start]") and lines[-1].startswith("[agent_end]")
    assert any(line.startswith("[interrupt]") for line in lines) and "interrupted" in lines[-1]


def test_the_guides_js_clients_read_an_interrupted_turn(live, tmp_path):
    events = run_node(browser_program("What is 25 * 4?"), tmp_path, live.url)
    types = [t for t, _ in events]
    assert types[0] == "agent_start" and types[-2:] == ["interrupt", "agent_end"]
    assert events[-1][1]["status"] == "interrupted"
    updates = run_node(react_program("What is 25 * 4?"), tmp_path, live.url)
    assert ["currentMessage", "I'll calculate that for you."] in updates and updates[-1] == ["currentMessage", ""]


def test_history_shows_the_pending_approval_and_the_call_waiting_for_it(live, session_id):
    pending = interrupted(live.url, session_id)
    history = post(live.url, {"action": "history", "session_id": session_id}).json()
    approval = {k: pending[k] for k in ("interrupt_id", "tool_name", "tool_call_id", "args")}
    # The approval's own fields, and what every interrupt says: its value, and where it was raised.
    assert history["pending"] == [{**approval, "value": approval, "node": "tools", "namespace": []}]
    assert [m["type"] for m in history["messages"]] == ["human", "ai"]
    assert history["messages"][1]["tool_calls"][0]["args"] == {"expression": "25 * 4"}
    post(live.url, {"session_id": session_id, "resume": {"interrupt_id": pending["interrupt_id"], "approved": True}})
    after = post(live.url, {"action": "history", "session_id": session_id}).json()
    assert after["pending"] == [] and [m["type"] for m in after["messages"]] == ["human", "ai", "tool", "ai"]
