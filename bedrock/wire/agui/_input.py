"""AG-UI input → our payload (`payload_from_agui`): RunAgentInput validated by ag-ui-protocol's model, then mapped.

`session_id` ← threadId (one outside our id alphabet or over 100 characters maps to a stable `agui-<sha256>`);
`prompt` ← the text parts of the last user message (our server keeps each session's history itself, so earlier
messages are ignored); or, when the input has `resume`, our `resume` ← its entries, and no prompt. An entry answers
one interrupt by its id:
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
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ag_ui.core import ResumeEntry, RunAgentInput, TextPart, UserMessage
from pydantic import ValidationError

from bedrock.errors import PayloadError
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
