"""Our events → AG-UI events, one run at a time, keeping AG-UI's lifecycle (`AGUIStream`; the table is in
`bedrock.wire.agui`), and `encode`, what ag_ui's EventEncoder writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ag_ui.core import (
    PROTOCOL_VERSION,
    BaseEvent,
    CustomEvent,
    RunAgentInput,
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunFinishedSuccessOutcome,
    RunStartedEvent,
    StateSnapshotEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TokenUsage,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.encoder import EventEncoder

from bedrock.wire.agui._input import CANCELLED
from bedrock.wire.agui._interrupts import call_key, interrupt_of
from bedrock.wire.events import AGENT_END, AGENT_START, AGENT_STEP, CUSTOM, ERROR, INTERRUPT, LLM_TOKEN, SSEEvent

# Our CUSTOM events' names.
CUSTOM_NAME = "custom"  # a node's `get_stream_writer()` value
UPDATE_NAME = "update"  # a node's update besides messages

_encoder = EventEncoder()


def _epoch_ms(timestamp: Any) -> int | None:
    """Our ISO-8601 timestamp as epoch milliseconds (AG-UI's timestamp is an int), or None."""
    if not isinstance(timestamp, str):
        return None
    try:
        return round(datetime.fromisoformat(timestamp).timestamp() * 1000)
    except ValueError:
        return None


def _count(value: Any) -> int | None:
    # TokenUsage refuses negatives and non-integers; a bad count is left out rather than failing the run's end.
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _usage(metrics: Any) -> list[TokenUsage] | None:
    """The run's token usage in AG-UI's accounting; None when no model call was made (not a measured zero)."""
    if not isinstance(metrics, dict) or not metrics.get("llm_calls"):
        return None
    input_tokens, output_tokens = _count(metrics.get("input_tokens")), _count(metrics.get("output_tokens"))
    if input_tokens is None and output_tokens is None:
        return None
    total = input_tokens + output_tokens if input_tokens is not None and output_tokens is not None else None
    return [TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=total)]


