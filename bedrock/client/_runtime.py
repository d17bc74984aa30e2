"""The deployed-runtime transport's pieces: InvokeAgentRuntime session ids, the agent's error body kept through
botocore, and reading (and closing) the response stream without holding tokens back."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from bedrock.client._errors import AgentHTTPError

RUNTIME_SESSION_ID_MIN, RUNTIME_SESSION_ID_MAX = 33, 256  # InvokeAgentRuntime's bounds
_READ_SIZE = 65536


def runtime_session_id(session_id: str | None) -> str:
    """A valid InvokeAgentRuntime session id (33–256 chars) for a payload's `session_id`.

    Deterministic, because the runtime session picks the microVM that serves the turn: every turn of one
    conversation must land on the same one. Without a session id, a fresh one is generated.
    """
    if not session_id:
        return f"session-{uuid.uuid4().hex}"
    if RUNTIME_SESSION_ID_MIN <= len(session_id) <= RUNTIME_SESSION_ID_MAX:
        return session_id
    digest = hashlib.sha256(session_id.encode("utf-8")).hexdigest()
    if len(session_id) < RUNTIME_SESSION_ID_MIN:
        return f"{session_id}-{digest}"[:64]  # a hash, not padding: cannot equal another session's own id
    return f"{session_id[: RUNTIME_SESSION_ID_MAX - 65]}-{digest}"


def _arn_region(arn: str | None) -> str | None:
    """The REGION of arn:aws:bedrock-agentcore:REGION:ACCOUNT:runtime/ID."""
    parts = arn.split(":") if arn else []
    return (parts[3] or None) if len(parts) >= 6 else None


def _runtime_http_error(exc: Any) -> AgentHTTPError:
    """A refused InvokeAgentRuntime call, with the agent's own error code when the runtime passed its body on."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    error = exc.response.get("AgentError") or exc.response.get("Error", {})
    code = str(error.get("code") or error.get("Code") or "ClientError")
    message = str(error.get("message") or error.get("Message") or exc)
    body = {"error": exc.response["AgentError"]} if "AgentError" in exc.response else exc.response
    return AgentHTTPError(status, code, message, body)


def _keep_agent_error(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """botocore keeps only an error's Code and Message; keep the agent's own `{"error": {...}}` body too."""
    if response_dict.get("status_code", 200) < 300:
        return
    try:
        body = json.loads(response_dict.get("body") or b"")
    except ValueError:
        return
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        customized_response_dict["AgentError"] = body["error"]


def _chunk_reader(stream: Any) -> Callable[[], bytes]:
    """Read whatever has arrived. StreamingBody.read(n) waits for n bytes, which would hold tokens back."""
    raw = getattr(stream, "_raw_stream", None)
    read1 = getattr(raw, "read1", None)
    if callable(read1):
        return lambda: read1(_READ_SIZE)
    return lambda: stream.read(1024)


def _close_stream(stream: Any) -> None:
    # shutdown() (urllib3 >= 2.3) wakes a read still blocked in a worker thread after a timeout or cancel.
    shutdown = getattr(getattr(stream, "_raw_stream", None), "shutdown", None)
    if callable(shutdown):
        try:
            shutdown()
        except (RuntimeError, ValueError, OSError):
            pass  # a broken read already gave the connection back to the pool (urllib3 refuses then)
    stream.close()
