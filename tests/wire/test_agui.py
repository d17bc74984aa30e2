"""Our runs as AG-UI events: recorded event sequences translated, every frame re-parsed with ag_ui's own models,
the stream checked against AG-UI's lifecycle rules; AG-UI input mapped to our payload; one real turn end to end."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ag_ui.core import BaseEvent, Event, EventType, RunAgentInput
from pydantic import TypeAdapter

from bedrock.config import Settings
from bedrock.wire.request import ID_PATTERN, MAX_SESSION_ID, parse_request
from bedrock.errors import PayloadError
from bedrock.server.app import build_app
from bedrock.wire import agui
from bedrock.wire.agui import AGUIStream, encode, looks_like_run_agent_input, payload_from_agui
from bedrock.wire.events import EventSequence, SSEEvent, revive

EVENT = TypeAdapter(Event)
TERMINAL = (EventType.RUN_FINISHED, EventType.RUN_ERROR)
RUN_ID = "run-37a612645df243a59e8ecbfbd0b70b53"
T = EventType

# A real tool-calling turn with tokens, as the server recorded its frames (offline model).
TOOL_TURN_WITH_TOKENS = [
    'event: agent_start\ndata: {"session_id":"s1","actor_id":"default-user","run_id":"' + RUN_ID + '",'
    '"timestamp":"2026-11-29T17:07:59.612Z"}\nid: 1\n\n',
    'event: agent_step\ndata: {"step":1,"node":"input","content":"What is 25 * 4?","type":"human"}\nid: 2\n\n',
    'event: llm_token\ndata: {"token":"I\'ll ","step":2}\nid: 3\n\n',
    'event: llm_token\ndata: {"token":"calculate that for you.","step":2}\nid: 4\n\n',
    'event: agent_step\ndata: {"step":2,"node":"chatbot","content":"I\'ll calculate that for you.","type":"ai",'
    '"tool_calls":[{"id":"tooluse_offline_1","name":"calculator","args":{"expression":"25 * 4"}}]}\nid: 5\n\n',
    'event: agent_step\ndata: {"step":3,"node":"tools","content":"100","type":"tool","tool_name":"calculator",'
    '"tool_call_id":"tooluse_offline_1","status":"success"}\nid: 6\n\n',
    'event: llm_token\ndata: {"token":"The ","step":4}\nid: 7\n\n',
    'event: llm_token\ndata: {"token":"result of 25 * ","step":4}\nid: 8\n\n',
    'event: llm_token\ndata: {"token":"4 is 100.","step":4}\nid: 9\n\n',
    'event: agent_step\ndata: {"step":4,"node":"chatbot","content":"The result of 25 * 4 is 100.",'
    '"type":"ai"}\nid: 10\n\n',
    'event: agent_end\ndata: {"output":"The result of 25 * 4 is 100.","steps":4,"metrics":{"tokens":37,'
    '"input_tokens":20,"output_tokens":17,"tool_calls":1,"errors":0,"llm_calls":2,"latency_ms":60.8,'
    '"time_to_first_token_ms":41.7,"approvals_asked":0,"approvals_granted":0,"approvals_declined":0},'
    '"status":"completed","timestamp":"2026-11-29T17:07:59.673Z"}\nid: 11\n\n',
]
METRICS = {"tokens": 14, "input_tokens": 5, "output_tokens": 9, "tool_calls": 0, "errors": 0, "llm_calls": 1,
           "latency_ms": 11.9, "time_to_first_token_ms": 7.9}
CALL = {"id": "tooluse_offline_1", "name": "calculator", "args": {"expression": "25 * 4"}}
PENDING = {"interrupt_id": "approval-01b9072deec98faa9862be5c", "tool_name": "calculator",
           "tool_call_id": "tooluse_offline_1", "args": {"expression": "25 * 4"}, "run_id": RUN_ID}


def agui_input(thread_id: str = "thread-1", run_id: str = "agui-run-1", **fields: Any) -> dict[str, Any]:
    return {"threadId": thread_id, "runId": run_id,
            "messages": [{"id": "u1", "role": "user", "content": "What is 25 * 4?"}], **fields}


def record(*items: tuple[Any, ...], run_id: str = RUN_ID) -> list[SSEEvent]:
    """A run's frames as our server numbers them: ("token", text, step) or (event type, data)."""
    seq = EventSequence()
    frames = [seq.emit("agent_start", {"session_id": "s1", "actor_id": "u", "run_id": run_id,
                                       "timestamp": "2026-11-29T17:07:59.612Z"})]
    for item in items:
        frames.append(seq.token(item[1], item[2]) if item[0] == "token" else seq.emit(item[0], item[1]))
    return [revive(str(frame)) for frame in frames]  # as a kept frame is read back: from its text alone


def ai_step(step: int, content: str, *calls: dict[str, Any], node: str = "chatbot") -> tuple[str, dict[str, Any]]:
    data: dict[str, Any] = {"step": step, "node": node, "content": content, "type": "ai"}
    if calls:
        data["tool_calls"] = list(calls)
    return ("agent_step", data)


