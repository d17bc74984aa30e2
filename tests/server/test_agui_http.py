"""AG-UI over HTTP: a RunAgentInput body on POST /invocations is answered with the run as AG-UI events
(bedrock/wire/agui/), every frame validated with ag-ui-protocol's models and the lifecycle rules; the same
memory, approvals, cancel, rollback and errors as any run. AGENT_PROTOCOL=ag-ui takes only AG-UI bodies."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pytest
from ag_ui.core import RunAgentInput

from bedrock.offline.endpoint import HttpError, OfflineBedrockEndpoint
from bedrock.wire.agui import HITL_REASON
from tests.wire.test_agui import T, agui_input, parse, texts, verify
from testkit.live_server import LiveServer
from testkit import loopback

GRAPHS = Path(__file__).resolve().parent.parent / "graphs"


def run(url: str, body: dict[str, Any], **verified: Any) -> list[Any]:
    reply = loopback.post(url + "/invocations", json=body, timeout=30)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream"), reply.text
    frames = [part + b"\n\n" for part in reply.content.split(b"\n\n") if part.startswith(b"data: ")]
    events = [parse(frame) for frame in frames]
    verify(events, RunAgentInput.model_validate(body), **verified)
    return events


def said(thread: str, text: str, run_id: str = "r1") -> dict[str, Any]:
    return agui_input(thread_id=thread, run_id=run_id, messages=[{"id": run_id, "role": "user", "content": text}])


def test_a_tool_calling_turn_and_memory_across_runs_of_a_thread(server, session_id):
    events = run(server.url, said(session_id, "What is 25 * 4?"))
    result = next(e for e in events if e.type == T.TOOL_CALL_RESULT)
    assert result.content == "100" and events[-1].outcome.type == "success" and "100" in events[-1].result
    assert events[0].thread_id == session_id and events[0].run_id == "r1"
    assert events[-1].usage[0].input_tokens > 0 and events[-1].raw_event["metrics"]["tool_calls"] == 1
    run(server.url, said(session_id, "My name is Ada", "r2"))
    recalled = run(server.url, said(session_id, "What's my name?", "r3"))
    assert list(texts(recalled).values()) == ["Your name is Ada."]
    # the thread is our session: our own actions see it
    history = loopback.post(server.url + "/invocations", json={"action": "history", "session_id": session_id}).json()
    assert [m["type"] for m in history["messages"]].count("human") == 3


def test_an_approval_is_an_interrupt_outcome_answered_by_resume(make_server, session_id):
    live = make_server({"APPROVAL_REQUIRED_TOOLS": "calculator"})
    first = run(live.url, said(session_id, "What is 25 * 4?"))
    outcome = first[-1].outcome
    assert outcome.type == "interrupt" and outcome.interrupts[0].metadata["args"] == {"expression": "25 * 4"}
    answer = agui_input(thread_id=session_id, run_id="r2", resume=[{
        "interruptId": outcome.interrupts[0].id, "status": "resolved",
        "payload": {"approved": True, "editedArgs": {"expression": "6 * 7"}}}])
    second = run(live.url, answer, known_calls=frozenset({outcome.interrupts[0].tool_call_id}))
    assert next(e for e in second if e.type == T.TOOL_CALL_RESULT).content == "42"
    stale = loopback.post(live.url + "/invocations", json=answer, timeout=30)
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "nothing_to_resume"


def test_a_failing_turn_is_run_error_with_its_code_and_nothing_is_kept(session_id):
    endpoint = OfflineBedrockEndpoint().start()
    try:
        env = {"MODEL_PROVIDER": "bedrock", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": endpoint.url,
               "BEDROCK_MAX_ATTEMPTS": "1"}
        with LiveServer(env) as live:
            endpoint.then(HttpError(429, "ThrottlingException", "slow down"))
            events = run(live.url, said(session_id, "What is 25 * 4?"))
            assert events[-1].type == T.RUN_ERROR and events[-1].code == "model_throttled"
            assert events[-1].raw_event["retryable"] is True
            history = loopback.post(live.url + "/invocations", json={"action": "history", "session_id": session_id})
            assert history.json()["messages"] == []
    finally:
        endpoint.stop()


def test_cancel_by_our_run_id_finishes_the_run_as_cancelled(make_server, session_id):
    live = make_server({"OFFLINE_TOKEN_DELAY_MS": "40"})
    body = said(session_id, "Tell me about the sea")
    frames: list[bytes] = []
    started = threading.Event()

    def follow() -> None:
        with loopback.stream("POST", live.url + "/invocations", json=body, timeout=30) as reply:
            for chunk in reply.iter_raw():
                frames.append(chunk)
                if b'"RUN_STARTED"' in b"".join(frames):
                    started.set()

    reader = threading.Thread(target=follow)
    reader.start()
    assert started.wait(10)
    run_id = parse(b"".join(frames).split(b"\n\n")[0] + b"\n\n").raw_event["run_id"]
    cancelled = loopback.post(live.url + "/invocations", json={"action": "cancel", "session_id": session_id,
                                                            "run_id": run_id}, timeout=10)
    assert cancelled.json()["status"] == "cancelled"
    reader.join(30)
    events = [parse(p + b"\n\n") for p in b"".join(frames).split(b"\n\n") if p.startswith(b"data: ")]
    verify(events, RunAgentInput.model_validate(body))
    assert events[-1].type == T.RUN_FINISHED and events[-1].outcome.type == "cancelled"


@pytest.mark.parametrize("body, field", [
    ({"threadId": "t", "runId": "r", "messages": []}, "messages"),
    ({"threadId": "\ud800", "runId": "r", "messages": [{"id": "1", "role": "user", "content": "hi"}]}, "threadId"),
    ({"threadId": "t", "runId": "\udfff", "messages": [{"id": "1", "role": "user", "content": "hi"}]}, "runId"),
    ({"threadId": "t", "runId": "r", "messages": [{"id": "1", "role": "user", "content": "hi \ud800"}]}, "prompt"),
    ({"threadId": "t", "runId": "r", "messages": [{"id": "1", "role": "user", "content": "hi"}], "state": 1,
      "tools": "x"}, "tools"),
])
def test_an_invalid_input_is_a_400_with_details(server, body, field):
    content = json.dumps(body).encode()  # lone surrogates as JSON escapes, as a client may send them
    refused = loopback.post(server.url + "/invocations", content=content, timeout=10,
                         headers={"content-type": "application/json"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_payload"
    assert any(d["field"].startswith(field) for d in refused.json()["error"]["details"])


def test_agent_protocol_ag_ui_takes_only_ag_ui_bodies(make_server, session_id):
    live = make_server({"AGENT_PROTOCOL": "ag-ui"})
    ours = loopback.post(live.url + "/invocations", json={"prompt": "What is 25 * 4?"}, timeout=10)
    assert ours.status_code == 400 and ours.json()["error"]["message"].startswith("invalid AG-UI input")
    assert run(live.url, said(session_id, "What is 25 * 4?"))[-1].outcome.type == "success"
    memories = loopback.post(live.url + "/invocations", json={"action": "memories"}, timeout=10)  # our actions stay
    assert memories.status_code == 200 and memories.json()["memories"] == []


def test_an_ag_ui_only_deployment_can_stop_a_run(make_server, session_id):
    """AGENT_PROTOCOL=ag-ui refused every non-AG-UI body, `cancel` included, while AG-UI runs went on when their
    client left: nothing could stop one. Our actions on runs stay reachable, and an AG-UI client's leaving (its
    `abortRun`) cancels its run."""
    import time

    live = make_server({"AGENT_PROTOCOL": "ag-ui", "OFFLINE_TOKEN_DELAY_MS": "40"})
    body = said(session_id, "Tell me about the sea")
    with loopback.Client(timeout=30) as client, client.stream("POST", live.url + "/invocations", json=body) as reply:
        for line in reply.iter_lines():
            if '"TEXT_MESSAGE_CONTENT"' in line:
                break  # the client aborts
    deadline = time.monotonic() + 20
    while True:
        status = loopback.post(live.url + "/invocations", json={"action": "status", "session_id": session_id}, timeout=10)
        assert status.status_code == 200, status.text
        if status.json()["state"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert status.json()["state"] == "cancelled"
    history = loopback.post(live.url + "/invocations", json={"action": "history", "session_id": session_id}, timeout=10)
    assert history.status_code == 200 and history.json()["messages"] == []  # rolled back
    with loopback.Client(timeout=30) as client, client.stream("POST", live.url + "/invocations", json={
            **body, "forwardedProps": {"on_disconnect": "continue"}}) as reply:
        for line in reply.iter_lines():
            if '"RUN_STARTED"' in line:
                break
    cancelled = loopback.post(live.url + "/invocations", json={"action": "cancel", "session_id": session_id}, timeout=30)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_a_cold_start_does_not_import_ag_ui():
    """ag-ui-protocol's models take ~55 ms to import: loaded with the first AG-UI body, not by every session."""
    import subprocess
    import sys

    code = "import sys, bedrock.agent_runtime; assert 'ag_ui' not in sys.modules, 'imported at start'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


