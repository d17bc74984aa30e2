"""A run's events as plain text (`"stream_format": "text"`): every frame's `data:` a JSON string.

That is the AgentCore SDK's own convention for a streamed `str` (`data: "…"`), and the one the starter
toolkit's `agentcore invoke` prints as text: it prints a `data:` JSON string as it is, and any other JSON as
JSON. Our events (objects) would show there as raw JSON, so a client that wants to *read* a stream asks for
this rendering; the run, its ids and `resume` are the same.

    agent_start, human and resume steps      (nothing: no frame)
    llm_token                                its text
    agent_step ai                            its text, unless its tokens were already streamed
    agent_step tool                          "\\n(calculator → 100)\\n"
    interrupt                                "\\n(approval needed: calculator {…}, interrupt_id approval-…)\\n"
    agent_end                                "\\n"
    error                                    "\\nerror (code): message\\n"

Each frame keeps its event's name and id, so `Last-Event-ID` and `resume` work as for the events. No square
brackets: the toolkit prints with rich, whose markup would swallow `[calculator: 100]` whole.
"""

from __future__ import annotations

import json

from bedrock.wire.events import AGENT_END, AGENT_STEP, ERROR, INTERRUPT, LLM_TOKEN, SSEEvent


class TextRendering:
    """Renders one run's events, in order, as text frames (`render(event)` → the frame's bytes, or None)."""

    def __init__(self) -> None:
        self._streamed: set[int] = set()  # steps whose text came as tokens

    def text(self, event: SSEEvent) -> str | None:
        """What `event` adds to the text, or None if nothing."""
        data = event.data if isinstance(event.data, dict) else {}
        if event.type == LLM_TOKEN:
            self._streamed.add(data.get("step", 0))
            return data.get("token") or None
        if event.type == AGENT_STEP:
            if data.get("type") == "ai" and data.get("step") not in self._streamed:
                return data.get("content") or None
            if data.get("type") == "tool":
                return f"\n({data.get('tool_name')} → {data.get('content')})\n"
            return None
        if event.type == INTERRUPT:
            args = json.dumps(data.get("args"), ensure_ascii=False)
            return f"\n(approval needed: {data.get('tool_name')} {args}, interrupt_id {data.get('interrupt_id')})\n"
        if event.type == AGENT_END:
            return "\n"
        if event.type == ERROR:
            return f"\nerror ({data.get('code')}): {data.get('error')}\n"
        return None

    def render(self, event: SSEEvent) -> bytes | None:
        text = self.text(event)
        if text is None:
            return None
        # ensure_ascii: line breaks inside the text (U+2028 too) stay escaped, one `data:` line per frame.
        head = f"event: {event.type}\ndata: {json.dumps(text)}\n"
        return (head + (f"id: {event.id}\n\n" if event.id is not None else "\n")).encode()
