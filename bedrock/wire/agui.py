"""The same runs as AG-UI events (the `ag-ui-protocol` package's models and encoder), and AG-UI input as our payload.

Our events → AG-UI events (`AGUIStream`):

    agent_start              RUN_STARTED: threadId and runId the input's; rawEvent our agent_start data (our own
                             run_id, which `cancel` and `resume` name; session_id, actor_id)
    llm_token                TEXT_MESSAGE_START (role assistant) on a step's first token; TEXT_MESSAGE_CONTENT each
    agent_step ai            TEXT_MESSAGE_END if its tokens came, else START / CONTENT (its whole text) / END when it
                             has text; then per tool call TOOL_CALL_START (parentMessageId: this message) /
                             TOOL_CALL_ARGS (the args as one JSON text) / TOOL_CALL_END
    agent_step ai, node      nothing: our tools node re-writes the model's message with the approved, edited args, and
      `tools`                AG-UI does not re-emit a call in the run that resumes it (the edit is in the resume)
    agent_step tool          TOOL_CALL_RESULT (messageId, toolCallId, content, role tool)
    agent_step human/resume  nothing: the client sent them
    interrupt                kept for the terminal event (it is not terminal)
    agent_end completed      RUN_FINISHED outcome success; result the output; usage [TokenUsage] from the metrics
                             (none without a model call: not a measured zero); rawEvent our data (every metric)
    agent_end interrupted    RUN_FINISHED outcome interrupt: per pending approval Interrupt(id our interrupt_id,
                             reason "tool_call", toolCallId, message, responseSchema {approved, editedArgs},
                             metadata {toolName, args})
    error, code cancelled    RUN_FINISHED outcome cancelled: stopped on request, not failed; the turn was rolled back,
                             so the next run is an ordinary new one (what RunFinishedCancelledOutcome says)
    error                    RUN_ERROR (message, code; rawEvent our data, with `retryable`)

Lifecycle: exactly one `RUN_STARTED` first (also before an `error` that came without `agent_start`, e.g. a
refused owner check), a text message still open is ended before the terminal event, and exactly one terminal
event (`RUN_FINISHED` or `RUN_ERROR`) last; nothing after it. Message ids are `{our run_id}-msg-{step}`:
unique in the thread (our run ids are server-made; the client's runId may be reused) and the same on a replay.
Timestamps are our ISO ones as epoch milliseconds (the model takes an int), on the run-scoped events only.

AG-UI input → our payload (`payload_from_agui`): `session_id` ← threadId (one outside our id alphabet or over
100 characters maps to a stable `agui-<sha256>`); `prompt` ← the text parts of the last user message (our server
keeps each session's history itself, so earlier messages are ignored); or, when the input has `resume`, our
`resume` ← its one entry, and no prompt (`status` resolved with `payload.approved` true approves,
`payload.editedArgs` replaces the args; cancelled declines); `stream` and `stream_tokens` true. From
`forwardedProps` only our own per-turn fields are taken (`FORWARDED`); `tools`, `context`, `state` and every
other key are ignored. The payload must then go through `parse_request` like any other (limits, ids, surrogates).

`encode` writes what ag_ui's EventEncoder writes: `data: <one-line JSON, camelCase>\\n\\n` — no `event:` and no
`id:` line, so an AG-UI stream cannot be re-attached with Last-Event-ID (our `resume` action can, by our run id).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ag_ui.core import (
    PROTOCOL_VERSION,
    BaseEvent,
    Interrupt,
    ResumeEntry,
    RunAgentInput,
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunFinishedSuccessOutcome,
    RunStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TextPart,
    TokenUsage,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
    UserMessage,
)
from ag_ui.encoder import EventEncoder
from pydantic import ValidationError

from bedrock.errors import PayloadError
from bedrock.wire.ids import ID_PATTERN, MAX_SESSION_ID
from bedrock.wire.request import CancelRequest, HistoryRequest, ResumeRequest, RunRequest, StatusRequest
from bedrock.wire.events import AGENT_END, AGENT_START, AGENT_STEP, ERROR, INTERRUPT, LLM_TOKEN, SSEEvent

# Our payload's fields (bedrock/wire/request.py): a body with any of them is ours, not AG-UI's.
OUR_PAYLOAD_KEYS = frozenset().union(*(model.model_fields for model in (
    RunRequest, ResumeRequest, CancelRequest, StatusRequest, HistoryRequest)))
# What `forwardedProps` may set: a turn's own options. Never what the AG-UI input itself decides (session,
# prompt, resume, streaming) nor an action on runs.
FORWARDED = ("actor_id", "preferences", "custom_data", "on_disconnect", "multitask_strategy")
# The node whose ai steps re-write the model's message after an approval with edited args (core/graph.py).
REWRITE_NODE = "tools"
CANCELLED = "cancelled"
# The answer an approval takes (AG-UI's recommended schema for tool-call interrupts that allow edits); our
# graph replaces the call's args with editedArgs, as AG-UI says (a full replacement, not a merge).
APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean"},
        "editedArgs": {"type": "object", "description": "Full replacement of the tool call's args (not merged)."},
    },
    "required": ["approved"],
}

_encoder = EventEncoder()


def looks_like_run_agent_input(payload: Any) -> bool:
    """Whether a decoded body is meant as AG-UI's RunAgentInput: its threadId and runId, and none of our keys.

    `messages` is not required here (AG-UI's own resume examples leave it out): such an input is AG-UI's, and
    `payload_from_agui` then says what is missing. `resume` is a key of both.
    """
    return (isinstance(payload, dict) and "threadId" in payload and "runId" in payload
            and not (OUR_PAYLOAD_KEYS - {"resume"}).intersection(payload))


def payload_from_agui(payload: dict[str, Any]) -> tuple[dict[str, Any], RunAgentInput]:
    """Validate an AG-UI RunAgentInput and map it to our payload (see the module's docstring); PayloadError if
    it is invalid or asks for nothing (no user message and no resume)."""
    try:
        run_input = RunAgentInput.model_validate(payload)
    except ValidationError as exc:
        details = [{"field": _field(error["loc"]), "message": error["msg"]} for error in exc.errors()]
        raise PayloadError("invalid AG-UI input: " + "; ".join(f"{d['field']}: {d['message']}" for d in details),
                           details) from None
    for field, value in (("threadId", run_input.thread_id), ("runId", run_input.run_id)):
        # Echoed in every stream's RUN_STARTED: a lone surrogate (JSON's \ud800) could not be written there.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _refuse(field, "not valid Unicode (a lone surrogate)") from None
    ours: dict[str, Any] = {}
    if isinstance(run_input.forwarded_props, dict):
        ours.update({k: v for k, v in run_input.forwarded_props.items() if k in FORWARDED})
    ours.update(session_id=session_id_for(run_input.thread_id), stream=True, stream_tokens=True)
    # AG-UI has no cancel of its own: its clients stop a run by aborting the request (`abortRun`), so a run started
    # over AG-UI is cancelled when its client leaves, unless `forwardedProps.on_disconnect` says otherwise.
    ours.setdefault("on_disconnect", "cancel")
    if run_input.resume:
        ours["resume"] = _decision(run_input.resume)
    else:
        ours["prompt"] = _last_user_text(run_input)
    return ours, run_input


def session_id_for(thread_id: str) -> str:
    """Our session id for an AG-UI thread: the thread id itself when it is a valid one, else a stable digest."""
    if len(thread_id) <= MAX_SESSION_ID and re.fullmatch(ID_PATTERN, thread_id):
        return thread_id
    return "agui-" + hashlib.sha256(thread_id.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _refuse(field: str, message: str) -> PayloadError:
    return PayloadError(f"invalid AG-UI input: {field}: {message}", [{"field": field, "message": message}])


def _field(loc: tuple[Any, ...]) -> str:
    # As request.py does: a key may be a lone surrogate, escaped so the error body can be written as UTF-8.
    return ".".join(str(part) for part in loc).encode("utf-8", "backslashreplace").decode() or "input"


def _last_user_text(run_input: RunAgentInput) -> str:
    # The newest message that is not an instruction (system, developer) must be the user's: anything after it
    # (an assistant's answer, a tool result) means there is no new prompt, and answering the old one again would
    # store it twice in the session's history, which the server keeps itself.
    said = [(i, m) for i, m in enumerate(run_input.messages) if m.role not in ("system", "developer")]
    if not said:
        raise _refuse("messages", "no user message to answer and no resume")
    index, last = said[-1]
    if not isinstance(last, UserMessage):
        raise _refuse(f"messages.{index}", "the newest message must be the user's (this agent keeps each thread's "
                      "history itself: send the new user message last)")
    content = last.content
    if isinstance(content, str):
        text = content
    else:
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, TextPart):  # the agent reads text only: an image left out silently would mislead
                raise _refuse(f"messages.{index}.content.{j}", f"only text parts are supported, not {part.type}")
            texts.append(part.text)
        text = "\n".join(texts)
    if not text.strip():
        raise _refuse(f"messages.{index}.content", "the last user message has no text")
    return text


def _decision(entries: list[ResumeEntry]) -> dict[str, Any]:
    # Our graph asks one approval at a time (LangGraph's interrupt() stops at the first), so an interrupted
    # run always ends with exactly one interrupt, and its answer is exactly one entry.
    if len(entries) != 1:
        raise _refuse("resume", "answer the one pending interrupt with one entry")
    entry = entries[0]
    if entry.status == CANCELLED:  # abandoned: the call is declined, as a new prompt would decline it
        return {"interrupt_id": entry.interrupt_id, "approved": False}
    answer = entry.payload
    if not isinstance(answer, dict) or not isinstance(answer.get("approved"), bool):
        raise _refuse("resume.0.payload.approved", "required, true or false (the interrupt's responseSchema)")
    decision: dict[str, Any] = {"interrupt_id": entry.interrupt_id, "approved": answer["approved"]}
    edited = answer.get("editedArgs")
    if answer["approved"] and edited is not None:
        if not isinstance(edited, dict):
            raise _refuse("resume.0.payload.editedArgs", "must be an object (the tool call's new args)")
        decision["args"] = edited
    return decision


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


def _interrupt(pending: dict[str, Any]) -> Interrupt:
    args = pending.get("args") or {}
    return Interrupt(
        id=pending["interrupt_id"],
        reason="tool_call",
        tool_call_id=pending.get("tool_call_id"),
        message=f"Run {pending.get('tool_name')}({json.dumps(args, ensure_ascii=False)})?",  # read by a person
        response_schema=APPROVAL_SCHEMA,
        metadata={"toolName": pending.get("tool_name"), "args": args},
    )


class AGUIStream:
    """Translates one run's events, in order, into AG-UI events, keeping AG-UI's lifecycle (see the module)."""

    def __init__(self, run_input: RunAgentInput) -> None:
        self.run_input = run_input
        self.started = False
        self.finished = False
        self._run_id = run_input.run_id  # ours from agent_start on: the message ids' prefix
        self._open: str | None = None  # the text message being streamed
        self._streamed: set[str] = set()  # messages whose text came as tokens
        self._interrupts: dict[str, dict[str, Any]] = {}
        self._handlers: dict[str, Callable[[Any, list[BaseEvent]], None]] = {
            LLM_TOKEN: self._token, AGENT_STEP: self._step, INTERRUPT: self._pending,
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
        if handler is not None:
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
        if data.get("type") == "tool":
            out.append(ToolCallResultEvent(message_id=message_id, tool_call_id=data["tool_call_id"],
                                           content=data.get("content") or "", role="tool"))
            return
        if data.get("type") != "ai" or data.get("node") == REWRITE_NODE:
            return
        self._close_text(out)
        text = data.get("content") or ""
        if text and message_id not in self._streamed:
            out += [TextMessageStartEvent(message_id=message_id, role="assistant"),
                    TextMessageContentEvent(message_id=message_id, delta=text),
                    TextMessageEndEvent(message_id=message_id)]
        for call in data.get("tool_calls") or ():
            out += [ToolCallStartEvent(tool_call_id=call["id"], tool_call_name=call["name"],
                                       parent_message_id=message_id),
                    ToolCallArgsEvent(tool_call_id=call["id"], delta=json.dumps(call.get("args") or {})),
                    ToolCallEndEvent(tool_call_id=call["id"])]

    def _pending(self, data: dict[str, Any], out: list[BaseEvent]) -> None:
        self._interrupts[data["interrupt_id"]] = data

    def _finish(self, out: list[BaseEvent], event: BaseEvent) -> None:
        self._close_text(out)
        out.append(event)
        self.finished = True

    def _end(self, data: dict[str, Any], out: list[BaseEvent]) -> None:
        # agent_end's own list is the run's pending approvals; the interrupt events said the same as they came.
        pending = data.get("interrupts") or list(self._interrupts.values())
        outcome = (RunFinishedInterruptOutcome(interrupts=[_interrupt(p) for p in pending])
                   if data.get("status") == "interrupted" and pending else RunFinishedSuccessOutcome())
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



