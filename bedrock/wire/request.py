"""What a client sends: one payload, one of eight requests, told apart by its `action` — parsed once, here.

    RunRequest         action "run" (the default), a prompt: a turn
    ApprovalRequest    action "run" with `resume` instead of a prompt: the answer to the session's pending interrupt
    ResumeRequest      action "resume": follow a run from an event id (the stream, or its result)
    CancelRequest      action "cancel": stop the session's runs in progress
    StatusRequest      action "status": a run's state
    HistoryRequest     action "history": the session's kept conversation
    MemoriesRequest    action "memories": the actor's long-term memories, a page at a time (no session needed)
    ForgetRequest      action "forget": delete one of the actor's memories, or all of them (no session needed)

A pydantic union told apart by a callable discriminator (the action, and for a run whether it answers an approval),
so each request type holds only its own fields: a field of another action is refused by name. Every failure is
one PayloadError (400 `invalid_payload`) with field-by-field details. What the transport knows — the AgentCore
session header, `Last-Event-ID`, whether the client's `Accept` prefers an event stream — comes in as values
(`parse_request`'s keyword arguments); reading them off a request is the server's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError, field_validator,
                      model_validator)
from pydantic_core import InitErrorDetails

from bedrock.errors import PayloadError
from bedrock.wire.headers import last_event_id_from_header, session_from_header
from bedrock.wire.ids import ID_PATTERN, MAX_ACTOR_ID, MAX_RUN_ID, MAX_SESSION_ID, new_session_id, valid_id
from bedrock.wire.json_values import bounded_object, field_error, refuse_non_finite, unencodable_field

DEFAULT_MAX_PROMPT_CHARS = 32_000
ACTIONS = ("run", "cancel", "resume", "status", "history", "memories", "forget")
MAX_MEMORY_PAGE = 100  # memories listed per request
MAX_MEMORY_KEY = 256  # characters of a memory's key (LangGraph's stores take any string; ours are 22)
MAX_NAMESPACE_LABELS = 16
# Fields the AgentCore CLI's chat (`agentcore dev`) sends beside the prompt, by name: those that mean something
# here are taken as ours, the others ignored — unknown fields stay refused, so a typo is still an error.
CLIENT_ALIASES = {"sessionId": "session_id", "userId": "actor_id"}
CLIENT_IGNORED = frozenset({"agentName"})  # the agent the chat targets: this server is that one agent

SessionId = Annotated[str, Field(max_length=MAX_SESSION_ID, pattern=ID_PATTERN)]
ActorId = Annotated[str, Field(max_length=MAX_ACTOR_ID, pattern=ID_PATTERN)]
RunId = Annotated[str, Field(max_length=MAX_RUN_ID, pattern=ID_PATTERN)]


class _Request(BaseModel):
    """What every request names: its session and its actor (both settled by `parse_request` when absent), and how
    it wants its answer (only runs and resumes stream one; an action's dict is JSON whatever it asks)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    session_id: SessionId | None = None
    actor_id: ActorId | None = None
    stream: bool = False
    # How a stream is written: our events (objects), or their text (JSON strings; see bedrock/wire/text.py).
    stream_format: Literal["events", "text"] = "events"

    @property
    def session(self) -> str:
        """`session_id`, which every request `parse_request` returns has (None only before it is settled)."""
        assert self.session_id is not None, "a request from parse_request names its session"
        return self.session_id

    @property
    def actor(self) -> str:
        """`actor_id`, which every request `parse_request` returns has (None only before it is settled)."""
        assert self.actor_id is not None, "a request from parse_request names its actor"
        return self.actor_id


class Decision(BaseModel):
    """The answer to what the session's graph waits on (an `interrupt()`), in one of three forms:

        {"interrupt_id": ID, "value": ANY}           any interrupt: `value` is what its `interrupt()` returns
        {"values": {ID: ANY, …}}                     several pending at once, each its answer
        {"interrupt_id": ID, "approved": B, "args"}  a tool approval (APPROVAL_REQUIRED_TOOLS): yes or no, and
                                                     possibly edited arguments
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    interrupt_id: RunId | None = None
    approved: bool | None = None
    args: dict[str, Any] | None = None
    value: Any = None
    values: dict[str, Any] | None = None

    _bounded = field_validator("args")(bounded_object)

    @field_validator("values")
    @classmethod
    def _ids(cls, values: dict[str, Any] | None) -> dict[str, Any] | None:
        if values is not None:
            if not values:
                raise ValueError("must answer at least one interrupt")
            bad = [key for key in values if not valid_id(key, MAX_RUN_ID)]
            if bad:
                raise ValueError("its keys must be interrupt ids")
        return values

    @model_validator(mode="wrap")
    @classmethod
    def _names_its_interrupt(cls, data: Any, handler: Any) -> Any:
        """A field's own error (`"approved": "yes"`) stops the check of the form: a missing id is still said."""
        try:
            return handler(data)
        except ValidationError as error:
            if not isinstance(data, dict) or "interrupt_id" in data or "values" in data:
                raise
            missing: InitErrorDetails = {"type": "missing", "loc": ("interrupt_id",), "input": data}
            lines = [InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"], ctx=e.get("ctx", {}))
                     for e in error.errors()]
            raise ValidationError.from_exception_data(cls.__name__, [missing, *lines]) from None

    @model_validator(mode="after")
    def _one_form(self) -> Decision:
        given = self.model_fields_set
        if "values" in given:
            if given - {"values"}:
                raise field_error("resume", "`values` answers every interrupt by id: no other field beside it")
        elif self.interrupt_id is None:
            raise field_error("resume.interrupt_id", "Field required")
        elif "value" in given:
            if given & {"approved", "args"}:
                raise field_error("resume", "a `value`, or `approved` (with `args`), not both")
        elif self.approved is None:
            raise field_error("resume", "needs a `value` (or, for a tool approval, `approved`)")
        return self

    def answers(self) -> dict[str, Any]:
        """Interrupt id → the answer its `interrupt()` returns."""
        if self.values is not None:
            return dict(self.values)
        assert self.interrupt_id is not None
        if "value" in self.model_fields_set:
            return {self.interrupt_id: self.value}
        return {self.interrupt_id: {"approved": self.approved, "args": self.args}}


class RunRequest(_Request):
    """A turn: the prompt (or the graph's own `input`), how to answer (stream, tokens, format), its options, and what
    the run does when its client leaves or when the session already has a run in progress."""

    action: Literal["run"] = "run"
    prompt: str | None = Field(default=None, min_length=1)
    input: dict[str, Any] | None = None  # the graph's input, whole, instead of a prompt
    context: dict[str, Any] | None = None  # LangGraph's runtime context (the graph's context_schema)
    include_state: bool = False  # agent_end carries the final state's values
    stream_tokens: bool = False
    preferences: dict[str, Any] | None = None
    custom_data: dict[str, Any] | None = None
    on_disconnect: Literal["continue", "cancel"] | None = None
    multitask_strategy: Literal["enqueue", "reject", "rollback"] = "enqueue"
    resume: Decision | None = None  # only an ApprovalRequest has one

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _has_a_prompt(self) -> RunRequest:
        if self.prompt is None and self.input is None and self.resume is None:
            raise field_error("prompt", "Field required (or `input`, the graph's whole input)")
        if self.prompt is not None and self.input is not None:
            raise field_error("input", "a `prompt` or an `input`, not both")
        return self

    _bounded = field_validator("preferences", "custom_data", "context")(bounded_object)


class ApprovalRequest(RunRequest):
    """A run that answers what the session's graph waits on (an interrupt) instead of sending a prompt."""

    resume: Decision

    @model_validator(mode="after")
    def _not_both(self) -> ApprovalRequest:
        if self.prompt is not None or self.input is not None:
            raise field_error("resume", "a run answers an interrupt or sends a prompt, not both")
        return self


class ResumeRequest(_Request):
    """Follow a run (`run_id`, else the session's newest) from the event after `last_event_id`."""

    action: Literal["resume"]
    run_id: RunId | None = None
    last_event_id: int | None = Field(default=None, ge=0)


class CancelRequest(_Request):
    """Stop the session's runs in progress (`run_id`: only that one)."""

    action: Literal["cancel"]
    run_id: RunId | None = None


class StatusRequest(_Request):
    """A run's state (`run_id`, else the session's newest run)."""

    action: Literal["status"]
    run_id: RunId | None = None


class HistoryRequest(_Request):
    """The session's kept conversation, its pending approvals and its run in progress."""

    action: Literal["history"]


class MemoriesRequest(_Request):
    """The actor's long-term memories, `limit` at a time from `offset`."""

    action: Literal["memories"]
    limit: int = Field(default=20, ge=1, le=MAX_MEMORY_PAGE)
    offset: int = Field(default=0, ge=0, le=1_000_000)


NamespaceLabel = Annotated[str, Field(min_length=1, max_length=MAX_MEMORY_KEY)]


class ForgetRequest(_Request):
    """Delete the actor's memory `key` (in `namespace`, else in whichever of its namespaces holds it), or with
    `"all": true` every memory of the actor."""

    action: Literal["forget"]
    key: Annotated[str, Field(min_length=1, max_length=MAX_MEMORY_KEY)] | None = None
    namespace: Annotated[list[NamespaceLabel], Field(min_length=1, max_length=MAX_NAMESPACE_LABELS)] | None = None
    all: bool = False

    @field_validator("namespace")
    @classmethod
    def _labels(cls, namespace: list[str] | None) -> list[str] | None:
        if namespace is not None and any("." in label for label in namespace):
            raise ValueError("a namespace's labels hold no '.' (LangGraph's stores refuse them)")
        return namespace

    @model_validator(mode="after")
    def _one_target(self) -> ForgetRequest:
        if self.all and (self.key is not None or self.namespace is not None):
            raise field_error("all", "`all` forgets every memory: no `key` or `namespace` beside it")
        if not self.all and self.key is None:
            raise field_error("key", "Field required (or `\"all\": true` to forget every memory)")
        return self


MemoryRequest = MemoriesRequest | ForgetRequest
AgentRequest = (RunRequest | ApprovalRequest | ResumeRequest | CancelRequest | StatusRequest | HistoryRequest
                | MemoriesRequest | ForgetRequest)
ControlRequest = CancelRequest | StatusRequest | HistoryRequest | MemoriesRequest | ForgetRequest
_TYPES: dict[str, type[BaseModel]] = {"run": RunRequest, "approval": ApprovalRequest, "resume": ResumeRequest,
                                      "cancel": CancelRequest, "status": StatusRequest, "history": HistoryRequest,
                                      "memories": MemoriesRequest, "forget": ForgetRequest}


def _kind(payload: Any) -> str:
    """The union's tag: the action, and for a run whether it answers an approval."""
    action = payload.get("action", "run") if isinstance(payload, dict) else "run"
    if action == "run" and isinstance(payload, dict) and payload.get("resume") is not None:
        return "approval"
    return action if isinstance(action, str) and action in ACTIONS else "run"


# The union of _TYPES, each tagged: made at run time, so spelt Union[...] (`X | Y` needs the members written out).
_TAGGED: Any = Union[tuple(Annotated[model, Tag(tag)] for tag, model in _TYPES.items())]  # noqa: UP007
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Annotated[_TAGGED, Discriminator(_kind)])
_FIELDS_OF = {tag: frozenset(model.model_fields) for tag, model in _TYPES.items()}