# --- a user's graph --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hitl_server() -> Iterator[LiveServer]:
    """tests/graphs/hitl.py: LangChain's create_agent, `refund` reviewed by HumanInTheLoopMiddleware."""
    with LiveServer({"AGENT_GRAPH": f"{GRAPHS / 'hitl.py'}:graph"}) as live:
        yield live


@pytest.fixture(scope="module")
def questions_server() -> Iterator[LiveServer]:
    """tests/graphs/questions.py: a subgraph's progress, then interrupt("Which city?")."""
    with LiveServer({"AGENT_GRAPH": f"{GRAPHS / 'questions.py'}:graph"}) as live:
        yield live


def test_a_human_in_the_loop_review_is_an_interrupt_outcome_answered_with_its_decisions(hitl_server, session_id):
    first = run(hitl_server.url, said(session_id, 'refund({"order_id": "A1", "amount": 5})'))
    call = next(e for e in first if e.type == T.TOOL_CALL_START)
    assert call.tool_call_name == "refund" and json.loads(next(
        e for e in first if e.type == T.TOOL_CALL_ARGS).delta) == {"order_id": "A1", "amount": 5}
    outcome = first[-1].outcome
    assert outcome.type == "interrupt" and len(outcome.interrupts) == 1
    review = outcome.interrupts[0]
    assert (review.reason, review.tool_call_id) == (HITL_REASON, call.tool_call_id)
    assert review.metadata["value"]["action_requests"][0]["args"] == {"order_id": "A1", "amount": 5}
    assert review.metadata["node"] == "HumanInTheLoopMiddleware.after_model"
    assert "decisions" in review.response_schema["properties"]
    # a prompt instead of the answer: the graph waits for it (AG-UI: pending interrupts block new input)
    refused = loopback.post(hitl_server.url + "/invocations", json=said(session_id, "hello", "r1b"), timeout=30)
    assert "interrupt_pending" in refused.text

    second = run(hitl_server.url, agui_input(thread_id=session_id, run_id="r2", resume=[{
        "interruptId": review.id, "status": "resolved", "payload": {"decisions": [{"type": "approve"}]}}]),
        known_calls=frozenset({call.tool_call_id}))
    result = next(e for e in second if e.type == T.TOOL_CALL_RESULT)
    assert (result.tool_call_id, result.content) == (call.tool_call_id, "Refunded 5 on order A1.")
    assert T.TOOL_CALL_START not in [e.type for e in second]  # the call is the interrupted run's
    updates = [e.value for e in second if e.type == T.CUSTOM and e.name == "update"]
    assert updates == [{"node": "HumanInTheLoopMiddleware.after_model", "namespace": [],
                        "values": {"hitl_edited_tool_calls": {}}}]
    assert second[-1].outcome.type == "success" and "Refunded 5 on order A1." in second[-1].result


