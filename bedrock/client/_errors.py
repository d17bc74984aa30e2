"""Everything AgentClient raises (the tree is drawn in `bedrock/client/__init__.py`)."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from bedrock.wire.events import SSEEvent

_INCOMPLETE = "The stream ended before the turn's final event."


class AgentClientError(Exception):
    """Base of every error AgentClient raises."""


class AgentConnectionError(AgentClientError, ConnectionError):
    """The agent could not be reached (after the retries), or the connection broke mid-stream."""


class AgentTimeoutError(AgentClientError, TimeoutError):
    """The turn did not finish within the client's `timeout`."""


class AgentHTTPError(AgentClientError):
    """The request was refused: `status`, and the `code` / `message` of its `{"error": {...}}` body."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status, self.code, self.message, self.body = status, code, message, body

    @classmethod
    def from_body(cls, status: int, content: bytes) -> AgentHTTPError:
        """The error of a refused HTTP request (or WebSocket handshake) from its status and body: the catalog's
        `{"error": {"code", "message"}}`, the SDK's `{"error": "..."}`, or any other text."""
        try:
            body: Any = json.loads(content)
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return cls(status, str(error.get("code", f"http_{status}")), str(error.get("message", "")), body)
        if isinstance(error, str):  # the SDK's own failures answer {"error": "..."}
            return cls(status, f"http_{status}", error, body)
        text = content.decode("utf-8", "replace")[:500]
        return cls(status, f"http_{status}", text or _reason(status), body)


class AgentStreamError(AgentClientError):
    """The turn ended with an `error` event (or the stream ended without a final event)."""

    def __init__(self, code: str, message: str, retryable: bool = False, event: SSEEvent | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.retryable, self.event = code, message, retryable, event

    @classmethod
    def from_event(cls, event: SSEEvent) -> AgentStreamError:
        data = event.data if isinstance(event.data, dict) else {"error": str(event.data)}
        return cls(data.get("code", "internal_error"), data.get("error", ""), bool(data.get("retryable")), event)

    @classmethod
    def incomplete(cls) -> AgentStreamError:
        """A stream that ended without its turn's final event (retryable: the run may be followed again)."""
        return cls("incomplete_stream", _INCOMPLETE, retryable=True)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # a status no RFC names
        return ""