def tool_step(step: int, content: str) -> tuple[str, dict[str, Any]]:
    return ("agent_step", {"step": step, "node": "tools", "content": content, "type": "tool",
                           "tool_name": "calculator", "tool_call_id": CALL["id"], "status": "success"})


def end(output: str, status: str = "completed", **extra: Any) -> tuple[str, dict[str, Any]]:
    return ("agent_end", {"output": output, "steps": 4, "metrics": METRICS, "status": status, **extra,
                          "timestamp": "2026-11-29T17:07:59.673Z"})


def error(code: str, message: str) -> tuple[str, dict[str, Any]]:
    return ("error", {"error": message, "type": "X", "code": code, "retryable": code != "cancelled",
                      "timestamp": "2026-11-29T17:07:59.700Z"})


HUMAN = ("agent_step", {"step": 1, "node": "input", "content": "What is 25 * 4?", "type": "human"})


def parse(frame: bytes) -> BaseEvent:
    """One encoded frame, re-read with ag_ui's discriminated union; it must be exactly what it re-encodes to."""
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n") and frame.count(b"\n") == 2, frame
    event = EVENT.validate_json(frame[len(b"data: "):-2])
    assert not event.model_extra, f"fields AG-UI does not define: {event.model_extra}"  # the models keep extras
    assert encode(event) == frame
    return event


def verify(events: list[BaseEvent], run_input: RunAgentInput, known_calls: frozenset[str] = frozenset()) -> None:
    """AG-UI's lifecycle: one RUN_STARTED first; text messages and tool calls opened once, closed with matching
    ids, all closed before the end; results answer calls that were made (here or, `known_calls`, in the run this
    one resumes); exactly one terminal event, last."""
    assert events and events[0].type == T.RUN_STARTED
    assert [e.type for e in events].count(T.RUN_STARTED) == 1
    assert [i for i, e in enumerate(events) if e.type in TERMINAL] == [len(events) - 1]
    open_messages: set[str] = set()
    open_calls: set[str] = set()
    seen: set[str] = set()
    made_calls = set(known_calls)
    for event in events:
        if event.type == T.TEXT_MESSAGE_START:
            assert event.message_id not in seen, "message id reused within the run"
            seen.add(event.message_id)
            open_messages.add(event.message_id)
        elif event.type == T.TEXT_MESSAGE_CONTENT:
            assert event.message_id in open_messages and event.delta
        elif event.type == T.TEXT_MESSAGE_END:
            open_messages.remove(event.message_id)
        elif event.type == T.TOOL_CALL_START:
            assert event.tool_call_id not in made_calls and event.parent_message_id
            made_calls.add(event.tool_call_id)
            open_calls.add(event.tool_call_id)
        elif event.type == T.TOOL_CALL_ARGS:
            assert event.tool_call_id in open_calls
            json.loads(event.delta)  # each call's args come whole
        elif event.type == T.TOOL_CALL_END:
            open_calls.remove(event.tool_call_id)
        elif event.type == T.TOOL_CALL_RESULT:
            assert event.tool_call_id in made_calls and event.tool_call_id not in open_calls
            assert event.message_id not in seen
            seen.add(event.message_id)
        elif event.type in (T.RUN_STARTED, T.RUN_FINISHED):
            assert (event.thread_id, event.run_id) == (run_input.thread_id, run_input.run_id)
    assert not open_messages and not open_calls


def translate(frames: list[SSEEvent], run_input: RunAgentInput, **verified: Any) -> list[BaseEvent]:
    stream = AGUIStream(run_input)
    events = [parse(encode(event)) for frame in frames for event in stream.events(frame)]
    verify(events, run_input, **verified)
    assert stream.finished
    return events


def texts(events: list[BaseEvent]) -> dict[str, str]:
    """Each text message's whole text, by message id."""
    out: dict[str, str] = {}
    for event in events:
        if event.type == T.TEXT_MESSAGE_CONTENT:
            out[event.message_id] = out.get(event.message_id, "") + event.delta
    return out


INPUT = RunAgentInput.model_validate(agui_input())


