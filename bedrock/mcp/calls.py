"""Every MCP tool call bounded and typed: a langchain-mcp-adapters tool interceptor around the call.

    past MCP_TOOL_TIMEOUT_S                   → an error result: "Error: … did not answer within N s"
    the server down, gone mid-call, refusing   → an error result naming the server and the failure's type
    a tool that reports its own error           → its result, marked "Error: …" (the adapters make it status=error)
    a result over MAX_TOOL_RESULT_BYTES         → cut, with a marker saying how large it was

The call itself goes on a kept session (sessions.py), not the adapters' session per call. A server that dies
mid-call is seen at once: the mcp SDK's streamable HTTP client swallows a response stream that breaks before its
answer (and would wait out the whole timeout), so every MCP HTTP client is made here (`mcp_http_client`, the
adapters' `httpx_client_factory`) with a transport that tells the session it serves.

An error result is what the model (and the client, as a tool step) sees; the turn goes on, in any graph (a
create_agent ToolNode re-raises a tool's exceptions, so an MCP server's failure would otherwise end the turn). A
cancellation (the turn cancelled, rolled back, timed out) is never turned into a result: it goes on, and closing
the call's session stops the call (a stdio server's process is ended, an HTTP request closed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from functools import cache
from typing import Any

import httpx
from langchain_mcp_adapters.interceptors import MCPToolCallRequest, MCPToolCallResult
from mcp.shared.exceptions import McpError
from mcp.types import (AudioContent, BlobResourceContents, CallToolResult, ContentBlock, EmbeddedResource, ImageContent,
                       TextContent, TextResourceContents)

from bedrock.mcp.auth import CredentialError, note_request_credentials

logger = logging.getLogger(__name__)

Handler = Callable[[MCPToolCallRequest], Awaitable[MCPToolCallResult]]
Call = Callable[[str, str, dict[str, Any]], Awaitable[CallToolResult]]  # (server, tool, arguments) → its result
# The session a client serves: its future is given the error that broke one of its POST responses.
BROKEN: ContextVar[asyncio.Future[BaseException] | None] = ContextVar("mcp_session_broken", default=None)


def error_result(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=f"Error: {text}")], isError=True)


def cause(error: BaseException) -> BaseException:
    """The one error inside anyio's task groups' (nested) exception groups, or the error itself."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def failure(error: BaseException) -> str:
    """A failure's type, and an HTTP status where there is one: never its message (a URL's query, a header)."""
    error = cause(error)
    if isinstance(error, CredentialError):
        return f"no credentials: {error}"
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    if isinstance(error, McpError):  # the server's own JSON-RPC error (invalid params, unknown tool): its words
        return error.error.message[:200]
    return type(error).__name__


class CallBounds:
    """The interceptor: the call made by `call` (a kept session: sessions.py, in place of the adapters' `handler`),
    within a timeout, failures as error results, results cut to size."""

    def __init__(self, call: Call, timeout_s: float, max_result_bytes: int) -> None:
        self.call = call
        self.timeout_s = timeout_s
        self.max_result_bytes = max_result_bytes

    async def __call__(self, request: MCPToolCallRequest, handler: Handler) -> MCPToolCallResult:
        note_request_credentials()  # in the turn's own context: its request's workload access token
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await self.call(request.server_name, request.name, request.args)
        except TimeoutError:
            return error_result(f"the MCP server {request.server_name!r} did not answer {request.name} within "
                                f"{self.timeout_s:g} s")
        except Exception as error:  # an ExceptionGroup too (anyio's task groups): named by its one cause
            logger.warning("MCP tool %s on server %s failed: %s", request.name, request.server_name, failure(error))
            return error_result(f"the MCP server {request.server_name!r} failed to run {request.name} "
                                f"({failure(error)})")
        return self.bounded(result)

    def bounded(self, result: CallToolResult) -> CallToolResult:
        content = [_playable(block) for block in result.content]
        if result.isError:
            content = _marked_error(content)
        structured = result.structuredContent
        size = sum(_size(block) for block in content)
        structured_size = len(json.dumps(structured, default=str)) if structured is not None else 0
        if size + structured_size <= self.max_result_bytes:
            return result.model_copy(update={"content": content})
        kept, budget = [], self.max_result_bytes
        for block in content:
            part, budget = _cut(block, budget)
            if part is not None:
                kept.append(part)
        kept.append(TextContent(type="text", text=(
            f"[cut: the tool's result was {size + structured_size:,} bytes; the first "
            f"{self.max_result_bytes - budget:,} are kept (MAX_TOOL_RESULT_BYTES={self.max_result_bytes:,})]")))
        # The structured copy goes whole or not at all: it is kept with the conversation (the message's artifact).
        keep_structured = structured is not None and structured_size <= budget
        return result.model_copy(update={"content": kept, "structuredContent": structured if keep_structured else None})


