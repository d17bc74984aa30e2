"""Event names, the SSEEvent frame type, and the per-stream sequence that numbers and ends events."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Awaitable
from json.encoder import encode_basestring_ascii as _escape
from datetime import UTC, datetime
from typing import Any, Protocol

AGENT_START = "agent_start"
AGENT_STEP = "agent_step"
LLM_TOKEN = "llm_token"
INTERRUPT = "interrupt"  # the graph waits for the user (an approval, any `interrupt()`); agent_end follows
CUSTOM = "custom"  # a value a node wrote with LangGraph's `get_stream_writer()` (progress, anything of the graph's)
AGENT_END = "agent_end"
ERROR = "error"
TERMINAL_EVENTS = frozenset({AGENT_END, ERROR})


class SSEEvent(str):
    """One SSE frame, exactly as written on the wire, that also knows its type, data and id.

    Being a `str` keeps the guide's `print(event)` and `"llm_token" in event` working; the attributes keep
    `event.type == "agent_end"` and `event.data["metrics"]` working, without re-parsing the frame.
    """

    __slots__ = ("type", "data", "id")
    type: str
    data: Any
    id: int | None

    def __new__(cls, frame: str, type: str, data: Any, id: int | None = None) -> SSEEvent:
        self = super().__new__(cls, frame)
        self.type = type
        self.data = data
        self.id = id
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (SSEEvent, (str(self), self.type, self.data, self.id))


class EventStream(Protocol):
    """Events that whoever reads them closes (`aclose`, `aclosing`): an async generator of them, a run's follower."""

    def __aiter__(self) -> AsyncIterator[SSEEvent]: ...

    def aclose(self) -> Awaitable[object]: ...


def dumps(data: Any) -> str:
    """One-line JSON for a `data:` line.

    ensure_ascii: httpx's `aiter_lines()` (the guide's client) also breaks lines at U+2028, U+2029 and
    U+0085, so any non-ASCII character is escaped rather than risk splitting a frame.
    Strict JSON: a NaN or ±Infinity (which no client's strict parser reads) is written as null.
    """
    try:
        return json.dumps(data, ensure_ascii=True, separators=(",", ":"), default=str, allow_nan=False)
    except ValueError:  # a non-finite number somewhere (a tool's or a graph's own data); rare, so only then walked
        return json.dumps(finite(data), ensure_ascii=True, separators=(",", ":"), default=str, allow_nan=False)


def finite(data: Any) -> Any:
    """`data` with every NaN or ±Infinity replaced by None (JSON's null)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(value) for value in data]
    return data


def encode_frame(event_type: str, data: Any, event_id: int | None = None) -> SSEEvent:
    """Frame one event: `event:` line, one `data:` line, then `id:` (the order the guide's clients rely on)."""
    if event_id is None:
        frame = f"event: {event_type}\ndata: {dumps(data)}\n\n"
    else:
        frame = f"event: {event_type}\ndata: {dumps(data)}\nid: {event_id}\n\n"
    return SSEEvent(frame, event_type, data, event_id)


class TokenSource:
    """Where a model's tokens come from — its graph node, and the subgraph path when in one — rendered once per
    model call: every token's frame carries it."""

    __slots__ = ("data", "json")

    def __init__(self, node: str, namespace: tuple[str, ...] = ()) -> None:
        self.data: dict[str, Any] = {"node": node, "namespace": list(namespace)} if namespace else {"node": node}
        self.json = "," + dumps(self.data)[1:-1]


def token_frame(token: str, step: int, event_id: int, lead: str = "", source: TokenSource | None = None) -> SSEEvent:
    """An `llm_token` frame, byte-identical to `encode_frame(LLM_TOKEN, {"token", "step", "text", "node"…}, id)`.

    `text` is the token as a plain-text client appends it (`lead`, e.g. a blank line before a later message of
    the turn, then the token): the AgentCore CLI (`agentcore dev`, its chat) shows a stream's text only from
    `data:` objects with a `text` key, so with it every client shows the answer token by token. `source`: the
    node (and subgraph) whose model call made it.
    Hand-assembled because it is the one frame sent per model token: skipping the generic dict dump
    halves its cost (bench/token_cost.py). The string escape is json's own (ASCII-only, like `dumps`).
    """
    escaped = _escape(token)
    text = _escape(lead + token) if lead else escaped
    data = {"token": token, "step": step, "text": lead + token}
    if source is None:
        frame = f'event: llm_token\ndata: {{"token":{escaped},"step":{step},"text":{text}}}\nid: {event_id}\n\n'
    else:
        frame = (f'event: llm_token\ndata: {{"token":{escaped},"step":{step},"text":{text}{source.json}}}\n'
                 f'id: {event_id}\n\n')
        data.update(source.data)
    return SSEEvent(frame, LLM_TOKEN, data, event_id)


def revive(frame: str) -> SSEEvent:
    """The SSEEvent of a frame `encode_frame` wrote, from its text alone (a kept frame is stored as its text)."""
    if isinstance(frame, SSEEvent):
        return frame
    head, _, rest = frame.partition("\ndata: ")
    data, _, tail = rest.partition("\n")
    event_id = int(tail[4:].rstrip("\n")) if tail.startswith("id: ") else None
    return SSEEvent(frame, head[len("event: "):], json.loads(data), event_id)


def utc_timestamp() -> str:
    """Now as ISO-8601 UTC with a `Z`, millisecond precision."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventSequence:
    """Numbers one stream's events 1, 2, 3 … and refuses anything after its terminal event."""

    __slots__ = ("_next_id", "terminal")

    def __init__(self) -> None:
        self._next_id = 1
        self.terminal: SSEEvent | None = None

    def emit(self, event_type: str, data: Any) -> SSEEvent:
        """Frame the next event of this stream."""
        if self.terminal is not None:
            raise RuntimeError(f"stream already ended with {self.terminal.type}; cannot emit {event_type}")
        event = encode_frame(event_type, data, self._next_id)
        self._next_id += 1
        if event_type in TERMINAL_EVENTS:
            self.terminal = event
        return event

    def token(self, token: str, step: int, lead: str = "", source: TokenSource | None = None) -> SSEEvent:
        """The next event as an `llm_token` (the hot path: see `token_frame`)."""
        if self.terminal is not None:
            raise RuntimeError(f"stream already ended with {self.terminal.type}; cannot emit {LLM_TOKEN}")
        event = token_frame(token, step, self._next_id, lead, source)
        self._next_id += 1
        return event