def parse_request(
    payload: Any,
    *,
    header_session_id: str | None = None,
    default_actor_id: str = "default-user",
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
    header_last_event_id: str | None = None,
    prefers_events: bool = False,
) -> AgentRequest:
    """Validate a decoded JSON payload and settle its session and actor ids.

    session_id: the payload's, else the AgentCore session header's, else a new one (a prompt run only: an
    approval or an action on runs must name its session).
    actor_id: the payload's, else `custom_data.user_id`, else `default_actor_id`.
    last_event_id (resume): the payload's, else the `Last-Event-ID` header's.
    stream: the payload's; else true when the client's Accept prefers `text/event-stream` (`prefers_events`:
    the AgentCore CLI's `agentcore dev` sends just `{"prompt"}` so) or asks for `"stream_format": "text"`.
    A stream the payload did not ask for by `stream` streams its tokens too, unless `stream_tokens` says not:
    a client that negotiated a stream reads it as text.
    """
    if not isinstance(payload, dict):
        raise PayloadError(f"the payload must be a JSON object, not {type(payload).__name__}")
    refuse_non_finite(payload)
    payload = client_fields(payload)
    kind = _kind(payload)
    try:
        request = _ADAPTER.validate_python(payload)
    except ValidationError as exc:
        raise _invalid(exc, kind) from None
    except PayloadError:
        raise
    _refuse_unencodable(request)
    if isinstance(request, RunRequest) and request.prompt is not None and len(request.prompt) > max_prompt_chars:
        raise field_error("prompt", f"longer than {max_prompt_chars} characters")
    return _settled(request, payload, header_session_id, default_actor_id, header_last_event_id, prefers_events)


