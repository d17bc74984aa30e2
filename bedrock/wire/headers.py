"""The HTTP headers of the wire contract, and what their values mean (the server reads them off a request)."""

from __future__ import annotations

import hashlib

from bedrock.errors import PayloadError
from bedrock.wire.ids import ID_PATTERN, MAX_SESSION_ID, valid_id

# AgentCore Runtime's session header: it routes every request of one runtime session to the same microVM,
# and is the session's id when the payload names none.
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"


def session_from_header(value: str) -> str:
    """The session id a runtime session header stands for: itself, or — AgentCore runtime session ids may be up to
    256 characters, AgentCore Memory's only 100 — a stable digest, so every turn of that runtime session lands in
    one memory session. PayloadError for a value outside the id alphabet."""
    if valid_id(value, MAX_SESSION_ID):
        return value
    if valid_id(value):
        return "rt-" + hashlib.sha256(value.encode()).hexdigest()
    raise PayloadError(
        f"invalid session header: {SESSION_HEADER} must hold only letters, digits, '_' or '-' "
        f"({ID_PATTERN}); send a valid session_id in the payload instead",
        [{"field": "session_id", "message": "invalid session header"}],
    )


def last_event_id_from_header(value: str) -> int:
    """The `Last-Event-ID` header's event id (SSE's own re-attach header)."""
    if not value.isdigit() or len(value) > 18:
        raise PayloadError("invalid payload: last_event_id: the Last-Event-ID header must be a non-negative integer",
                           [{"field": "last_event_id",
                             "message": "the Last-Event-ID header must be a non-negative integer"}])
    return int(value)