class AGUIStream:
    """Translates one run's events, in order, into AG-UI events, keeping AG-UI's lifecycle (see the module)."""

    def __init__(self, run_input: RunAgentInput) -> None:
        self.run_input = run_input
        self.started = False
        self.finished = False
        self._run_id = run_input.run_id  # ours from agent_start on: the message ids' prefix
        self._open: str | None = None  # the text message being streamed
        self._streamed: set[str] = set()  # messages whose text came as tokens
        self._calls: dict[str, str] = {}  # call_key → tool call id, of the calls started in this run
        self._interrupts: dict[str, dict[str, Any]] = {}
        self._handlers: dict[str, Callable[[Any, list[BaseEvent]], None]] = {
            LLM_TOKEN: self._token, AGENT_STEP: self._step, CUSTOM: self._custom, INTERRUPT: self._pending,
            AGENT_END: self._end, ERROR: self._error,
        }

    def events(self, event: SSEEvent) -> list[BaseEvent]:
        """The AG-UI events for one of ours (none for an event AG-UI has nothing for, or after the end)."""
        if self.finished:
            return []
        out: list[BaseEvent] = []
        if not self.started:
            self.started = True
            start = event.data if event.type == AGENT_START else {}
            self._run_id = start.get("run_id") or self._run_id
            out.append(RunStartedEvent(
                thread_id=self.run_input.thread_id, run_id=self.run_input.run_id, protocol_version=PROTOCOL_VERSION,
                timestamp=_epoch_ms(start.get("timestamp")), raw_event=start or None))
        handler = self._handlers.get(event.type)
        if handler is not None and isinstance(event.data, dict):
            handler(event.data, out)
        return out

    def render(self, event: SSEEvent) -> bytes | None:
        """The AG-UI frames for one of our events, as one write (None if none): the SSE response's `render`."""
        return b"".join(encode(translated) for translated in self.events(event)) or None

    def _message_id(self, step: Any) -> str:
        return f"{self._run_id}-msg-{step}"

    def _close_text(self, out: list[BaseEvent]) -> None:
        if self._open is not None:
            out.append(TextMessageEndEvent(message_id=self._open))
            self._open = None

    def _token(self, data: dict[str, Any], out: list[BaseEvent]) -> None:
        token = data.get("token")
        if not token:
            return
        message_id = self._message_id(data["step"])
        if self._open != message_id:
            self._close_text(out)
            out.append(TextMessageStartEvent(message_id=message_id, role="assistant"))
            self._open = message_id
            self._streamed.add(message_id)
        out.append(TextMessageContentEvent(message_id=message_id, delta=token))

    def _step(self, data: dict[str, Any], out: list[BaseEvent]) -> None:
        message_id = self._message_id(data["step"])
        kind = data.get("type")
        if kind == "tool":
            out.append(ToolCallResultEvent(message_id=message_id, tool_call_id=data["tool_call_id"],
                                           content=data.get("content") or "", role="tool"))
            return
        if kind == "update":
            out.append(CustomEvent(name=UPDATE_NAME, value={
                "node": data.get("node") or "", "namespace": data.get("namespace") or [],
                "values": data.get("values")}))
            return
        if kind != "ai" or data.get("replaces"):  # a message re-written (an approval's edited args): AG-UI has it
            return
        self._close_text(out)
        text = data.get("content") or ""
        if text and message_id not in self._streamed:
            out += [TextMessageStartEvent(message_id=message_id, role="assistant"),
                    TextMessageContentEvent(message_id=message_id, delta=text),
                    TextMessageEndEvent(message_id=message_id)]
        for call in data.get("tool_calls") or ():
            if call["id"] in self._calls.values():  # a message re-written with the same call: AG-UI has it
                continue
            self._calls[call_key(call["name"], call.get("args") or {})] = call["id"]
            out += [ToolCallStartEvent(tool_call_id=call["id"], tool_call_name=call["name"],
                                       parent_message_id=message_id),
                    ToolCallArgsEvent(tool_call_id=call["id"], delta=json.dumps(call.get("args") or {})),
                    ToolCallEndEvent(tool_call_id=call["id"])]

    def _custom(self, data: dict[str, Any], out: list[BaseEvent]) -> None:
        out.append(CustomEvent(name=CUSTOM_NAME, value={
            "node": data.get("node") or "", "namespace": data.get("namespace") or [], "value": data.get("value")}))

    def _pending(self, data: dict[str, Any], out: list[BaseEvent]) -> None:
        self._interrupts[data["interrupt_id"]] = data

    def _finish(self, out: list[BaseEvent], event: BaseEvent) -> None:
        self._close_text(out)
        out.append(event)
        self.finished = True

    def _end(self, data: dict[str, Any], out: list[BaseEvent]) -> None:
        # agent_end's own list is the run's pending interrupts; the interrupt events said the same as they came.
        pending = data.get("interrupts") or list(self._interrupts.values())
        outcome = (RunFinishedInterruptOutcome(interrupts=[interrupt_of(p, self._calls) for p in pending])
                   if data.get("status") == "interrupted" and pending else RunFinishedSuccessOutcome())
        if "state" in data:  # asked for (`include_state`): AG-UI's state is the graph's, whole, before the end
            self._close_text(out)
            out.append(StateSnapshotEvent(snapshot=data["state"]))
        self._finish(out, RunFinishedEvent(
            thread_id=self.run_input.thread_id, run_id=self.run_input.run_id, result=data.get("output"),
            outcome=outcome, usage=_usage(data.get("metrics")), timestamp=_epoch_ms(data.get("timestamp")),
            raw_event=data))

    def _error(self, data: dict[str, Any], out: list[BaseEvent]) -> None:
        timestamp = _epoch_ms(data.get("timestamp"))
        if data.get("code") == CANCELLED:
            self._finish(out, RunFinishedEvent(
                thread_id=self.run_input.thread_id, run_id=self.run_input.run_id,
                outcome=RunFinishedCancelledOutcome(), timestamp=timestamp, raw_event=data))
        else:
            self._finish(out, RunErrorEvent(message=data.get("error") or "The run failed.", code=data.get("code"),
                                            timestamp=timestamp, raw_event=data))


def encode(event: BaseEvent) -> bytes:
    """One AG-UI SSE frame, as ag_ui's EventEncoder writes it: `data: <JSON>\\n\\n`, UTF-8."""
    return _encoder.encode(event).encode("utf-8")