def _settled(request: Any, payload: dict[str, Any], header_session_id: str | None, default_actor_id: str,
             header_last_event_id: str | None, prefers_events: bool) -> AgentRequest:
    """The request with what it left unsaid filled in: its session, its actor, where a resume picks up, and
    whether it streams."""
    updates: dict[str, Any] = {}
    if request.session_id is None and not isinstance(request, (MemoriesRequest, ForgetRequest)):
        if not header_session_id and type(request) is not RunRequest:
            what = "with resume (the session whose approval is pending)" if isinstance(request, ApprovalRequest) \
                else f"with action {request.action!r}"
            raise field_error("session_id", f"required {what}")
        updates["session_id"] = session_from_header(header_session_id) if header_session_id else new_session_id()
    if isinstance(request, ResumeRequest) and request.last_event_id is None and header_last_event_id:
        updates["last_event_id"] = last_event_id_from_header(header_last_event_id)
    if request.actor_id is None:
        custom = getattr(request, "custom_data", None)
        updates["actor_id"] = _actor_from_custom_data(custom) or default_actor_id
    if isinstance(request, (RunRequest, ResumeRequest)) and "stream" not in payload and (
            prefers_events or request.stream_format == "text"):
        updates["stream"] = True
        if isinstance(request, RunRequest) and "stream_tokens" not in payload:
            updates["stream_tokens"] = True
    return request.model_copy(update=updates) if updates else request