def tell_broken(broken: asyncio.Future[BaseException], error: BaseException) -> None:
    if not broken.done():  # the first error is the one the call gets
        broken.set_result(error)


class _WatchedStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, broken: asyncio.Future[BaseException]) -> None:
        self.stream, self.broken = stream, broken

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.stream:
                yield chunk
        except Exception as error:  # the peer gone mid-body: RemoteProtocolError, ReadError
            tell_broken(self.broken, error)
            raise

    async def aclose(self) -> None:
        await self.stream.aclose()


class _WatchedTransport(httpx.AsyncBaseTransport):
    """The loop's shared transport, each POST watched for the session it serves: a request that fails, or a response
    body that breaks, is told to the session's `broken` (the mcp SDK's streamable HTTP client passes these to its
    session as messages that nothing reads, and the call would wait out its timeout). Closing it leaves the shared
    transport open."""

    def __init__(self, broken: asyncio.Future[BaseException] | None) -> None:
        self.inner = _pool()
        self.broken = broken

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        broken = self.broken
        if broken is None or request.method != "POST":
            return await self.inner.handle_async_request(request)
        try:
            response = await self.inner.handle_async_request(request)
        except Exception as error:  # refused, reset: the SDK hands this to a session that ignores it
            tell_broken(broken, error)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _WatchedStream(response.stream, broken)
        return response


# One transport per event loop (a connection belongs to the loop that opened it), with one SSL context: the adapters
# give every call a client of its own, and a client's default transport makes an SSL context (~20 ms of CPU) each
# time. Connections are not kept alive: the mcp SDK's client on a kept-alive connection waited ~40 ms for the end of
# each response body (loopback, FastMCP: a call took 62 ms with keep-alive, 18 ms without, 40 ms with the adapters'
# own client per call). No bound on connections, as a client per call had none.
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncHTTPTransport] = weakref.WeakKeyDictionary()
POOL_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=0)


def _pool() -> httpx.AsyncHTTPTransport:
    loop = asyncio.get_running_loop()
    pool = _POOLS.get(loop)
    if pool is None:
        pool = _POOLS[loop] = httpx.AsyncHTTPTransport(verify=_ssl_context(), limits=POOL_LIMITS)
    return pool


async def close_pool() -> None:
    """Close this loop's pool (the build's loop, once the tools are listed)."""
    pool = _POOLS.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.aclose()


@cache
def _ssl_context() -> ssl.SSLContext:
    """One for every loop's transport: making one costs ~20 ms of CPU."""
    return httpx.create_ssl_context()


def mcp_http_client(headers: dict[str, str] | None = None, timeout: httpx.Timeout | None = None,
                    auth: httpx.Auth | None = None) -> httpx.AsyncClient:
    """The adapters' `httpx_client_factory`: the mcp SDK's own client's settings (30 s, 300 s to read a stream: its
    `create_mcp_http_client`), on a watched transport."""
    return httpx.AsyncClient(headers=headers, auth=auth, transport=_WatchedTransport(BROKEN.get()),
                             timeout=timeout or httpx.Timeout(30.0, read=300.0))


def _playable(block: ContentBlock) -> ContentBlock:
    """Audio has no LangChain content block (the adapters raise on it): a note in its place."""
    if isinstance(block, AudioContent):
        return TextContent(type="text", text=f"[audio ({block.mimeType}) omitted: not passed to the model]")
    return block


def _marked_error(content: list[ContentBlock]) -> list[ContentBlock]:
    first = next((i for i, block in enumerate(content) if isinstance(block, TextContent)), None)
    if first is None:
        return [TextContent(type="text", text="Error: the tool failed and said nothing more"), *content]
    block = content[first]
    assert isinstance(block, TextContent)
    if not block.text.startswith("Error"):
        content = [*content[:first], block.model_copy(update={"text": f"Error: {block.text}"}), *content[first + 1:]]
    return content


def _size(block: ContentBlock) -> int:
    if isinstance(block, TextContent):
        return len(block.text.encode())
    if isinstance(block, ImageContent):
        return len(block.data)
    if isinstance(block, EmbeddedResource):
        resource = block.resource
        if isinstance(resource, TextResourceContents):
            return len(resource.text.encode())
        if isinstance(resource, BlobResourceContents):
            return len(resource.blob)
    return len(block.model_dump_json())


def _cut(block: ContentBlock, budget: int) -> tuple[ContentBlock | None, int]:
    """The block, or as much of its text as `budget` bytes hold (None if nothing of it fits), and the budget left."""
    size = _size(block)
    if size <= budget:
        return block, budget - size
    text = block.text if isinstance(block, TextContent) else None
    if text is None and isinstance(block, EmbeddedResource) and isinstance(block.resource, TextResourceContents):
        text = block.resource.text
    if text is None or budget <= 0:  # an image or a blob is not cut in half
        return None, budget
    kept = text.encode()[:budget].decode(errors="ignore")  # whole characters only
    return TextContent(type="text", text=kept), budget - len(kept.encode())

