"""Reject bodies that are not JSON, or too large, before the SDK sees them.

BedrockAgentCoreApp answers unparsable JSON with its own error shape (`{"error": "Invalid JSON",
"details": ...}`) and a deeply nested body with a RecursionError turned into a 500; clients of this
runtime get one shape for every bad request instead: 400/408/413 in `bedrock.errors.error_body`'s shape.
"""

from __future__ import annotations

import asyncio
import json

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bedrock.errors import error_body


def _error(status: int, code: str, message: str, retryable: bool = False) -> JSONResponse:
    return JSONResponse(error_body(code, message, "PayloadError", retryable, []), status_code=status)


class JSONBodyGuard:
    """Pure ASGI middleware for the POST routes in `paths`; the body is replayed to the app unchanged."""

    def __init__(self, app: ASGIApp, paths: frozenset[str], max_bytes: int, read_timeout_s: float = 0) -> None:
        self.app = app
        self.paths = paths
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        too_large = _error(413, "payload_too_large", f"the request body is larger than {self.max_bytes} bytes")
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        try:
            # A body that trickles in (or a Content-Length larger than what is sent) would hold the
            # connection and its memory indefinitely: REQUEST_READ_TIMEOUT_S for all of it.
            async with asyncio.timeout(self.read_timeout_s):
                complete = await self._read(receive, chunks)
        except TimeoutError:
            slow = _error(408, "request_timeout", f"the request body was not received within {self.read_timeout_s:g} s",
                          retryable=True)
            slow.headers["connection"] = "close"  # the rest of the body is never read: the connection ends
            await slow(scope, receive, send)
            return
        if complete is None:
            return  # the client went away
        if not complete:
            await too_large(scope, receive, send)
            return
        body = b"".join(chunks)
        try:
            json.loads(body)
        except (ValueError, RecursionError):
            await _error(400, "invalid_payload", "the request body is not valid JSON")(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


    async def _read(self, receive: Receive, chunks: list[bytes]) -> bool | None:
        """Read the body into `chunks`: True when whole, False when over `max_bytes`, None on disconnect."""
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return False
            chunks.append(chunk)
            more = message.get("more_body", False)
        return True


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as the app expects

    return replay