def test_a_tool_calling_turn_with_tokens():
    events = translate([revive(frame) for frame in TOOL_TURN_WITH_TOKENS], INPUT)
    assert [e.type for e in events] == [
        T.RUN_STARTED, T.TEXT_MESSAGE_START, T.TEXT_MESSAGE_CONTENT, T.TEXT_MESSAGE_CONTENT, T.TEXT_MESSAGE_END,
        T.TOOL_CALL_START, T.TOOL_CALL_ARGS, T.TOOL_CALL_END, T.TOOL_CALL_RESULT,
        T.TEXT_MESSAGE_START, *[T.TEXT_MESSAGE_CONTENT] * 3, T.TEXT_MESSAGE_END, T.RUN_FINISHED]
    started, finished = events[0], events[-1]
    assert started.raw_event["run_id"] == RUN_ID and started.protocol_version == "1.0"
    assert started.timestamp == 1795972079612  # 2026-11-29T17:07:59.612Z in epoch ms
    assert texts(events) == {f"{RUN_ID}-msg-2": "I'll calculate that for you.",
                             f"{RUN_ID}-msg-4": "The result of 25 * 4 is 100."}
    call, args, result = events[5], events[6], events[8]
    assert (call.tool_call_id, call.tool_call_name, call.parent_message_id) == (
        "tooluse_offline_1", "calculator", f"{RUN_ID}-msg-2")
    assert json.loads(args.delta) == {"expression": "25 * 4"}
    assert (result.message_id, result.tool_call_id, result.content, result.role) == (
        f"{RUN_ID}-msg-3", "tooluse_offline_1", "100", "tool")
    assert finished.outcome.type == "success" and finished.result == "The result of 25 * 4 is 100."
    assert [u.model_dump() for u in finished.usage] == [
        {"input_tokens": 20, "output_tokens": 17, "total_tokens": 37}]
    assert finished.raw_event["metrics"]["latency_ms"] == 60.8


def test_the_same_turn_without_tokens_sends_each_message_whole():
    frames = [f for f in map(revive, TOOL_TURN_WITH_TOKENS) if f.type != "llm_token"]
    events = translate(frames, INPUT)
    assert [e.type for e in events] == [
        T.RUN_STARTED, T.TEXT_MESSAGE_START, T.TEXT_MESSAGE_CONTENT, T.TEXT_MESSAGE_END,
        T.TOOL_CALL_START, T.TOOL_CALL_ARGS, T.TOOL_CALL_END, T.TOOL_CALL_RESULT,
        T.TEXT_MESSAGE_START, T.TEXT_MESSAGE_CONTENT, T.TEXT_MESSAGE_END, T.RUN_FINISHED]
    with_tokens = translate([revive(frame) for frame in TOOL_TURN_WITH_TOKENS], INPUT)
    assert texts(events) == texts(with_tokens)  # what a client ends up holding is the same


def test_a_tool_call_only_message_has_no_text_message_and_empty_tokens_are_skipped():
    frames = record(HUMAN, ("token", "", 2), ai_step(2, "", CALL), tool_step(3, "100"), ai_step(4, "100."),
                    end("100."))
    events = translate(frames, INPUT)
    assert [e.type for e in events][:5] == [T.RUN_STARTED, T.TOOL_CALL_START, T.TOOL_CALL_ARGS, T.TOOL_CALL_END,
                                            T.TOOL_CALL_RESULT]
    assert events[1].parent_message_id == f"{RUN_ID}-msg-2"


def test_a_failing_turn_ends_its_open_message_then_run_error():
    frames = record(HUMAN, ("token", "The ", 2), ("token", "res", 2),
                    error("model_throttled", "The model is throttling requests; retry shortly."))
    events = translate(frames, INPUT)
    assert [e.type for e in events] == [T.RUN_STARTED, T.TEXT_MESSAGE_START, T.TEXT_MESSAGE_CONTENT,
                                        T.TEXT_MESSAGE_CONTENT, T.TEXT_MESSAGE_END, T.RUN_ERROR]
    assert (events[-1].code, events[-1].message) == (
        "model_throttled", "The model is throttling requests; retry shortly.")
    assert events[-1].raw_event["retryable"] is True and isinstance(events[-1].timestamp, int)


def test_a_cancelled_turn_finishes_with_the_cancelled_outcome():
    frames = record(HUMAN, ("token", "The ", 2), error("cancelled", "The run was cancelled."))
    events = translate(frames, INPUT)
    assert [e.type for e in events] == [T.RUN_STARTED, T.TEXT_MESSAGE_START, T.TEXT_MESSAGE_CONTENT,
                                        T.TEXT_MESSAGE_END, T.RUN_FINISHED]
    assert events[-1].outcome.type == "cancelled" and events[-1].result is None
    assert events[-1].raw_event["code"] == "cancelled"


def test_an_error_before_agent_start_still_opens_the_run():
    seq = EventSequence()
    frames = [seq.emit("error", error("session_forbidden", "This session belongs to another actor.")[1])]
    events = translate(frames, INPUT)
    assert [e.type for e in events] == [T.RUN_STARTED, T.RUN_ERROR]
    assert events[0].raw_event is None and events[-1].code == "session_forbidden"


def test_nothing_follows_the_terminal_event():
    stream = AGUIStream(INPUT)
    frames = record(HUMAN, end("x"))
    assert [e.type for f in frames for e in stream.events(f)][-1] == T.RUN_FINISHED
    assert stream.events(frames[1]) == [] and stream.events(frames[-1]) == []