def _invalid(exc: ValidationError, kind: str) -> PayloadError:
    details = _describe(exc.errors(), kind)
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return PayloadError(f"invalid payload: {summary}", details)


def _describe(errors: list[Any], kind: str) -> list[dict[str, str]]:
    details: list[dict[str, str]] = []
    action = "run" if kind == "approval" else kind
    for error in errors:
        loc = tuple(error["loc"])[1:] if error["loc"] and error["loc"][0] == kind else tuple(error["loc"])
        ctx = error.get("ctx") or {}
        if isinstance(ctx.get("error"), PayloadError):  # refused by name in a model validator: its own details
            details.extend(ctx["error"].details or [])
            continue
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            known = any(loc and loc[0] in fields for fields in _FIELDS_OF.values())
            message = f"not with action {action!r}" if known else "unknown field"
        elif error["type"] == "string_pattern_mismatch":
            message = "must start with a letter or digit and hold only letters, digits, '_' and '-'"
        elif error["type"] == "union_tag_invalid":
            loc, message = ("action",), f"must be one of {', '.join(ACTIONS)}"
        details.append({"field": _field_name(loc), "message": message})
    return details


def _field_name(loc: tuple[Any, ...]) -> str:
    # A key may itself be a lone surrogate: escaped, so the error body can still be written as UTF-8.
    return ".".join(str(part) for part in loc).encode("utf-8", "backslashreplace").decode() or "payload"


def client_fields(payload: Any) -> Any:
    """The payload with the AgentCore CLI's own field names as ours (`sessionId`, `userId`) and the ones that
    mean nothing here dropped (`agentName`); PayloadError if a name and its alias disagree."""
    if not isinstance(payload, dict) or not (CLIENT_IGNORED.union(CLIENT_ALIASES).intersection(payload)):
        return payload
    ours = {key: value for key, value in payload.items() if key not in CLIENT_IGNORED}
    for alias, name in CLIENT_ALIASES.items():
        if alias not in ours:
            continue
        value = ours.pop(alias)
        if name in ours and ours[name] != value:
            raise field_error(alias, f"names another {name} than the payload's {name!r}")
        ours[name] = value
    return ours


def _refuse_unencodable(request: Any) -> None:
    """JSON's \\ud800 escapes decode to lone surrogates, which no UTF-8 writer (memory, the model's request, the SSE
    stream) can encode: refused here, before anything is stored. pydantic already refuses them in the string
    fields; the free-form objects are walked."""
    resume = getattr(request, "resume", None)
    unencodable = (unencodable_field(getattr(request, "preferences", None), "preferences")
                   or unencodable_field(getattr(request, "custom_data", None), "custom_data")
                   or unencodable_field(getattr(request, "input", None), "input")
                   or unencodable_field(getattr(request, "context", None), "context")
                   or unencodable_field(resume.args if resume else None, "resume.args")
                   or unencodable_field(resume.value if resume else None, "resume.value")
                   or unencodable_field(resume.values if resume else None, "resume.values"))
    if unencodable is not None:
        raise field_error(unencodable, "not valid Unicode (a lone surrogate)")


def _actor_from_custom_data(custom_data: dict[str, Any] | None) -> str | None:
    user_id = (custom_data or {}).get("user_id")
    if user_id is None:
        return None
    if not valid_id(str(user_id), MAX_ACTOR_ID):
        raise PayloadError(
            "invalid payload: custom_data.user_id is used as the actor id and must be at most "
            f"{MAX_ACTOR_ID} letters, digits, '_' or '-'",
            [{"field": "custom_data.user_id", "message": "not a valid actor id"}],
        )
    return str(user_id)
