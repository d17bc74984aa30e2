"""A run's events as text (bedrock/wire/text.py): what each event adds, as JSON strings, ids kept; and a user's graph
(tests/graphs/hitl.py) read as text from a real server, its review answered."""

from __future__ import annotations

import json
import re
from pathlib import Path


from bedrock.wire.events import EventSequence
from bedrock.wire.text import TextRendering
from testkit import loopback


def rendered(events: list) -> list[tuple[str, str, str]]:
    """(event, text, id) of each frame written."""
    rendering, frames = TextRendering(), []
    for event in events:
        frame = rendering.render(event)
        if frame is None:
            continue
        head, data, event_id, *_ = frame.decode().split("\n")
        frames.append((head.removeprefix("event: "), json.loads(data.removeprefix("data: ")), event_id))
    return frames


def test_a_turn_without_tokens_is_its_messages_and_tool_results():
    seq = EventSequence()
    events = [seq.emit("agent_start", {"session_id": "s", "actor_id": "a", "run_id": "r"}),
              seq.emit("agent_step", {"step": 1, "node": "input", "content": "What is 25 * 4?", "type": "human"}),
              seq.emit("agent_step", {"step": 2, "node": "chatbot", "content": "Let me see.", "type": "ai",
                                      "tool_calls": [{"id": "t1", "name": "calculator", "args": {}}]}),
              seq.emit("agent_step", {"step": 3, "node": "tools", "content": "100", "type": "tool",
                                      "tool_name": "calculator", "tool_call_id": "t1", "status": "success"}),
              seq.emit("agent_step", {"step": 4, "node": "chatbot", "content": "It is 100.", "type": "ai"}),
              seq.emit("agent_end", {"output": "It is 100.", "steps": 4, "metrics": {}})]
    frames = rendered(events)
    assert "".join(text for _, text, _ in frames) == "Let me see.\n(calculator → 100)\nIt is 100.\n"
    assert [event_id for _, _, event_id in frames] == ["id: 3", "id: 4", "id: 5", "id: 6"]


def test_streamed_tokens_are_not_repeated_by_their_message():
    seq = EventSequence()
    events = [seq.token("Hel", 2), seq.token("lo\u2028there", 2),
              seq.emit("agent_step", {"step": 2, "node": "chatbot", "content": "Hello\u2028there", "type": "ai"}),
              seq.emit("agent_end", {"output": "Hello", "steps": 2, "metrics": {}})]
    frames = rendered(events)
    assert "".join(text for _, text, _ in frames) == "Hello\u2028there\n"
    assert all("\u2028" not in TextRendering().render(e).decode() for e in events[:2])  # one data line each


def test_an_approval_and_an_error_read_as_text_without_markup_brackets():
    seq = EventSequence()
    events = [seq.emit("interrupt", {"interrupt_id": "approval-1", "tool_name": "calculator",
                                     "args": {"expression": "25 * 4"}}),
              seq.emit("error", {"error": "The model is throttling requests; retry shortly.", "code": "model_throttled",
                                 "type": "ThrottlingException", "retryable": True})]
    texts = [text for _, text, _ in rendered(events)]
    assert texts == ['\n(approval needed: calculator {"expression": "25 * 4"}, interrupt_id approval-1)\n',
                     "\nerror (model_throttled): The model is throttling requests; retry shortly.\n"]
    assert not any("[" in text for text in texts)