def test_an_interrupted_turn_and_its_resume_run():
    first = translate(record(HUMAN, ("token", "I'll calculate that for you.", 2),
                             ai_step(2, "I'll calculate that for you.", CALL), ("interrupt", PENDING),
                             end("I'll calculate that for you.", "interrupted", interrupts=[PENDING])), INPUT)
    assert [e.type for e in first][-4:] == [T.TOOL_CALL_START, T.TOOL_CALL_ARGS, T.TOOL_CALL_END, T.RUN_FINISHED]
    finished = first[-1]
    assert finished.outcome.type == "interrupt" and len(finished.outcome.interrupts) == 1  # one, not two
    interrupt = finished.outcome.interrupts[0]
    assert (interrupt.id, interrupt.reason, interrupt.tool_call_id) == (
        PENDING["interrupt_id"], "tool_call", CALL["id"])
    assert interrupt.metadata == {"toolName": "calculator", "args": {"expression": "25 * 4"}}
    schema = interrupt.response_schema
    assert schema["required"] == ["approved"] and "editedArgs" in schema["properties"]
    assert interrupt.message == 'Run calculator({"expression": "25 * 4"})?'

    # The client answers it, as AG-UI says: a new run on the same thread whose resume entry names the interrupt.
    answer = {"approved": True, "editedArgs": {"expression": "6 * 7"}}
    payload, run_input = payload_from_agui(agui_input(run_id="agui-run-2", resume=[
        {"interruptId": interrupt.id, "status": "resolved", "payload": answer}]))
    assert payload == {"session_id": "thread-1", "stream": True, "stream_tokens": True, "on_disconnect": "cancel",
                       "resume": {"interrupt_id": interrupt.id, "approved": True, "args": {"expression": "6 * 7"}}}
    assert parse_request(payload).resume.args == {"expression": "6 * 7"}
    resumed_run = "run-ec4ca72ac52e4a84954491fc4106e197"
    edited = {**CALL, "args": {"expression": "6 * 7"}}
    second = translate(record(
        ("agent_step", {"step": 1, "node": "resume", "type": "resume", "content": "approved",
                        "interrupt_id": interrupt.id}),
        ("agent_step", {**ai_step(2, "I'll calculate that for you.", edited, node="tools")[1], "replaces": True}),
        tool_step(3, "42"),
        ("token", "The result of 6 * 7 is 42.", 4), ai_step(4, "The result of 6 * 7 is 42."),
        end("The result of 6 * 7 is 42."), run_id=resumed_run), run_input, known_calls=frozenset({CALL["id"]}))
    # No call is re-emitted in the resumed run: its result answers the call of the interrupted one.
    assert [e.type for e in second] == [T.RUN_STARTED, T.TOOL_CALL_RESULT, T.TEXT_MESSAGE_START,
                                        T.TEXT_MESSAGE_CONTENT, T.TEXT_MESSAGE_END, T.RUN_FINISHED]
    assert (second[1].tool_call_id, second[1].content) == (CALL["id"], "42")
    assert second[-1].run_id == "agui-run-2" and second[-1].outcome.type == "success"


def test_interrupt_events_alone_still_give_the_interrupt_outcome():
    events = translate(record(HUMAN, ai_step(2, "", CALL), ("interrupt", PENDING), end("", "interrupted")), INPUT)
    assert [i.id for i in events[-1].outcome.interrupts] == [PENDING["interrupt_id"]]


# --- any graph's runs (tests/graphs/questions.py, tests/graphs/hitl.py, as the server recorded them) ------------

QUESTION = {"interrupt_id": "f049488e06bd5a20067d25d47a3bc23f", "value": "Which city?", "node": "ask",
            "namespace": [], "run_id": RUN_ID}
REFUND = {"id": "tooluse_KV9Z4CXmBu5LmqM3hfOrvh", "name": "refund", "args": {"order_id": "A1", "amount": 5}}
HITL = {"interrupt_id": "b0fd763633a9c7e88363464749e1bad7", "value": {
    "action_requests": [{"name": "refund", "args": {"order_id": "A1", "amount": 5},
                         "description": "Tool execution requires approval\n\nTool: refund"}],
    "review_configs": [{"action_name": "refund", "allowed_decisions": ["approve", "edit", "reject", "respond"]}]},
    "node": "HumanInTheLoopMiddleware.after_model", "namespace": [], "run_id": RUN_ID}


def custom_of(events: list[BaseEvent]) -> list[tuple[str, Any]]:
    return [(e.name, e.value) for e in events if e.type == T.CUSTOM]


