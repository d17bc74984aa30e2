"""An A2A message → our payload (`payload_for`), before `Runtime.validate` checks it like any other.

`session_id` ← the message's contextId (one outside our id alphabet or over 100 characters maps to a stable
`a2a-<sha256>`, as AG-UI's threadId does: bedrock/wire/agui/_input.py). Then:
    a task that waits for input (input-required)   its pending interrupts — the data parts of its status message
                                                   (updates.py) — answered as our `resume`:
        a tool approval (`approval-…`)             a text "yes" / "approve" / "ok" approves, anything else declines;
                                                   a data part {"approved": B, "args"?: {…}} says it exactly
        any other interrupt                        the text, or the data part, is its value (what `interrupt()`
                                                   returns)
                                                   several pending: the one answer for each; a data part that is our
                                                   own `resume` ({"interrupt_id", …} or {"values": …}) is taken whole
    any other task                                 the text parts, joined by newlines, as the `prompt`; without text,
                                                   a data part that is an object as the graph's `input`
From the request's `metadata` (message/send's params), our own per-turn fields (`FORWARDED`, as AG-UI's
forwardedProps: the graph's runtime `context`, `preferences` …); nothing else of it. A verified caller naming another
actor there is refused as over /invocations (Runtime.validate: actor_forbidden).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from a2a.helpers import get_data_parts, get_text_parts
from a2a.types import Message, Task, TaskState

from bedrock.core.session_state import APPROVAL_PREFIX
from bedrock.errors import PayloadError
from bedrock.wire.ids import ID_PATTERN, MAX_SESSION_ID

APPROVING = frozenset({"yes", "y", "approve", "approved", "ok", "okay"})  # a text reply that approves a tool call
# What a message's metadata may set: a turn's own options (bedrock/wire/request.py), never what the message itself
# decides (its session, prompt or answer), how it streams, or what a run does when its client leaves (an A2A task's
# run is its executor's).
FORWARDED = ("actor_id", "context", "preferences", "custom_data", "multitask_strategy")


def session_id_for(context_id: str) -> str:
    """Our session id for an A2A context: the contextId itself when it is a valid one, else a stable digest."""
    if len(context_id) <= MAX_SESSION_ID and re.fullmatch(ID_PATTERN, context_id):
        return context_id
    return "a2a-" + hashlib.sha256(context_id.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def pending_of(task: Task | None) -> list[dict[str, Any]]:
    """The interrupts an input-required task waits on, as its status message carries them (each a data part with
    its `interrupt_id`). Read before the task's next update: a status's message moves to its history then."""
    if task is None or task.status.state != TaskState.TASK_STATE_INPUT_REQUIRED or not task.status.HasField("message"):
        return []
    return [data for data in get_data_parts(task.status.message.parts)
            if isinstance(data, dict) and isinstance(data.get("interrupt_id"), str)]


def is_approval(interrupt: dict[str, Any]) -> bool:
    """The built-in agent's tool approval (APPROVAL_REQUIRED_TOOLS), answered yes or no."""
    return str(interrupt.get("interrupt_id", "")).startswith(APPROVAL_PREFIX)


def payload_for(message: Message | None, context_id: str, pending: list[dict[str, Any]],
                metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Our payload for `message` in context `context_id` (`metadata`: the request's); PayloadError if it says
    nothing we can send."""
    options = _whole_numbers(metadata or {})
    ours = {"session_id": session_id_for(context_id), **{key: options[key] for key in FORWARDED if key in options}}
    texts = [text for text in get_text_parts(message.parts) if text.strip()] if message is not None else []
    data = [_whole_numbers(value) for value in get_data_parts(message.parts)] if message is not None else []
    text = "\n".join(texts)
    if pending:
        return {**ours, "resume": _answer(pending, text, data[0] if data else None)}
    if text:
        return {**ours, "prompt": text}
    if data and isinstance(data[0], dict):
        return {**ours, "input": data[0]}
    raise PayloadError("invalid A2A message: it needs a text part (the prompt) or a data part (the graph's input)",
                       [{"field": "message.parts", "message": "no text part, and no data part that is an object"}])


def _answer(pending: list[dict[str, Any]], text: str, given: Any) -> dict[str, Any]:
    """Our `resume` for the pending interrupts, from the reply's text or its (first) data part."""
    if isinstance(given, dict) and ("interrupt_id" in given or "values" in given):
        return given  # our own `resume`, whole (bedrock/wire/request.py: Decision)
    answers = {interrupt["interrupt_id"]: _one(interrupt, text, given) for interrupt in pending}
    if len(answers) > 1:
        return {"values": answers}
    ((interrupt_id, answer),) = answers.items()
    if is_approval(pending[0]):
        return {"interrupt_id": interrupt_id, **answer}
    return {"interrupt_id": interrupt_id, "value": answer}


def _one(interrupt: dict[str, Any], text: str, given: Any) -> Any:
    """One interrupt's answer: an approval's {"approved", "args"}, any other's value."""
    if not is_approval(interrupt):
        return given if given is not None else text
    if isinstance(given, dict) and "approved" in given:
        approved, args = given["approved"], given.get("args")
        if not isinstance(approved, bool) or not (args is None or isinstance(args, dict)):
            raise PayloadError('invalid A2A answer: a tool approval\'s data is {"approved": true|false, "args"?: {…}}',
                               [{"field": "message.parts.data",
                                 "message": "approved must be true or false, args an object"}])
        return {"approved": approved, **({"args": args} if args is not None else {})}
    return {"approved": text.strip().strip(".!").lower() in APPROVING}


def _whole_numbers(value: Any) -> Any:
    """A data part's value with its whole numbers as ints: protobuf's Value keeps every number as a double (4 → 4.0),
    which a graph's input schema, or a tool's arguments, may refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value