def test_a_graphs_own_data_is_left_out_and_its_questions_read_as_lines():
    """Progress (`custom`) and a node's `update` are the graph's data, not what a person reads; a question is."""
    seq = EventSequence()
    events = [seq.emit("agent_start", {"session_id": "s", "actor_id": "a", "run_id": "r"}),
              seq.emit("custom", {"node": "search", "namespace": ["research"], "value": {"phase": "start"}}),
              seq.emit("agent_step", {"node": "search", "namespace": ["research"], "step": 2, "type": "ai",
                                      "content": "I looked at a few places."}),
              seq.emit("agent_step", {"node": "ask", "step": 3, "type": "update", "content": "",
                                      "values": {"city": "Paris"}}),
              seq.emit("interrupt", {"interrupt_id": "f0494", "value": "Which city?", "node": "ask",
                                     "namespace": [], "run_id": "r"}),
              seq.emit("interrupt", {"interrupt_id": "f0495", "value": {"pick": ["a", "b"]}, "node": "ask",
                                     "namespace": [], "run_id": "r"}),
              seq.emit("agent_end", {"output": "", "steps": 3, "metrics": {}, "status": "interrupted"})]
    frames = rendered(events)
    assert "".join(text for _, text, _ in frames) == (
        "I looked at a few places.\n(question: Which city?, interrupt_id f0494)\n"
        '\n(question: {"pick": ["a", "b"]}, interrupt_id f0495)\n\n')
    assert [head for head, _, _ in frames] == ["agent_step", "interrupt", "interrupt", "agent_end"]


def test_a_human_in_the_loop_review_reads_as_an_approval_per_call():
    seq = EventSequence()
    value = {"action_requests": [{"name": "refund", "args": {"order_id": "A1", "amount": 5}, "description": "d"},
                                 {"name": "lookup_order", "args": {"order_id": "A1"}, "description": "d"}],
             "review_configs": []}
    events = [seq.emit("interrupt", {"interrupt_id": "b0fd", "value": value, "node": "HumanInTheLoopMiddleware",
                                     "namespace": []}),
              seq.emit("interrupt", {"interrupt_id": "c1", "value": {"type": "tool_approval", "name": "refund",
                                                                     "tool_call_id": "t", "args": {}}})]
    assert [text for _, text, _ in rendered(events)] == [
        '\n(approval needed: refund {"order_id": "A1", "amount": 5}, interrupt_id b0fd)'
        '\n(approval needed: lookup_order {"order_id": "A1"}, interrupt_id b0fd)\n',
        "\n(approval needed: refund {}, interrupt_id c1)\n"]


def test_two_messages_in_a_row_do_not_run_together():
    """A graph whose nodes each say something: the second message starts a paragraph, streamed or not."""
    seq = EventSequence()
    events = [seq.token("I'm the offline", 3), seq.token(" model.", 3),
              seq.emit("agent_step", {"step": 3, "node": "answer", "type": "ai", "content": "I'm the offline model."}),
              seq.emit("agent_step", {"step": 4, "node": "answer", "type": "ai", "content": "City is Paris"}),
              seq.token("Bye", 5),
              seq.emit("agent_end", {"output": "Bye", "steps": 5, "metrics": {}})]
    assert "".join(text for _, text, _ in rendered(events)) == "I'm the offline model.\n\nCity is Paris\n\nBye\n"


def text_of(url: str, payload: dict) -> str:
    """A run's text, from a real server (`stream_format: text`): every frame's data a JSON string."""
    reply = loopback.post(url + "/invocations", json={**payload, "stream_format": "text"}, timeout=30)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream"), reply.text
    datas = [line.removeprefix("data: ") for line in reply.text.splitlines() if line.startswith("data: ")]
    assert all(isinstance(json.loads(data), str) for data in datas)
    return "".join(json.loads(data) for data in datas)


def test_a_human_in_the_loop_graph_as_text(make_server, session_id):
    live = make_server({"AGENT_GRAPH": f"{Path(__file__).resolve().parents[1] / 'graphs' / 'hitl.py'}:graph"})
    asked = text_of(live.url, {"prompt": 'refund({"order_id": "A1", "amount": 5})', "session_id": session_id})
    found = re.fullmatch(r'I\'ll call refund\.\n\(approval needed: refund \{"order_id": "A1", "amount": 5\}, '
                         r"interrupt_id (\w+)\)\n\n", asked)
    assert found, asked
    answered = text_of(live.url, {"session_id": session_id, "resume": {"interrupt_id": found.group(1), "value": {
        "decisions": [{"type": "reject", "message": "too much"}]}}})
    assert answered == ("\n(refund → User rejected the tool call for `refund` with reason: too much)\n"
                        "refund failed: User rejected the tool call for `refund` with reason: too much\n")
