"""A run's events as text (bedrock/wire/text.py): what each event adds, as JSON strings, ids kept."""

from __future__ import annotations

import json

from bedrock.wire.events import EventSequence
from bedrock.wire.text import TextRendering


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
