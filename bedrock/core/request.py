"""A turn's request: the payload validated with pydantic; every failure becomes one clear PayloadError."""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bedrock.errors import PayloadError

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
MAX_SESSION_ID = 100  # AgentCore Memory's limit for a session id
MAX_ACTOR_ID = 255
MAX_RUN_ID = 64
MAX_OBJECT_BYTES = 16_384
MAX_OBJECT_DEPTH = 8
DEFAULT_MAX_PROMPT_CHARS = 32_000


def _depth(value: Any, level: int = 1) -> int:
    if level > MAX_OBJECT_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def _bounded_object(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return value
    if _depth(value) > MAX_OBJECT_DEPTH:
        raise ValueError(f"nested deeper than {MAX_OBJECT_DEPTH} levels")
    if len(json.dumps(value, default=str)) > MAX_OBJECT_BYTES:
        raise ValueError(f"larger than {MAX_OBJECT_BYTES} bytes as JSON")
    return value


Action = Literal["run", "cancel", "resume", "status", "history"]
# Fields the AgentCore CLI's chat (`agentcore dev`) sends beside the prompt, by name: those that mean something
# here are taken as ours, the others ignored — unknown fields stay refused, so a typo is still an error.
CLIENT_ALIASES = {"sessionId": "session_id", "userId": "actor_id"}
CLIENT_IGNORED = frozenset({"agentName"})  # the agent the chat targets: this server is that one agent
RUN_ONLY = ("prompt", "stream_tokens", "preferences", "on_disconnect", "multitask_strategy", "resume")


class Decision(BaseModel):
    """The user's answer to a pending approval: which one, yes or no, and possibly edited arguments."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    interrupt_id: str = Field(max_length=MAX_RUN_ID, pattern=ID_PATTERN)
    approved: bool
    args: dict[str, Any] | None = None

    _bounded = field_validator("args")(_bounded_object)


class AgentRequest(BaseModel):
    """One request: a run (a turn: the prompt, whose session it belongs to, how to answer), an action on
    the session's runs (`cancel`, `resume`, `status`), or a read of its conversation (`history`)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    action: Action = "run"
    prompt: str | None = Field(default=None, min_length=1)
    session_id: str | None = Field(default=None, max_length=MAX_SESSION_ID, pattern=ID_PATTERN)
    actor_id: str | None = Field(default=None, max_length=MAX_ACTOR_ID, pattern=ID_PATTERN)
    stream: bool = False
    stream_tokens: bool = False
    # How a stream is written: our events (objects), or their text (JSON strings; see bedrock/wire/text.py).
    stream_format: Literal["events", "text"] = "events"
    preferences: dict[str, Any] | None = None
    custom_data: dict[str, Any] | None = None
    # A run's id (cancel, resume, status), and where a resume picks up (the last event id the client has).
    run_id: str | None = Field(default=None, max_length=MAX_RUN_ID, pattern=ID_PATTERN)
    last_event_id: int | None = Field(default=None, ge=0)
    # What a new run does when its client goes away, and when the session already has a run in progress.
    on_disconnect: Literal["continue", "cancel"] | None = None
    multitask_strategy: Literal["enqueue", "reject", "rollback"] = "enqueue"
    # A run that answers the session's pending approval instead of sending a prompt.
    resume: Decision | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    _bounded = field_validator("preferences", "custom_data")(_bounded_object)


def _field_name(loc: tuple[Any, ...]) -> str:
    # A key may itself be a lone surrogate: escaped, so the error body can still be written as UTF-8.
    return ".".join(str(part) for part in loc).encode("utf-8", "backslashreplace").decode() or "payload"


def _describe(errors: list[Any]) -> list[dict[str, str]]:
    details = []
    for error in errors:
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "string_pattern_mismatch":
            message = "must start with a letter or digit and hold only letters, digits, '_' and '-'"
        details.append({"field": _field_name(error["loc"]), "message": message})
    return details


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
            raise _refuse(alias, f"names another {name} than the payload's {name!r}")
        ours[name] = value
    return ours


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

    session_id: the payload's, else the AgentCore session header's, else a new one (a run only: an action
    on runs must name its session).
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
    try:
        request = AgentRequest.model_validate(payload)
    except ValidationError as exc:
        details = _describe(exc.errors())
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        raise PayloadError(f"invalid payload: {summary}", details) from None
    # JSON's \ud800 escapes decode to lone surrogates, which no UTF-8 writer (memory, the model's request,
    # the SSE stream) can encode: refused here, before anything is stored. pydantic already refuses them in
    # the string fields; the free-form objects are walked.
    unencodable = (_unencodable_field(request.preferences, "preferences")
                   or _unencodable_field(request.custom_data, "custom_data")
                   or _unencodable_field(request.resume.args if request.resume else None, "resume.args"))
    if unencodable is not None:
        raise PayloadError(
            f"invalid payload: {unencodable}: text is not valid Unicode (a lone surrogate)",
            [{"field": unencodable, "message": "not valid Unicode (a lone surrogate)"}],
        )
    _check_action(request, payload, header_session_id)
    if request.prompt is not None and len(request.prompt) > max_prompt_chars:
        raise PayloadError(
            f"invalid payload: prompt: longer than {max_prompt_chars} characters",
            [{"field": "prompt", "message": f"longer than {max_prompt_chars} characters"}],
        )
    updates: dict[str, Any] = {}
    if request.session_id is None:
        updates["session_id"] = _session_from_header(header_session_id)
    if request.action == "resume" and request.last_event_id is None and header_last_event_id:
        updates["last_event_id"] = _last_event_id_from_header(header_last_event_id)
    if request.actor_id is None:
        updates["actor_id"] = _actor_from_custom_data(request.custom_data) or default_actor_id
    if "stream" not in payload and request.action in ("run", "resume") and (
            prefers_events or request.stream_format == "text"):
        updates["stream"] = True
        if request.action == "run" and "stream_tokens" not in payload:
            updates["stream_tokens"] = True
    return request.model_copy(update=updates) if updates else request


def _refuse(field: str, message: str) -> PayloadError:
    return PayloadError(f"invalid payload: {field}: {message}", [{"field": field, "message": message}])


def _check_action(request: AgentRequest, payload: dict[str, Any], header_session_id: str | None) -> None:
    """A run needs a prompt; an action on runs needs a session and takes none of a run's fields."""
    if request.action == "run":
        if request.prompt is None and request.resume is None:
            raise _refuse("prompt", "Field required")
        if request.prompt is not None and request.resume is not None:
            raise _refuse("resume", "a run answers an approval or sends a prompt, not both")
        if request.resume is not None and request.session_id is None and not header_session_id:
            raise _refuse("session_id", "required with resume (the session whose approval is pending)")
        for field in ("run_id", "last_event_id"):
            if field in payload:
                raise _refuse(field, "only with action 'resume', 'cancel' or 'status'")
        return
    for field in RUN_ONLY:
        if field in payload:
            raise _refuse(field, f"not with action {request.action!r}")
    if request.action != "resume" and "last_event_id" in payload:
        raise _refuse("last_event_id", "only with action 'resume'")
    if request.action == "history" and "run_id" in payload:
        raise _refuse("run_id", "not with action 'history' (it reads the session's whole conversation)")
    if request.session_id is None and not header_session_id:
        raise _refuse("session_id", f"required with action {request.action!r}")


def _last_event_id_from_header(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise _refuse("last_event_id", "the Last-Event-ID header must be a non-negative integer")
    return int(value)


def _unencodable_field(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (or key) in `value` that UTF-8 cannot encode, else None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "payload"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _unencodable_field(key) is not None:
                return where.encode("utf-8", "backslashreplace").decode()
            found = _unencodable_field(item, where)
            if found is not None:
                return found.encode("utf-8", "backslashreplace").decode()
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _unencodable_field(item, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None


def non_finite_field(value: Any, path: str = "") -> str | None:
    """The dotted path of the first NaN or ±Infinity in `value`, else None.

    Python's JSON parser takes `NaN`, `Infinity` and `1e400` (→ inf), which JSON has no way to write: stored, they
    would come back out as `NaN` in a frame no strict parser reads (a browser's JSON.parse), in every later model
    request of the session, and as a 500 from every read of it."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "payload")
    if isinstance(value, dict):
        for key, item in value.items():
            found = non_finite_field(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = non_finite_field(item, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None


def refuse_non_finite(payload: Any) -> None:
    """PayloadError naming the field that holds a number JSON cannot write (NaN, ±Infinity, or one past a double)."""
    field = non_finite_field(payload)
    if field is not None:
        field = field.encode("utf-8", "backslashreplace").decode()
        raise _refuse(field, "not a finite number (JSON has no NaN or Infinity)")


def _session_from_header(header_session_id: str | None) -> str:
    if not header_session_id:
        return f"session-{uuid.uuid4().hex}"
    if re.fullmatch(ID_PATTERN, header_session_id) and len(header_session_id) > MAX_SESSION_ID:
        # AgentCore runtime session ids may be up to 256 characters, AgentCore Memory's only 100: a stable
        # digest keeps every turn of that runtime session in one memory session.
        return "rt-" + hashlib.sha256(header_session_id.encode()).hexdigest()
    try:
        return AgentRequest.model_validate({"prompt": "x", "session_id": header_session_id}).session_id or ""
    except ValidationError:
        raise PayloadError(
            "invalid session header: X-Amzn-Bedrock-AgentCore-Runtime-Session-Id must hold only letters, "
            "digits, '_' or '-'; send a valid session_id in the payload instead",
            [{"field": "session_id", "message": "invalid session header"}],
        ) from None


def _actor_from_custom_data(custom_data: dict[str, Any] | None) -> str | None:
    user_id = (custom_data or {}).get("user_id")
    if user_id is None:
        return None
    try:
        return AgentRequest.model_validate({"prompt": "x", "actor_id": str(user_id)}).actor_id
    except ValidationError:
        raise PayloadError(
            "invalid payload: custom_data.user_id is used as the actor id and must be at most "
            f"{MAX_ACTOR_ID} letters, digits, '_' or '-'",
            [{"field": "custom_data.user_id", "message": "not a valid actor id"}],
        ) from None