def test_progress_and_updates_are_custom_events_and_a_question_is_input_required():
    frames = record(
        HUMAN,
        ("custom", {"node": "search", "namespace": ["research"], "value": {"phase": "start"}}),
        ("custom", {"node": "search", "namespace": ["research"], "value": {"phase": "done"}}),
        ("agent_step", {"node": "search", "namespace": ["research"], "step": 2, "content": "I looked.", "type": "ai"}),
        ("agent_step", {"node": "ask", "step": 3, "type": "update", "content": "", "values": {"city": None}}),
        ("interrupt", QUESTION), end("I looked.", "interrupted", interrupts=[QUESTION]))
    events = translate(frames, INPUT)
    assert custom_of(events) == [
        ("custom", {"node": "search", "namespace": ["research"], "value": {"phase": "start"}}),
        ("custom", {"node": "search", "namespace": ["research"], "value": {"phase": "done"}}),
        ("update", {"node": "ask", "namespace": [], "values": {"city": None}})]
    assert texts(events) == {f"{RUN_ID}-msg-2": "I looked."}  # a subgraph's message is a message like any other
    (question,) = events[-1].outcome.interrupts
    assert (question.id, question.reason, question.message, question.tool_call_id, question.response_schema) == (
        QUESTION["interrupt_id"], "input_required", "Which city?", None, None)
    assert question.metadata == {"node": "ask", "namespace": [], "value": "Which city?"}
    # answered with any JSON: what the graph's interrupt() returns
    payload, _ = payload_from_agui(agui_input(run_id="r2", resume=[
        {"interruptId": question.id, "status": "resolved", "payload": "Paris"}]))
    assert payload["resume"] == {"interrupt_id": question.id, "value": "Paris"} and "prompt" not in payload
    assert parse_request(payload).resume.answers() == {question.id: "Paris"}


def test_a_question_whose_value_is_not_text_reads_as_json_and_keeps_its_own_schema():
    asked = {**QUESTION, "value": {"question": "Pick one", "options": ["a", "b"]},
             "response_schema": {"type": "string", "enum": ["a", "b"]}}
    (interrupt,) = translate(record(("interrupt", asked), end("", "interrupted")), INPUT)[-1].outcome.interrupts
    assert json.loads(interrupt.message) == asked["value"]
    assert interrupt.response_schema == {"type": "string", "enum": ["a", "b"]}


def test_a_human_in_the_loop_review_names_its_call_and_the_decisions_it_takes():
    jsonschema = pytest.importorskip("jsonschema")
    first = translate(record(HUMAN, ai_step(2, "I'll call refund.", REFUND, node="model"), ("interrupt", HITL),
                             end("I'll call refund.", "interrupted", interrupts=[HITL])), INPUT)
    (review,) = first[-1].outcome.interrupts
    assert (review.id, review.reason, review.tool_call_id) == (HITL["interrupt_id"], agui.HITL_REASON, REFUND["id"])
    assert review.message.startswith("Tool execution requires approval")
    assert review.metadata == {"node": "HumanInTheLoopMiddleware.after_model", "namespace": [], "value": HITL["value"]}
    schema = review.response_schema
    for good in ({"type": "approve"}, {"type": "reject"}, {"type": "reject", "message": "no"},
                 {"type": "respond", "message": "done by hand"},
                 {"type": "edit", "edited_action": {"name": "refund", "args": {"order_id": "A1", "amount": 2}}}):
        jsonschema.validate({"decisions": [good]}, schema)
    for bad in ({"decisions": []}, {"decisions": [{"type": "approve"}, {"type": "approve"}]},
                {"decisions": [{"type": "edit"}]}, {"decisions": [{"type": "respond"}]},
                {"decisions": [{"type": "edit", "edited_action": {"name": "lookup_order", "args": {}}}]}, {}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    # only what the review allows
    narrow = {**HITL, "value": {**HITL["value"], "review_configs": [
        {"action_name": "refund", "allowed_decisions": ["approve", "reject"]}]}}
    (narrowed,) = translate(record(("interrupt", narrow), end("", "interrupted")), INPUT)[-1].outcome.interrupts
    jsonschema.validate({"decisions": [{"type": "reject"}]}, narrowed.response_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"decisions": [{"type": "respond", "message": "x"}]}, narrowed.response_schema)
    # the answer is the middleware's own, whole; the resumed run answers the call of the interrupted one
    answer = {"decisions": [{"type": "approve"}]}
    payload, run_input = payload_from_agui(agui_input(run_id="r2", resume=[
        {"interruptId": review.id, "status": "resolved", "payload": answer}]))
    assert payload["resume"] == {"interrupt_id": review.id, "value": answer}
    second = translate(record(
        ("agent_step", {"step": 1, "node": "resume", "type": "resume", "content": "answered",
                        "interrupt_id": review.id}),
        ("agent_step", {"node": "HumanInTheLoopMiddleware.after_model", "step": 2, "type": "update", "content": "",
                        "values": {"hitl_edited_tool_calls": {}}}),
        ("agent_step", {"node": "tools", "step": 3, "content": "Refunded 5 on order A1.", "type": "tool",
                        "tool_name": "refund", "tool_call_id": REFUND["id"], "status": "success"}),
        ai_step(4, "refund returned: Refunded 5 on order A1.", node="model"),
        end("refund returned: Refunded 5 on order A1.")), run_input, known_calls=frozenset({REFUND["id"]}))
    assert [e.type for e in second] == [T.RUN_STARTED, T.CUSTOM, T.TOOL_CALL_RESULT, T.TEXT_MESSAGE_START,
                                        T.TEXT_MESSAGE_CONTENT, T.TEXT_MESSAGE_END, T.RUN_FINISHED]


