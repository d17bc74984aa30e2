"""Every way a request or a turn can fail, in one catalog, and the one shape every failure is sent in.

Each code has one entry in `CATALOG`: its HTTP status, whether retrying can help, its `type` and a safe
default message. Nothing else in the package declares a status. The exceptions:

    AgentError                  a catalogued `code`; `message`, and `type` / `status` / `retryable` from the catalog
     ├── PayloadError           invalid_payload (400); field-by-field `details`; also a ValueError
     ├── Unauthorized           unauthorized (401): no usable bearer token
     ├── ActorForbidden         actor_forbidden (403): a verified caller named another actor
     ├── SessionForbidden       session_forbidden (403): the session belongs to another actor
     └── SessionBusy            session_busy (409): another turn held the session past SESSION_WAIT_S

Every other failure is an AgentError of its code, made where it happens (`AgentError("server_busy")`) or by
`classify` from whatever a turn raised (botocore, the checkpointer, a timeout).

On the wire, one shape each:
- an error reply (`AgentError.to_dict`): `{"error": {"code", "message", "type", "retryable"}}`, plus `details`
  (a list of `{"field", "message"}`) for a refused payload;
- a streamed turn's terminal `error` event (`AgentError.event_data`): `{"error": message, "type", "code",
  "retryable", "timestamp"}` (the guide's clients read `data["error"]`), plus `details` likewise.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorKind:
    """One catalogued failure."""

    code: str
    status: int
    retryable: bool
    type: str
    message: str


CATALOG: dict[str, ErrorKind] = {kind.code: kind for kind in (
    # The request
    ErrorKind("invalid_payload", 400, False, "PayloadError", "The request is not valid."),
    ErrorKind("unauthorized", 401, False, "Unauthorized", "A bearer token is required."),
    ErrorKind("actor_forbidden", 403, False, "ActorForbidden",
              "The payload's actor is not the authenticated one."),
    ErrorKind("session_forbidden", 403, False, "SessionForbidden", "This session belongs to another actor."),
    ErrorKind("request_timeout", 408, True, "RequestTimeout", "The request was not received in time."),
    ErrorKind("payload_too_large", 413, False, "PayloadTooLarge", "The request body is too large."),
    ErrorKind("unsupported_media_type", 415, False, "UnsupportedMediaType",
              "The request body must be JSON (Content-Type: application/json)."),
    ErrorKind("origin_forbidden", 403, False, "OriginForbidden",
              "This server does not take WebSocket connections from pages of that origin (WS_ALLOWED_ORIGINS)."),
    ErrorKind("host_not_allowed", 400, False, "HostNotAllowed",
              "This server does not answer requests for that Host (it listens on loopback; ALLOWED_HOSTS adds names)."),
    ErrorKind("rate_limited", 429, True, "RateLimited",
              "Too many messages on this connection (WS_MAX_MESSAGES_PER_S); slow down."),
    ErrorKind("bad_request", 400, False, "BadRequest", "The request is not valid HTTP."),
    ErrorKind("not_found", 404, False, "NotFound", "No such route."),
    ErrorKind("method_not_allowed", 405, False, "MethodNotAllowed", "This route does not take that method."),
    # The server
    ErrorKind("session_busy", 409, True, "SessionBusy", "Another turn of this session is still running."),
    ErrorKind("cancelled", 409, False, "Cancelled", "The run was cancelled."),
    ErrorKind("interrupt_mismatch", 409, False, "InterruptMismatch",
              "That interrupt is not the one pending for this session; ask for the session's status."),
    ErrorKind("nothing_to_resume", 409, False, "NothingToResume", "The session has no interrupt pending."),
    ErrorKind("interrupt_pending", 409, False, "InterruptPending",
              "The session waits for an answer to its interrupt: send it as `resume` (its id is in `history`)."),
    ErrorKind("no_active_run", 404, False, "NoActiveRun", "The session has no run in progress."),
    ErrorKind("run_not_found", 404, False, "RunNotFound",
              "No such run of this session is kept (finished runs expire)."),
    ErrorKind("resume_unavailable", 410, False, "ResumeUnavailable",
              "The events after that id are no longer kept; start a new run."),
    ErrorKind("server_busy", 503, True, "ServerBusy", "The server is at capacity; retry shortly."),
    ErrorKind("server_shutting_down", 503, True, "ServerShutdown", "The server is shutting down; retry the request."),
    ErrorKind("timeout", 504, True, "TimeoutError", "The request took longer than the server allows."),
    ErrorKind("internal_error", 500, False, "InternalError", "The agent failed unexpectedly; see the server logs."),
    ErrorKind("recursion_limit", 500, False, "GraphRecursionError",
              "The agent took too many steps without finishing."),
    ErrorKind("memory_unavailable", 503, True, "MemoryError", "Session memory could not be read or written; retry."),
    ErrorKind("memory_not_found", 404, False, "MemoryNotFound", "This actor has no memory under that key."),
    ErrorKind("long_term_memory_off", 409, False, "LongTermMemoryOff",
              "Long-term memory is off on this server (LONG_TERM_MEMORY=off)."),
    ErrorKind("too_many_memories", 500, False, "TooManyMemories",
              "The turn wrote more memories than one turn may; see the server logs."),
    ErrorKind("tools_unavailable", 503, True, "ToolsUnavailable",
              "An MCP server the agent requires (MCP_REQUIRED=1) is unavailable; retry."),
    # The model (Bedrock Runtime)
    ErrorKind("model_throttled", 503, True, "ThrottlingException", "The model is throttling requests; retry shortly."),
    ErrorKind("model_unavailable", 503, True, "ServiceUnavailableException",
              "The model service is unavailable; retry."),
    ErrorKind("model_timeout", 504, True, "ModelTimeoutException", "The model took too long to answer; retry."),
    ErrorKind("model_not_ready", 503, False, "ModelNotReadyException", "The model is not ready to serve requests."),
    ErrorKind("model_validation_error", 502, False, "ValidationException", "The model rejected the request."),
    ErrorKind("model_access_denied", 502, False, "AccessDeniedException", "Access to the model was denied."),
    ErrorKind("model_not_found", 502, False, "ResourceNotFoundException", "The configured model was not found."),
    ErrorKind("model_error", 502, False, "ModelErrorException", "The model failed to process the request."),
    ErrorKind("model_stream_error", 502, True, "ModelStreamErrorException", "The model's stream broke mid-way; retry."),
    ErrorKind("model_unreachable", 503, True, "EndpointConnectionError",
              "The model endpoint could not be reached; retry."),
)}


class AgentError(Exception):
    """A request refused or a turn that did not complete, under a catalogued `code`.

    An ordinary exception class (not a frozen dataclass): Python sets `__traceback__`, `__context__` and
    `__cause__` on whatever it raises, and `@contextmanager` re-raises through `exc.__traceback__ = ...`,
    which a frozen dataclass refuses with FrozenInstanceError. The fields are read-only properties.
    """

    __slots__ = ("_kind", "_message", "_details")

    def __init__(self, code: str, message: str | None = None, details: list[dict[str, str]] | None = None) -> None:
        kind = CATALOG.get(code)
        if kind is None:
            raise ValueError(f"{code!r} is not in the error catalog (bedrock/errors.py)")
        super().__init__(code, message, details)  # args: what pickling rebuilds it from
        self._kind, self._message, self._details = kind, message or kind.message, details

    code = property(lambda self: self._kind.code, doc="Stable, machine-readable code, e.g. `model_throttled`.")
    message = property(lambda self: self._message, doc="Safe, human-readable message (no internals).")
    type = property(lambda self: self._kind.type, doc="The kind of failure, e.g. `ThrottlingException`.")
    retryable = property(lambda self: self._kind.retryable, doc="Whether the same request may succeed if retried.")
    status = property(lambda self: self._kind.status, doc="HTTP status of a refused or non-streamed request.")
    details = property(lambda self: self._details, doc="Field-by-field reasons (a refused payload), else None.")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.code, self.message, self.details))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AgentError):
            return NotImplemented
        return (self.code, self.message, self.details) == (other.code, other.message, other.details)

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def event_data(self, timestamp: str) -> dict[str, Any]:
        """The `data` of a turn's terminal `error` event."""
        data: dict[str, Any] = {
            "error": self.message, "type": self.type, "code": self.code, "retryable": self.retryable,
            "timestamp": timestamp,
        }
        if self.details is not None:
            data["details"] = self.details
        return data

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of a refused or failed request: `{"error": {"code", "message", "type", "retryable"}}`."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, "type": self.type,
                                 "retryable": self.retryable}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


