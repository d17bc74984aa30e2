"""Read an invocation's body once, bounded in size and time, and parse it once: the routes take the payload
from the request's state (`payload_of`), and nothing downstream reads or parses the body again.

BedrockAgentCoreApp would answer unparsable JSON with its own error shape (`{"error": "Invalid JSON",
"details": ...}`) and a deeply nested body with a RecursionError turned into a 500; clients of this
runtime get the catalog's one shape for every bad request instead: 400, 408 or 413 (`bedrock/errors.py`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from bedrock.wire.json_values import refuse_non_finite
from bedrock.errors import AgentError, PayloadError
from bedrock.server.responses import error_response

PAYLOAD = "agent_payload"  # key in the ASGI scope's per-request state


def payload_of(scope: Scope) -> Any:
    """The parsed JSON payload JSONBodyGuard read for this request."""
    return scope["state"][PAYLOAD]


class JSONBodyGuard:
    """Pure ASGI middleware for the POST routes in `paths`: the parsed body goes in the scope's state."""

    def __init__(self, app: ASGIApp, paths: frozenset[str], max_bytes: int, read_timeout_s: float = 0) -> None:
        self.app = app
        self.paths = paths
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if not json_content_type(headers.get(b"content-type"), b"origin" in headers):
            refused = error_response(AgentError("unsupported_media_type"))
            refused.headers["connection"] = "close"  # its body is never read
            await refused(scope, receive, send)
            return
        too_large = error_response(
            AgentError("payload_too_large", f"The request body is larger than {self.max_bytes} bytes."))
        declared = headers.get(b"content-length", b"0")
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
            slow = error_response(AgentError(
                "request_timeout", f"The request body was not received within {self.read_timeout_s:g} s."))
            slow.headers["connection"] = "close"  # the rest of the body is never read: the connection ends
            await slow(scope, receive, send)
            return
        if complete is None:
            return  # the client went away
        if not complete:
            await too_large(scope, receive, send)
            return
        try:
            payload = json.loads(b"".join(chunks))
            refuse_non_finite(payload)  # strict JSON: any field, AG-UI's included, before anything reads it
        except PayloadError as refused:
            await error_response(refused)(scope, receive, send)
            return
        except (ValueError, RecursionError):
            await error_response(PayloadError("The request body is not valid JSON."))(scope, receive, send)
            return
        scope.setdefault("state", {})[PAYLOAD] = payload
        # The body is all read: the app's `receive` now waits only for what may still come (the disconnect).
        await self.app(scope, receive, send)

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


def json_content_type(content_type: bytes | None, from_a_browser: bool) -> bool:
    """Whether a body may be read as JSON: `application/json` or a `+json` type. A web page can send any other
    site a POST without asking first (no CORS preflight) only as text/plain, a form, or with no type at all —
    so with those, any page a developer visits could start, cancel or approve runs on their local server. A
    request without a type is taken from non-browser clients (no `Origin` header), which AgentCore's data plane
    and scripts are; a browser always sends `Origin` with a POST."""
    if content_type is None:
        return not from_a_browser
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))
