"""Failures, as typed `error` events and error replies: a stable `code`, `retryable`, and a safe message.

Every error reply has one shape (`error_body`): `{"error": {"code", "message", "type", "retryable"}}`, plus
`details` for a refused payload. The codes and their HTTP statuses are in `_STATUS` below.
"""

from __future__ import annotations

import sqlite3
from typing import Any


class AgentError(Exception):
    """A turn that did not complete; `status` is the HTTP status of a non-streamed reply.

    An ordinary exception class (not a frozen dataclass): Python sets `__traceback__`, `__context__` and
    `__cause__` on whatever it raises, and `@contextmanager` re-raises through `exc.__traceback__ = ...`,
    which a frozen dataclass refuses with FrozenInstanceError. The fields are read-only properties.
    """

    __slots__ = ("_code", "_message", "_type", "_retryable", "_status")

    def __init__(
        self, code: str, message: str, type: str = "AgentError", retryable: bool = False, status: int = 500
    ) -> None:
        super().__init__(code, message, type, retryable, status)  # args: what pickling rebuilds it from
        self._code, self._message, self._type, self._retryable, self._status = code, message, type, retryable, status

    code = property(lambda self: self._code, doc="Stable, machine-readable code, e.g. `model_throttled`.")
    message = property(lambda self: self._message, doc="Safe, human-readable message (no internals).")
    type = property(lambda self: self._type, doc="The kind of failure, e.g. `ThrottlingException`.")
    retryable = property(lambda self: self._retryable, doc="Whether the same request may succeed if retried.")
    status = property(lambda self: self._status, doc="HTTP status of a non-streamed reply.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r}, {self.type!r}, {self.retryable!r}, {self.status!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AgentError):
            return NotImplemented
        return (self.code, self.message, self.type, self.retryable, self.status) == (
            other.code, other.message, other.type, other.retryable, other.status)

    def __hash__(self) -> int:
        return hash((self.code, self.message, self.type, self.retryable, self.status))

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def event_data(self, timestamp: str) -> dict[str, Any]:
        """The `data` of the terminal `error` event."""
        return {
            "error": self.message,
            "type": self.type,
            "code": self.code,
            "retryable": self.retryable,
            "timestamp": timestamp,
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of a failed non-streamed request."""
        return error_body(self.code, self.message, self.type, self.retryable)


def error_body(
    code: str, message: str, type: str, retryable: bool, details: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """The one shape of every error reply: `{"error": {"code", "message", "type", "retryable", "details"}}`.

    `details` (field-by-field reasons) only for a refused payload; every other error omits it.
    """
    error: dict[str, Any] = {"code": code, "message": message, "type": type, "retryable": retryable}
    if details is not None:
        error["details"] = details
    return {"error": error}


# Bedrock Runtime error codes (botocore ClientError) → (code, retryable, HTTP status, safe message).
_BEDROCK_ERRORS: dict[str, tuple[str, bool, int, str]] = {
    "ThrottlingException": ("model_throttled", True, 503, "The model is throttling requests; retry shortly."),
    "ServiceUnavailableException": ("model_unavailable", True, 503, "The model service is unavailable; retry."),
    "InternalServerException": ("model_unavailable", True, 503, "The model service failed; retry."),
    "ModelTimeoutException": ("model_timeout", True, 504, "The model took too long to answer; retry."),
    "ModelNotReadyException": ("model_not_ready", False, 503, "The model is not ready to serve requests."),
    "ValidationException": ("model_validation_error", False, 502, "The model rejected the request."),
    "AccessDeniedException": ("model_access_denied", False, 502, "Access to the model was denied."),
    "ResourceNotFoundException": ("model_not_found", False, 502, "The configured model was not found."),
    "ModelErrorException": ("model_error", False, 502, "The model failed to process the request."),
    "ModelStreamErrorException": ("model_stream_error", True, 502, "The model's stream broke mid-way; retry."),
}


_STATUS: dict[str, int] = {
    **{code: status for code, _, status, _ in _BEDROCK_ERRORS.values()},
    "recursion_limit": 500,
    "model_unreachable": 503,
    "timeout": 504,
    "invalid_payload": 400,
    "payload_too_large": 413,
    "request_timeout": 408,
    "server_busy": 503,
    "session_busy": 409,
    "session_forbidden": 403,
    "actor_forbidden": 403,
    "unauthorized": 401,
    "memory_unavailable": 503,
    "server_shutting_down": 503,
    "internal_error": 500,
}


# AgentCore Memory data-plane calls (a ClientError from them is a memory failure, not a model one).
_MEMORY_OPERATIONS = frozenset({"CreateEvent", "ListEvents", "GetEvent", "DeleteEvent"})


def status_for(code: str) -> int:
    """The HTTP status a non-streamed request answers with for an error `code`."""
    return _STATUS.get(code, 500)


def _client_error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


def classify(exc: BaseException) -> AgentError:
    """Map any exception from a run to the AgentError the client sees (no internals in the message)."""
    if isinstance(exc, AgentError):
        return exc
    if isinstance(exc, sqlite3.Error) or getattr(exc, "operation_name", None) in _MEMORY_OPERATIONS:
        return AgentError("memory_unavailable", "Session memory could not be read or written; retry.",
                          "MemoryError", True, 503)
    code = _client_error_code(exc)
    if code:
        code = code[0].upper() + code[1:]  # in-stream exceptions are named "throttlingException" etc.
    if code in _BEDROCK_ERRORS:
        ours, retryable, status, message = _BEDROCK_ERRORS[code]
        return AgentError(ours, message, type(exc).__name__, retryable, status)
    name = type(exc).__name__
    if name == "GraphRecursionError":
        return AgentError("recursion_limit", "The agent took too many steps without finishing.", name, False, 500)
    if name in ("EventStreamError",):
        return AgentError("model_stream_error", "The model's stream broke mid-way; retry.", name, True, 502)
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        return AgentError("model_unreachable", "The model endpoint could not be reached; retry.", name, True, 503)
    if isinstance(exc, TimeoutError):
        return AgentError("timeout", "The request timed out.", "TimeoutError", True, 504)
    return AgentError("internal_error", "The agent failed unexpectedly; see the server logs.", "InternalError", False, 500)
