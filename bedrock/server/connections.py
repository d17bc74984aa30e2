"""uvicorn as this runtime runs it: its h11 protocol with a bound on reading a request's head and a cap on
connections, answered in the runtime's JSON error shape.

Written here because uvicorn has neither: its keep-alive timeout only covers the idle time *between*
requests, so a client that sends a request head a byte at a time (slowloris) held its connection as long as
it liked, and its `limit_concurrency` answers a plain-text 503. The body's read timeout is JSONBodyGuard's
(`bedrock.server.body`), where an ASGI response can still be sent.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from bedrock.config import Settings
from bedrock.server.logs import uvicorn_log_config
from bedrock.errors import AgentError


def _raw_response(error: AgentError) -> bytes:
    """A whole HTTP/1.1 response written before (or without) any request: h11 cannot, so bytes by hand."""
    body = json.dumps(error.to_dict()).encode()
    reason = HTTPStatus(error.status).phrase
    head = (f"HTTP/1.1 {error.status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n")
    return head.encode() + body


class BoundedH11Protocol(H11Protocol):
    """H11Protocol plus `head_timeout_s` (from a connection's start, or a request's first byte, to its
    headers' end) and `max_connections`. Configure with `bounded_protocol(settings)`."""

    head_timeout_s: float = 10.0
    max_connections: int = 1000

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            crowded = AgentError("server_busy", "The server has too many open connections; retry shortly.")
            transport.write(_raw_response(crowded))
            transport.close()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            if self._head_timer is None and self.conn.trailing_data[0]:
                self._arm()  # a new request has begun: its head must arrive in time
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        # uvicorn cancels its keep-alive timer only when the connection closed cleanly (exc is None). A client that
        # resets the connection (closing its socket with unread data: what every client that stopped reading
        # does) left the timer armed, holding the whole connection for timeout_keep_alive (75 s): +11 MB a round
        # of 100 such clients in bench/soak.py, growing linearly.
        self._unset_keepalive_if_required()

    def _arm(self) -> None:
        self._disarm()
        if self.head_timeout_s:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def _disarm(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.conn.their_state is not h11.IDLE or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is still being sent (pipelining); the keep-alive handling follows it
        if self.conn.trailing_data[0]:
            slow = AgentError("request_timeout", f"The request was not received within {self.head_timeout_s:g} s.")
            self.transport.write(_raw_response(slow))
        self.transport.close()


def bounded_protocol(settings: Settings) -> type[H11Protocol]:
    """BoundedH11Protocol with REQUEST_READ_TIMEOUT_S and MAX_CONNECTIONS."""
    return type("BoundedH11Protocol", (BoundedH11Protocol,), {
        "head_timeout_s": settings.request_read_timeout_s, "max_connections": settings.max_connections,
    })


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What every server of the app runs with (`python -m bedrock.agent_runtime`, tests' live servers)."""
    return {
        "http": bounded_protocol(settings),
        # Keep-alive longer than common clients' pools, so a reused connection is never closed under a request.
        "timeout_keep_alive": 75,
        # Graceful shutdown outlasts SHUTDOWN_GRACE_S, so open streams end with their error event, not a cut.
        "timeout_graceful_shutdown": settings.shutdown_grace_s + 5,
        **({"log_config": log_config} if (log_config := uvicorn_log_config(settings)) else {}),
    }