def test_a_review_of_several_calls_or_of_one_per_call():
    other = {"id": "tooluse_2", "name": "refund", "args": {"order_id": "B2", "amount": 1}}
    both = {**HITL, "value": {"action_requests": [
        {"name": "refund", "args": REFUND["args"], "description": "first"},
        {"name": "refund", "args": other["args"], "description": "second"}], "review_configs": []}}
    (review,) = translate(record(ai_step(2, "", REFUND, other, node="model"), ("interrupt", both),
                                 end("", "interrupted")), INPUT)[-1].outcome.interrupts
    assert review.tool_call_id is None and review.message == "first\n\nsecond"  # one interrupt, two calls
    assert review.response_schema["properties"]["decisions"]["minItems"] == 2
    per_call = {**HITL, "value": {"type": "tool_approval", "tool_call_id": REFUND["id"], "name": "refund",
                                  "args": REFUND["args"], "description": "Refund A1?"}}
    (one,) = translate(record(("interrupt", per_call), end("", "interrupted")), INPUT)[-1].outcome.interrupts
    assert (one.reason, one.tool_call_id, one.message) == ("tool_call", REFUND["id"], "Refund A1?")
    assert one.response_schema["oneOf"][0] == {"type": "object", "properties": {"type": {"const": "approve"}},
                                               "required": ["type"]}


def test_several_entries_answer_several_interrupts_at_once():
    payload, _ = payload_from_agui(agui_input(resume=[
        {"interruptId": "3f0a", "status": "resolved", "payload": {"type": "approve"}},
        {"interruptId": "approval-9c", "status": "resolved", "payload": {"approved": True, "editedArgs": {"x": 1}}},
        {"interruptId": "approval-9d", "status": "cancelled"}]))
    assert payload["resume"] == {"values": {"3f0a": {"type": "approve"},
                                            "approval-9c": {"approved": True, "args": {"x": 1}},
                                            "approval-9d": {"approved": False, "args": None}}}
    assert parse_request(payload).resume.answers() == payload["resume"]["values"]


def test_the_final_state_asked_for_is_a_state_snapshot_before_the_end():
    state = {"messages": [{"type": "ai", "content": "City is Paris"}], "city": "Paris"}
    events = translate(record(HUMAN, ("token", "City", 2), end("City is Paris", state=state)), INPUT)
    assert [e.type for e in events][-3:] == [T.TEXT_MESSAGE_END, T.STATE_SNAPSHOT, T.RUN_FINISHED]
    assert events[-2].snapshot == state and "state" in events[-1].raw_event


def test_an_event_type_added_later_and_odd_data_are_no_crash():
    seq = EventSequence()
    frames = [seq.emit("agent_start", {"run_id": RUN_ID}), seq.emit("something_new", {"x": 1}),
              seq.emit("custom", {"value": None}), seq.emit("agent_step", {"step": 2, "type": "update"}),
              seq.emit("agent_step", {"step": 3, "type": "input", "node": "input", "values": {"a": 1}}),
              seq.emit("agent_end", {"output": "", "status": "completed"})]
    events = translate([revive(str(f)) for f in frames], INPUT)
    assert custom_of(events) == [("custom", {"node": "", "namespace": [], "value": None}),
                                 ("update", {"node": "", "namespace": [], "values": None})]


def test_usage_is_left_out_without_a_model_call():
    frames = record(HUMAN, ("agent_end", {"output": "", "steps": 1, "status": "completed",
                                          "metrics": {**METRICS, "llm_calls": 0, "input_tokens": 0}}))
    assert translate(frames, INPUT)[-1].usage is None


def test_encode_writes_one_data_line_whatever_the_text():
    frames = record(HUMAN, ("token", "a\nb\r\u2028é", 2), ai_step(2, "a\nb\r\u2028é"), end("a"))
    stream = AGUIStream(INPUT)
    encoded = [encode(e) for f in frames for e in stream.events(f)]
    assert all(isinstance(frame, bytes) for frame in encoded)
    content = parse(encoded[2])
    assert content.type == T.TEXT_MESSAGE_CONTENT and content.delta == "a\nb\r\u2028é"


def test_render_writes_each_events_frames_together_or_nothing():
    stream = AGUIStream(INPUT)
    writes = [stream.render(revive(frame)) for frame in TOOL_TURN_WITH_TOKENS]
    assert writes[1] is None  # the human step: nothing for AG-UI
    frames = [b"data: " + part for write in writes if write for part in write.split(b"data: ") if part]
    assert all(frame.endswith(b"\n\n") for frame in frames)
    verify([parse(frame) for frame in frames], INPUT)


# --- input -------------------------------------------------------------------------------------------------


def test_looks_like_run_agent_input():
    assert looks_like_run_agent_input(agui_input())
    assert looks_like_run_agent_input({"threadId": "t", "runId": "r", "resume": []})  # resume: both have one
    assert not looks_like_run_agent_input({"prompt": "hi", "session_id": "s"})
    assert not looks_like_run_agent_input({**agui_input(), "prompt": "hi"})
    assert not looks_like_run_agent_input({"threadId": "t", "messages": []})
    assert not looks_like_run_agent_input([agui_input()])