def test_a_graphs_progress_and_question_over_ag_ui(questions_server, session_id):
    first = run(questions_server.url, said(session_id, "Plan a trip"))
    progress = [e.value for e in first if e.type == T.CUSTOM and e.name == "custom"]
    assert progress == [{"node": "search", "namespace": ["research"], "value": {"phase": "start"}},
                        {"node": "search", "namespace": ["research"], "value": {"phase": "done"}}]
    (question,) = first[-1].outcome.interrupts
    assert (question.reason, question.message, question.metadata["node"]) == ("input_required", "Which city?", "ask")
    second = run(questions_server.url, agui_input(thread_id=session_id, run_id="r2", resume=[{
        "interruptId": question.id, "status": "resolved", "payload": "Paris"}]))
    assert {"node": "ask", "namespace": [], "values": {"city": "Paris"}} in [
        e.value for e in second if e.type == T.CUSTOM and e.name == "update"]
    assert second[-1].outcome.type == "success" and second[-1].result == "City is Paris"
    assert list(texts(second).values())[-1] == "City is Paris"
    cancelled = loopback.post(questions_server.url + "/invocations", json=agui_input(thread_id=session_id, run_id="r3",
                           resume=[{"interruptId": question.id, "status": "cancelled"}]), timeout=30)
    assert cancelled.status_code == 400 and cancelled.json()["error"]["details"][0]["field"] == "resume.0.status"
