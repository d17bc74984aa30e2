"""Everything AgentClient raises (the tree is drawn in `bedrock/client/__init__.py`)."""

from __future__ import annotations

from typing import Any

from bedrock.wire.events import SSEEvent


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


class AgentStreamError(AgentClientError):
    """The turn ended with an `error` event (or the stream ended without a final event)."""

    def __init__(self, code: str, message: str, retryable: bool = False, event: SSEEvent | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.retryable, self.event = code, message, retryable, event

    @classmethod
    def from_event(cls, event: SSEEvent) -> AgentStreamError:
        data = event.data if isinstance(event.data, dict) else {"error": str(event.data)}
        return cls(data.get("code", "internal_error"), data.get("error", ""), bool(data.get("retryable")), event)