def _rebuild(cls: type[AgentError], code: str, message: str, details: list[dict[str, str]] | None) -> AgentError:
    error = AgentError.__new__(cls)
    AgentError.__init__(error, code, message, details)
    return error


class PayloadError(AgentError, ValueError):
    """The request cannot be served as sent: 400 `invalid_payload`, with field-by-field `details`."""

    def __init__(self, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__("invalid_payload", message, details or [])


class Unauthorized(AgentError):
    """No usable bearer token: 401 with `WWW-Authenticate: Bearer`."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__("unauthorized", message)


class ActorForbidden(AgentError):
    """A verified caller's payload names another actor."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__("actor_forbidden", message)


class SessionForbidden(AgentError):
    """The session exists and belongs to another actor."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__("session_forbidden", message)


class SessionBusy(AgentError):
    """Another turn of this session held it longer than the wait bound."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__("session_busy", message)


def status_for(code: str) -> int:
    """The HTTP status a refused or non-streamed request answers with for an error `code` (500 if unknown)."""
    kind = CATALOG.get(code)
    return kind.status if kind is not None else 500


# Bedrock Runtime error codes (botocore ClientError, or in-stream exceptions) → our codes.
_BEDROCK_CODES: dict[str, tuple[str, str | None]] = {
    "ThrottlingException": ("model_throttled", None),
    "ServiceUnavailableException": ("model_unavailable", None),
    "InternalServerException": ("model_unavailable", "The model service failed; retry."),
    "ModelTimeoutException": ("model_timeout", None),
    "ModelNotReadyException": ("model_not_ready", None),
    "ValidationException": ("model_validation_error", None),
    "AccessDeniedException": ("model_access_denied", None),
    "ResourceNotFoundException": ("model_not_found", None),
    "ModelErrorException": ("model_error", None),
    "ModelStreamErrorException": ("model_stream_error", None),
}
# botocore's own failures on the way to the model.
_TRANSPORT_CODES = {
    "EventStreamError": "model_stream_error",
    "ResponseStreamingError": "model_stream_error",  # the connection dropped mid-stream, or no messageStop
    "EndpointConnectionError": "model_unreachable",
    "ConnectTimeoutError": "model_unreachable",
    "ReadTimeoutError": "model_unreachable",
    "ConnectionClosedError": "model_unreachable",
    "GraphRecursionError": "recursion_limit",
}
# AgentCore Memory data-plane calls (a ClientError from them is a memory failure, not a model one).
_MEMORY_OPERATIONS = frozenset({"CreateEvent", "ListEvents", "GetEvent", "DeleteEvent"})
# PostgreSQL's failures, by module (psycopg is imported only with MEMORY_BACKEND=postgres).
_DATABASE_MODULES = frozenset({"psycopg", "psycopg_pool"})


def _client_error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


def classify(exc: BaseException) -> AgentError:
    """Map any exception from a run to the AgentError the client sees (no internals in the message)."""
    if isinstance(exc, AgentError):
        return exc
    if (isinstance(exc, sqlite3.Error) or getattr(exc, "operation_name", None) in _MEMORY_OPERATIONS
            or type(exc).__module__.partition(".")[0] in _DATABASE_MODULES):
        return AgentError("memory_unavailable")
    code = _client_error_code(exc)
    if code:
        code = code[0].upper() + code[1:]  # in-stream exceptions are named "throttlingException" etc.
    if code in _BEDROCK_CODES:
        ours, message = _BEDROCK_CODES[code]
        return AgentError(ours, message)
    transport = _TRANSPORT_CODES.get(type(exc).__name__)
    if transport is not None:
        return AgentError(transport)
    if isinstance(exc, TimeoutError):
        return AgentError("timeout", "The request timed out.")
    return AgentError("internal_error")
