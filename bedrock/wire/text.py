"""A run's events as plain text (`"stream_format": "text"`): every frame's `data:` a JSON string.

That is the AgentCore SDK's own convention for a streamed `str` (`data: "…"`), and the one the starter
toolkit's `agentcore invoke` prints as text: it prints a `data:` JSON string as it is, and any other JSON as
JSON. Our events (objects) would show there as raw JSON, so a client that wants to *read* a stream asks for
this rendering; the run, its ids and `resume` are the same. The text is what a person reads — the answer and what
the agent did — so a graph's own data (`custom` values, a node's `update`) is left out.

    agent_start, human, input and resume steps   (nothing: no frame)
    llm_token                                    its text
    agent_step ai                                its text, unless its tokens were already streamed (a message
                                                 right after another's text: a blank line first)
    agent_step tool                              "\\n(calculator → 100)\\n"
    agent_step update, custom                    (nothing)
    interrupt, a tool approval                   "\\n(approval needed: calculator {…}, interrupt_id approval-…)\\n"
    interrupt, HumanInTheLoopMiddleware          the same line per tool call it reviews
    interrupt, any other                         "\\n(question: Which city?, interrupt_id 3f…)\\n" (a value that is
                                                 not a string: its JSON)
    agent_end                                    "\\n"
    error                                        "\\nerror (code): message\\n"

Each frame keeps its event's name and id, so `Last-Event-ID` and `resume` work as for the events. No square
brackets: the toolkit prints with rich, whose markup would swallow `[calculator: 100]` whole.
"""

from __future__ import annotations

import json
from typing import Any

from bedrock.wire.events import AGENT_END, AGENT_STEP, ERROR, INTERRUPT, LLM_TOKEN, SSEEvent


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def interrupt_text(data: dict[str, Any]) -> str:
    """An `interrupt` event as the lines a person reads: what the agent waits for, and the id to answer it by."""
    interrupt_id = data.get("interrupt_id")
    if "tool_name" in data:  # the built-in agent's approval
        return f"\n(approval needed: {data.get('tool_name')} {_json(data.get('args'))}, interrupt_id {interrupt_id})\n"
    value = data.get("value")
    if isinstance(value, dict) and value.get("type") == "tool_approval" and "name" in value:  # per-call review
        actions: Any = [value]
    else:
        actions = value.get("action_requests") if isinstance(value, dict) else None
    if isinstance(actions, list) and actions and all(isinstance(action, dict) for action in actions):
        return "".join(f"\n(approval needed: {action.get('name')} {_json(action.get('args'))}, interrupt_id "
                       f"{interrupt_id})" for action in actions) + "\n"
    question = value if isinstance(value, str) else _json(value)
    return f"\n(question: {question}, interrupt_id {interrupt_id})\n"


class TextRendering:
    """Renders one run's events, in order, as text frames (`render(event)` → the frame's bytes, or None)."""

    def __init__(self) -> None:
        self._streamed: set[int] = set()  # steps whose text came as tokens
        self._said: Any = None  # the step whose text was written last (None: other text, or none yet)
        self._open_line = False  # the text so far ends inside a line

    def text(self, event: SSEEvent) -> str | None:
        """What `event` adds to the text, or None if nothing."""
        text = self._text(event)
        if text:
            self._open_line = not text.endswith("\n")
        return text

    def _message(self, step: Any, text: str) -> str:
        """A message's text; a message after another's unbroken text starts a paragraph (two in a row from one
        turn, e.g. a graph's nodes each saying something, would otherwise run together)."""
        lead = "\n\n" if self._said != step and self._open_line else ""
        self._said = step
        return lead + text

    def _text(self, event: SSEEvent) -> str | None:
        data = event.data if isinstance(event.data, dict) else {}
        if event.type == LLM_TOKEN:
            self._streamed.add(data.get("step", 0))
            token = data.get("token")
            return self._message(data.get("step", 0), token) if token else None
        if event.type == AGENT_STEP:
            if data.get("type") == "ai" and data.get("step") not in self._streamed:
                content = data.get("content")
                return self._message(data.get("step"), content) if content else None
            if data.get("type") == "tool":
                return f"\n({data.get('tool_name')} → {data.get('content')})\n"
            return None
        if event.type == INTERRUPT:
            return interrupt_text(data)
        if event.type == AGENT_END:
            return "\n"
        if event.type == ERROR:
            return f"\nerror ({data.get('code')}): {data.get('error')}\n"
        return None  # custom, and any event type added later

    def render(self, event: SSEEvent) -> bytes | None:
        text = self.text(event)
        if text is None:
            return None
        # ensure_ascii: line breaks inside the text (U+2028 too) stay escaped, one `data:` line per frame.
        head = f"event: {event.type}\ndata: {json.dumps(text)}\n"
        return (head + (f"id: {event.id}\n\n" if event.id is not None else "\n")).encode()