def test_our_payload_keys_and_id_rule_agree_with_the_request_model():
    every = {"action", "prompt", "session_id", "actor_id", "stream", "stream_tokens", "stream_format", "preferences",
             "custom_data", "run_id", "last_event_id", "on_disconnect", "multitask_strategy", "resume", "input",
             "context", "include_state"}
    assert agui.OUR_PAYLOAD_KEYS == every  # every request type's fields (bedrock/wire/request.py), no copy of them
    assert agui.OUR_PAYLOAD_KEYS - agui.OURS_ONLY == {"resume", "context"}  # RunAgentInput's keys too
    assert (agui._input.ID_PATTERN, agui._input.MAX_SESSION_ID) == (ID_PATTERN, MAX_SESSION_ID)
    assert set(agui.FORWARDED) < agui.OUR_PAYLOAD_KEYS


def test_an_ag_ui_client_body_with_context_tools_and_state_is_ag_uis():
    """AG-UI's clients send `context: []`, `tools: []` and `state` with every run: `context` is also one of our keys
    (LangGraph's runtime context), which must not make such a body ours."""
    body = agui_input(context=[], tools=[], state={}, forwardedProps={})
    assert looks_like_run_agent_input(body)
    payload, _ = payload_from_agui(body)
    assert "context" not in payload and payload["prompt"] == "What is 25 * 4?"
    ours = payload_from_agui(agui_input(context=[{"description": "d", "value": "v"}], forwardedProps={
        "context": {"user_tier": "gold"}, "include_state": True}))[0]
    assert ours["context"] == {"user_tier": "gold"} and ours["include_state"] is True  # ours, from forwardedProps
    assert parse_request(ours).include_state is True


def test_a_prompt_is_the_last_user_message():
    payload, run_input = payload_from_agui(agui_input(messages=[
        {"id": "1", "role": "user", "content": "What is 2 + 2?"},
        {"id": "2", "role": "assistant", "content": "4"},
        {"id": "3", "role": "user", "content": [{"type": "text", "text": "And"}, {"type": "text", "text": "6 * 7?"}]},
        {"id": "4", "role": "system", "content": "Be brief."},
    ]))
    assert payload == {"session_id": "thread-1", "prompt": "And\n6 * 7?", "stream": True, "stream_tokens": True,
                       "on_disconnect": "cancel"}  # AG-UI's clients stop a run by leaving
    assert isinstance(run_input, RunAgentInput) and run_input.run_id == "agui-run-1"
    assert parse_request(payload).prompt == "And\n6 * 7?"


@pytest.mark.parametrize("thread_id", ["a" * 101, "thread with spaces", "_leading", "ünï"])
def test_a_thread_id_that_is_not_a_session_id_maps_to_a_stable_one(thread_id):
    session_id = payload_from_agui(agui_input(thread_id=thread_id))[0]["session_id"]
    assert session_id.startswith("agui-") and len(session_id) == 45
    assert session_id == payload_from_agui(agui_input(thread_id=thread_id, run_id="other"))[0]["session_id"]
    assert parse_request({"prompt": "x", "session_id": session_id}).session_id == session_id


@pytest.mark.parametrize("field", ["threadId", "runId"])
def test_ids_that_no_stream_could_echo_are_refused(field):
    with pytest.raises(PayloadError) as refused:  # RUN_STARTED echoes both: a lone surrogate cannot be written
        payload_from_agui({**agui_input(), field: "\ud800"})
    assert refused.value.details == [{"field": field, "message": "not valid Unicode (a lone surrogate)"}]


def test_forwarded_props_give_only_our_own_turn_options():
    payload, _ = payload_from_agui(agui_input(forwardedProps={
        "preferences": {"tone": "brief"}, "actor_id": "alice", "session_id": "hijack", "prompt": "other",
        "stream_tokens": False, "nodeName": "x"}))
    assert payload == {"session_id": "thread-1", "prompt": "What is 25 * 4?", "stream": True, "stream_tokens": True,
                       "preferences": {"tone": "brief"}, "actor_id": "alice", "on_disconnect": "cancel"}
    assert payload_from_agui(agui_input(forwardedProps="opaque"))[0]["prompt"] == "What is 25 * 4?"
    kept = payload_from_agui(agui_input(forwardedProps={"on_disconnect": "continue"}))[0]
    assert kept["on_disconnect"] == "continue"  # a client that re-attaches with our `resume` may say so


@pytest.mark.parametrize("entry, decision", [
    ({"status": "resolved", "payload": {"approved": True}}, {"approved": True}),
    ({"status": "resolved", "payload": {"approved": True, "editedArgs": {"expression": "1"}}},
     {"approved": True, "args": {"expression": "1"}}),
    ({"status": "resolved", "payload": {"approved": False, "editedArgs": {"expression": "1"}}}, {"approved": False}),
    ({"status": "cancelled"}, {"approved": False}),
])
def test_resume_entries_become_our_decision(entry, decision):
    payload, _ = payload_from_agui(agui_input(resume=[{"interruptId": "approval-abc", **entry}]))
    assert payload["resume"] == {"interrupt_id": "approval-abc", **decision} and "prompt" not in payload
    assert parse_request(payload).resume.approved is decision["approved"]


