"""The same runs as AG-UI events (the `ag-ui-protocol` package's models and encoder), and AG-UI input as our payload.

Our events → AG-UI events (`AGUIStream`):

    agent_start              RUN_STARTED: threadId and runId the input's; rawEvent our agent_start data (our own
                             run_id, which `cancel` and `resume` name; session_id, actor_id)
    llm_token                TEXT_MESSAGE_START (role assistant) on a step's first token; TEXT_MESSAGE_CONTENT each
    agent_step ai            TEXT_MESSAGE_END if its tokens came, else START / CONTENT (its whole text) / END when it
                             has text; then per tool call not yet started in this run TOOL_CALL_START (parentMessageId:
                             this message) / TOOL_CALL_ARGS (the args as one JSON text) / TOOL_CALL_END
    agent_step ai, node      nothing: the built-in agent's tools node re-writes the model's message with the approved,
      `tools`                edited args, and AG-UI does not re-emit a call in the run that resumes it (the edit is in
                             the resume)
    agent_step tool          TOOL_CALL_RESULT (messageId, toolCallId, content, role tool)
    agent_step update        CUSTOM name "update", value {node, namespace, values}: what a node wrote besides messages.
                             Not STATE_DELTA: an update is one node's write, not the agent's state (a reducer's channel
                             gets it appended, a subgraph has a state of its own), so as a patch of the client's state
                             it would be wrong; the state itself is STATE_SNAPSHOT, below
    custom                   CUSTOM name "custom", value {node, namespace, value}: what a node wrote with
                             `get_stream_writer()` (progress and the like)
    agent_step human/input/  nothing: the client sent them
      resume
    interrupt                kept for the terminal event (it is not terminal)
    agent_end completed      STATE_SNAPSHOT of the final state when the run asked for it (`include_state`); then
                             RUN_FINISHED outcome success; result the output; usage [TokenUsage] from the metrics
                             (none without a model call: not a measured zero); rawEvent our data (every metric)
    agent_end interrupted    (STATE_SNAPSHOT likewise, then) RUN_FINISHED outcome interrupt, one Interrupt per pending
                             interrupt, its id ours (what `resume` names):
                               a tool approval of the built-in agent (APPROVAL_REQUIRED_TOOLS): reason "tool_call",
                                 toolCallId, message, responseSchema {approved, editedArgs}, metadata {toolName, args}
                               LangChain's HumanInTheLoopMiddleware, one call (`interrupt_mode="per_call"`): reason
                                 "tool_call", toolCallId, message its description, responseSchema one decision
                               the same middleware, batched (one interrupt for a model turn's calls): reason
                                 "langchain:human_in_the_loop", toolCallId when it reviews one call seen in this run,
                                 message the descriptions, responseSchema {decisions: one per call, in order}
                               any other `interrupt(value)`: reason "input_required", message the value when it is a
                                 string (else its JSON), responseSchema the interrupt's own if it has one
                             and each with metadata {node, namespace, value} (the approval: as above)
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
`resume` ← its entries, and no prompt. An entry answers one interrupt by its id:
    a tool approval (`approval-…`)   `status` resolved with `payload.approved` true approves, `payload.editedArgs`
                                     replaces the args; cancelled declines
    any other interrupt              resolved: `payload` is its answer, whole (what its `interrupt()` returns; for
                                     the HITL middleware {"decisions": [...]}); cancelled is refused: such an
                                     interrupt has no answer that means "abandoned" (AG-UI's rule: a thread's pending
                                     interrupts block new input until answered)
One entry is our `{"interrupt_id", "value"}` (or the approval's `{"interrupt_id", "approved", "args"}`); several
are `{"values": {id: answer, …}}`. `stream` and `stream_tokens` true. From `forwardedProps` only our own per-turn
fields are taken (`FORWARDED`); AG-UI's own `tools`, `context`, `state` and every other key are ignored. The
payload must then go through `parse_request` like any other (limits, ids, surrogates).

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
    CustomEvent,
    Interrupt,
    ResumeEntry,
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
from bedrock.wire.events import AGENT_END, AGENT_START, AGENT_STEP, CUSTOM, ERROR, INTERRUPT, LLM_TOKEN, SSEEvent
from bedrock.wire.ids import ID_PATTERN, MAX_SESSION_ID
from bedrock.wire.request import CancelRequest, HistoryRequest, ResumeRequest, RunRequest, StatusRequest

# Our payload's fields (bedrock/wire/request.py), less those RunAgentInput has too (`resume`, `context`): a body with
# any of these is ours, not AG-UI's.
OUR_PAYLOAD_KEYS = frozenset().union(*(model.model_fields for model in (
    RunRequest, ResumeRequest, CancelRequest, StatusRequest, HistoryRequest)))
AGUI_INPUT_KEYS = frozenset(field.alias or name for name, field in RunAgentInput.model_fields.items())
OURS_ONLY = OUR_PAYLOAD_KEYS - AGUI_INPUT_KEYS
# What `forwardedProps` may set: a turn's own options. Never what the AG-UI input itself decides (session,
# prompt, resume, streaming) nor an action on runs. `context` is LangGraph's runtime context (the graph's
# context_schema), not AG-UI's own `context` list, which is ignored.
FORWARDED = ("actor_id", "preferences", "custom_data", "on_disconnect", "multitask_strategy", "context",
             "include_state")
CANCELLED = "cancelled"
# The built-in agent's tool approvals' ids (core/graph.py `interrupt_id`, core/session_state.py APPROVAL_PREFIX):
# the one kind of interrupt answered by {approved, editedArgs} and declined by a cancelled entry.
APPROVAL_PREFIX = "approval-"
# Our CUSTOM events' names.
CUSTOM_NAME = "custom"  # a node's `get_stream_writer()` value
UPDATE_NAME = "update"  # a node's update besides messages
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
HITL_REASON = "langchain:human_in_the_loop"  # AG-UI: a custom reason is namespaced `<framework>:<name>`
HITL_DECISIONS = ("approve", "edit", "reject", "respond")  # the middleware's decision types (all: `True`)

_encoder = EventEncoder()


def looks_like_run_agent_input(payload: Any) -> bool:
    """Whether a decoded body is meant as AG-UI's RunAgentInput: its threadId and runId, and none of our own keys.

    `messages` is not required here (AG-UI's own resume examples leave it out): such an input is AG-UI's, and
    `payload_from_agui` then says what is missing. `resume` and `context` are keys of both (AG-UI's clients send
    `context: []` with every run).
    """
    return (isinstance(payload, dict) and "threadId" in payload and "runId" in payload
            and not OURS_ONLY.intersection(payload))


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
    """Our `resume` for AG-UI's entries: one entry → `{"interrupt_id", "value"}` (an approval: `approved`, `args`);
    several → `{"values": {id: answer}}`. AG-UI's rule is that one resume answers every pending interrupt; the
    session's graph says whether these are they (`interrupt_mismatch`, `nothing_to_resume`)."""
    answers: dict[str, Any] = {}
    for index, entry in enumerate(entries):
        if entry.interrupt_id in answers:
            raise _refuse(f"resume.{index}.interruptId", "answers an interrupt another entry answers already")
        answers[entry.interrupt_id] = _answer(index, entry)
    if len(entries) > 1:  # as `interrupt()` returns each (an approval's: what `{approved, args}` stands for)
        return {"values": {key: answer["value"] if "value" in answer else
                           {"approved": answer["approved"], "args": answer.get("args")}
                           for key, answer in answers.items()}}
    ((interrupt_id, answer),) = answers.items()
    return {"interrupt_id": interrupt_id, **answer}


def _answer(index: int, entry: ResumeEntry) -> dict[str, Any]:
    """One entry's answer: `{"approved", "args"?}` for a tool approval, else `{"value"}`."""
    where = f"resume.{index}"
    if not entry.interrupt_id.startswith(APPROVAL_PREFIX):
        if entry.status == CANCELLED:
            raise _refuse(f"{where}.status", "only a tool approval can be cancelled (it is declined); this "
                          "interrupt waits for an answer: status resolved, with a payload")
        if entry.payload is None:
            raise _refuse(f"{where}.payload", "required: the interrupt's answer (what its interrupt() returns)")
        return {"value": entry.payload}
    if entry.status == CANCELLED:  # abandoned: the call is declined, as a new prompt would decline it
        return {"approved": False}
    answer = entry.payload
    if not isinstance(answer, dict) or not isinstance(answer.get("approved"), bool):
        raise _refuse(f"{where}.payload.approved", "required, true or false (the interrupt's responseSchema)")
    decision: dict[str, Any] = {"approved": answer["approved"]}
    edited = answer.get("editedArgs")
    if answer["approved"] and edited is not None:
        if not isinstance(edited, dict):
            raise _refuse(f"{where}.payload.editedArgs", "must be an object (the tool call's new args)")
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


def readable(value: Any) -> str:
    """An interrupt's value as a person reads it: a string as it is, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def call_key(name: Any, args: Any) -> str:
    """What ties a reviewed action (name, args) to the tool call it reviews."""
    return json.dumps([name, args], sort_keys=True, default=str)


def hitl_requests(value: Any) -> list[dict[str, Any]] | None:
    """The action requests of a HumanInTheLoopMiddleware interrupt (batched), else None."""
    if isinstance(value, dict) and isinstance(value.get("action_requests"), list) \
            and all(isinstance(request, dict) for request in value["action_requests"]):
        return value["action_requests"]
    return None


def is_hitl_call(value: Any) -> bool:
    """Whether a value is the middleware's per-call review (`interrupt_mode="per_call"`): a ToolApprovalRequest."""
    return isinstance(value, dict) and value.get("type") == "tool_approval" and isinstance(value.get("name"), str)


def _allowed(value: dict[str, Any], name: Any) -> list[str]:
    for config in value.get("review_configs") or ():
        if isinstance(config, dict) and config.get("action_name") == name:
            allowed = config.get("allowed_decisions")
            if isinstance(allowed, list) and allowed:
                return [d for d in HITL_DECISIONS if d in allowed]
    return list(HITL_DECISIONS)


def decision_schema(name: Any, allowed: list[str]) -> dict[str, Any]:
    """The JSON Schema of one HumanInTheLoopMiddleware decision about tool `name` (its allowed types only)."""
    def of(kind: str, **properties: Any) -> dict[str, Any]:
        required = ["type", *(key for key in properties if key != "message" or kind == "respond")]
        return {"type": "object", "properties": {"type": {"const": kind}, **properties}, "required": required}

    variants = {
        "approve": of("approve"),
        "edit": of("edit", edited_action={
            "type": "object", "properties": {"name": {"const": name}, "args": {"type": "object"}},
            "required": ["name", "args"], "description": "The call to run instead (its args replace the model's)."}),
        "reject": of("reject", message={"type": "string", "description": "Why (optional), for the model."}),
        "respond": of("respond", message={"type": "string", "description": "The tool's result, from a person."}),
    }
    chosen = [variants[kind] for kind in allowed]
    return chosen[0] if len(chosen) == 1 else {"oneOf": chosen}


def _where(pending: dict[str, Any]) -> dict[str, Any]:
    return {"node": pending.get("node") or "", "namespace": pending.get("namespace") or [],
            "value": pending.get("value")}


def _interrupt(pending: dict[str, Any], calls: dict[str, str]) -> Interrupt:
    """One of our pending interrupts as AG-UI's (see the module's table); `calls`: the tool calls seen in this run,
    call_key → id."""
    value: Any = pending.get("value")
    if "tool_name" in pending:  # the built-in agent's approval
        args = pending.get("args") or {}
        return Interrupt(
            id=pending["interrupt_id"],
            reason="tool_call",
            tool_call_id=pending.get("tool_call_id"),
            message=f"Run {pending.get('tool_name')}({json.dumps(args, ensure_ascii=False)})?",  # read by a person
            response_schema=APPROVAL_SCHEMA,
            metadata={"toolName": pending.get("tool_name"), "args": args},
        )
    own_schema = pending.get("response_schema")
    if is_hitl_call(value):
        name = value["name"]
        return Interrupt(id=pending["interrupt_id"], reason="tool_call", tool_call_id=value.get("tool_call_id"),
                         message=value.get("description") or f"Run {name}?",
                         response_schema=own_schema if isinstance(own_schema, dict) else decision_schema(
                             name, list(HITL_DECISIONS)),
                         metadata=_where(pending))
    requests = hitl_requests(value)
    if requests is not None:
        items = [decision_schema(r.get("name"), _allowed(value, r.get("name"))) for r in requests]
        schema = {"type": "object", "required": ["decisions"], "properties": {"decisions": {
            "type": "array", "prefixItems": items, "items": False, "minItems": len(items),
            "description": "One decision per action request, in their order."}}}
        call_id = calls.get(call_key(requests[0].get("name"), requests[0].get("args"))) if len(requests) == 1 else None
        message = "\n\n".join(str(r.get("description") or f"Run {r.get('name')}?") for r in requests)
        return Interrupt(id=pending["interrupt_id"], reason=HITL_REASON, tool_call_id=call_id, message=message,
                         response_schema=schema, metadata=_where(pending))
    return Interrupt(id=pending["interrupt_id"], reason="input_required", message=readable(value),
                     response_schema=own_schema if isinstance(own_schema, dict) else None, metadata=_where(pending))


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
        outcome = (RunFinishedInterruptOutcome(interrupts=[_interrupt(p, self._calls) for p in pending])
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
