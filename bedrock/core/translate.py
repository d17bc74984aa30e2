"""A graph run's stream, any graph's, as our events: `agent_step` per message and per other update (subgraphs with
their `namespace`), `llm_token` per model chunk (with its `node`), `custom` per `get_stream_writer()` write. No
node name is assumed: whatever the graph calls its nodes is what the events say.

What LangGraph streams (`astream(..., stream_mode=["updates", "custom", "tasks"], subgraphs=True)`, and the token
tap's items) arrives as `(namespace, mode, chunk)`. A `custom` chunk does not say which node wrote it: the node is
the task of its namespace that runs (the `tasks` mode's starts and results), else the last that ran there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, convert_to_messages

from bedrock.core.messages import message_text, step_data
from bedrock.core.values import bounded_json
from bedrock.wire.batching import TokenBuffer
from bedrock.wire.events import AGENT_STEP, CUSTOM, EventSequence, SSEEvent, TokenSource

PARAGRAPH = "\n\n"  # before a later message's text, in `llm_token.text`
INTERRUPT_KEY = "__interrupt__"  # LangGraph's update key for a node's interrupts


def namespace_of(ns: tuple[str, ...] | None) -> tuple[str, ...]:
    """LangGraph's namespace ("node:<task id>", …) as node names."""
    return tuple(part.split(":", 1)[0] for part in ns) if ns else ()


def message_key(message: BaseMessage) -> tuple[str, str]:
    """What tells a message already shown from a new one or a replacement (same id, other content)."""
    return (message_text(message), repr(getattr(message, "tool_calls", None)))


class Translator:
    """One turn's stream items → events (through `seq`); keeps what the turn's end needs: the step count, the output
    text, the interrupts seen, and each message's node (for `history`)."""

    def __init__(self, seq: EventSequence, buffer: TokenBuffer, max_event_bytes: int,
                 seen: dict[str, tuple[str, str]] | None = None) -> None:
        self.seq = seq
        self.buffer = buffer
        self.max_event_bytes = max_event_bytes
        self.step = 1
        self.output = ""
        self.interrupts: dict[str, Any] = {}  # LangGraph's interrupt id → Interrupt, each once (subgraphs repeat them)
        self.labels: dict[str, str] = {}  # message id → the node that wrote it
        self._seen = seen if seen is not None else {}  # message id → message_key: shown (or there before the turn)
        self._awaiting_first_token = True
        self._said = False  # a message of this turn has streamed text already
        self._source: TokenSource | None = None
        self._running: dict[tuple[str, ...], list[tuple[str, str]]] = {}  # namespace → (task id, node) running
        self._last: dict[tuple[str, ...], str] = {}  # namespace → the node whose task ended last

    def token(self, message: Any, source: TokenSource) -> SSEEvent | None:
        """A model chunk's event, or None while the buffer holds it. The first token of a message goes out at once
        (time to first token); a later message's text starts on a new paragraph for plain-text clients."""
        text = message_text(message)
        if not text:
            return None
        if source is not self._source:  # another model call: its tokens never share a frame with the last one's
            rest = self.buffer.flush()
            previous, self._source = self._source, source
            if rest and previous is not None:
                return self._flushed(rest, previous, text)
        if self._awaiting_first_token:
            self._awaiting_first_token = False
            lead = PARAGRAPH if self._said else ""
            self._said = True
            return self.seq.token(text, self.step + 1, lead, source)
        batch = self.buffer.add(text)
        return self.seq.token(batch, self.step + 1, "", source) if batch else None

    def _flushed(self, rest: str, previous: TokenSource, text: str) -> SSEEvent:
        self.buffer.add(text)  # the new call's first token waits for the next frame
        return self.seq.token(rest, self.step + 1, "", previous)

    def item(self, ns: tuple[str, ...], mode: str, chunk: Any) -> Iterator[SSEEvent]:
        """The events of one `updates`, `custom` or `tasks` item."""
        if mode == "updates":
            for node, update in chunk.items():
                yield from self._update(ns, node, update)
        elif mode == "custom":
            yield self.seq.emit(CUSTOM, self._where(self._writer(ns), ns) | {
                "value": bounded_json(chunk, self.max_event_bytes)})
        elif mode == "tasks":
            self._track(ns, chunk)

    def flush(self) -> Iterator[SSEEvent]:
        """Tokens still buffered, before a step's event (or the turn's end)."""
        rest = self.buffer.flush()
        if rest and self._source is not None:
            yield self.seq.token(rest, self.step + 1, "", self._source)

    def _update(self, ns: tuple[str, ...], node: str, update: Any) -> Iterator[SSEEvent]:
        if node == INTERRUPT_KEY:
            for pending in update:
                self.interrupts.setdefault(pending.id, pending)
            return
        messages, rest = _split(update)
        for message in messages:
            key = message_key(message)
            shown = self._seen.get(message.id) if message.id is not None else None
            if shown == key:
                continue  # shown already (a subgraph's messages again in its parent's update), or from before
            if message.id is not None:
                self._seen[message.id] = key
                self.labels[message.id] = node
            yield from self.flush()
            self.step += 1
            self._awaiting_first_token = True
            data = self._where(node, ns) | step_data(self.step, node, message)
            if shown is not None:  # a message shown before, re-written (same id): e.g. a call's edited arguments
                data["replaces"] = True
            yield self.seq.emit(AGENT_STEP, data)
            if isinstance(message, AIMessage):
                self.output = message_text(message)
        if rest is not None:
            yield from self.flush()
            self.step += 1
            yield self.seq.emit(AGENT_STEP, self._where(node, ns) | {
                "step": self.step, "node": node, "type": "update", "content": "",
                "values": bounded_json(rest, self.max_event_bytes)})

    @staticmethod
    def _where(node: str, ns: tuple[str, ...]) -> dict[str, Any]:
        names = namespace_of(ns)
        return {"node": node, "namespace": list(names)} if names else {"node": node}

    def _track(self, ns: tuple[str, ...], task: Mapping[str, Any]) -> None:
        running = self._running.setdefault(ns, [])
        if "input" in task:  # a task starts
            running.append((task["id"], task["name"]))
            return
        self._running[ns] = [entry for entry in running if entry[0] != task["id"]]
        self._last[ns] = task["name"]

    def _writer(self, ns: tuple[str, ...]) -> str:
        running = self._running.get(ns)
        return running[-1][1] if running else self._last.get(ns, "")


def _split(update: Any) -> tuple[list[BaseMessage], Any]:
    """A node's update as (its messages, the rest or None): `{"messages": [...], "other": …}` →
    (messages, {"other": …}); anything that is not a mapping (a pydantic state's update, None) is all rest."""
    if update is None:
        return [], None
    if not isinstance(update, Mapping):
        return [], update
    raw = update.get("messages")
    rest = {key: value for key, value in update.items() if key != "messages"} or None
    if raw is None:
        return [], rest
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    try:
        messages = convert_to_messages(items)
    except Exception:  # not messages after all: shown as values
        return [], {**(rest or {}), "messages": raw}
    return messages, rest