@pytest.mark.parametrize("fields, field", [
    ({"messages": [{"id": "1", "role": "assistant", "content": "hi"}]}, "messages.0"),
    ({"messages": [{"id": "1", "role": "user", "content": "What is 2 + 2?"},  # no new prompt: not answered again
                   {"id": "2", "role": "assistant", "content": "4"}]}, "messages.1"),
    ({"messages": []}, "messages"),
    ({"messages": [{"id": "1", "role": "user", "content": "  "}]}, "messages.0.content"),
    ({"messages": [{"id": "1", "role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "url", "value": "https://example.com/a.png"}}]}]}, "messages.0.content.1"),
    ({"resume": [{"interruptId": "approval-a", "status": "resolved"}]}, "resume.0.payload.approved"),
    ({"resume": [{"interruptId": "approval-a", "status": "resolved", "payload": {"approved": "yes"}}]},
     "resume.0.payload.approved"),
    ({"resume": [{"interruptId": "approval-a", "status": "resolved",
                  "payload": {"approved": True, "editedArgs": [1]}}]}, "resume.0.payload.editedArgs"),
    ({"resume": [{"interruptId": "a", "status": "done"}]}, "resume.0.status"),
    # any other interrupt: an answer is required, and there is none that means "abandoned"
    ({"resume": [{"interruptId": "a", "status": "resolved"}]}, "resume.0.payload"),
    ({"resume": [{"interruptId": "approval-a", "status": "cancelled"}, {"interruptId": "b", "status": "cancelled"}]},
     "resume.1.status"),
    ({"resume": [{"interruptId": "a", "status": "resolved", "payload": 1},
                 {"interruptId": "a", "status": "resolved", "payload": 2}]}, "resume.1.interruptId"),
    ({"messages": [{"id": "1", "role": "user"}]}, "messages.0.user.content"),
    ({"messages": None}, "messages"),
])
def test_invalid_or_empty_input_is_refused_with_details(fields, field):
    with pytest.raises(PayloadError) as refused:
        payload_from_agui(agui_input(**fields))
    assert refused.value.code == "invalid_payload" and refused.value.status == 400
    assert field in [d["field"] for d in refused.value.details]
    assert refused.value.message.startswith("invalid AG-UI input: ")


def test_missing_ids_are_refused():
    with pytest.raises(PayloadError) as refused:
        payload_from_agui({"messages": []})
    assert {d["field"] for d in refused.value.details} == {"threadId", "runId"}


# --- a real turn -------------------------------------------------------------------------------------------


async def run_agui(runtime: Any, body: dict[str, Any], **verified: Any) -> list[BaseEvent]:
    assert looks_like_run_agent_input(body)
    payload, run_input = payload_from_agui(body)
    stream = AGUIStream(run_input)
    events = [parse(frame) async for event in runtime.stream(payload) for frame in map(encode, stream.events(event))]
    verify(events, run_input, **verified)
    return events


async def test_a_real_turn_end_to_end(session_id):
    runtime = build_app(Settings(memory_backend="memory")).state.runtime
    try:
        events = await run_agui(runtime, agui_input(thread_id=session_id))
    finally:
        await runtime.stop()
    types = [e.type for e in events]
    assert types[-1] == T.RUN_FINISHED and events[-1].outcome.type == "success"
    assert T.TEXT_MESSAGE_CONTENT in types[: types.index(T.TOOL_CALL_START)]  # tokens came before the call
    result = next(e for e in events if e.type == T.TOOL_CALL_RESULT)
    call = next(e for e in events if e.type == T.TOOL_CALL_START)
    assert result.content == "100" and result.tool_call_id == call.tool_call_id
    assert "100" in events[-1].result and events[-1].usage[0].total_tokens > 0
    assert list(texts(events).values())[-1] == events[-1].result


async def test_a_real_approval_round_trip_end_to_end(session_id):
    runtime = build_app(Settings(memory_backend="memory", approval_required_tools=("calculator",))).state.runtime
    try:
        first = await run_agui(runtime, agui_input(thread_id=session_id))
        interrupt = first[-1].outcome.interrupts[0]
        call = next(e for e in first if e.type == T.TOOL_CALL_START)
        assert first[-1].outcome.type == "interrupt" and interrupt.tool_call_id == call.tool_call_id
        second = await run_agui(runtime, agui_input(thread_id=session_id, run_id="agui-run-2", resume=[
            {"interruptId": interrupt.id, "status": "resolved",
             "payload": {"approved": True, "editedArgs": {"expression": "6 * 7"}}}]),
            known_calls=frozenset({call.tool_call_id}))
    finally:
        await runtime.stop()
    result = next(e for e in second if e.type == T.TOOL_CALL_RESULT)
    assert (result.tool_call_id, result.content) == (call.tool_call_id, "42")
    assert T.TOOL_CALL_START not in [e.type for e in second] and "42" in second[-1].result
