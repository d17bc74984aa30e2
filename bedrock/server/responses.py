"""HTTP responses: the SSE stream, the deferred JSON reply, and JSON errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from bedrock.errors import AgentError
from bedrock.wire.events import EventStream, SSEEvent, finite

logger = logging.getLogger(__name__)
# sse-starlette defaults Cache-Control to no-store; proxies and the guide's clients expect no-cache.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DENIAL = "websocket.http.response"  # the ASGI extension that lets a handshake be refused with an HTTP response


def _ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping", sep="\n")


async def _frames(events: EventStream,
                  render: Callable[[SSEEvent], bytes | None] | None) -> AsyncIterator[bytes]:
    # Bytes, not str: sse-starlette re-wraps a str (even an SSEEvent) as `data: …`.
    # Closed with the response (sse-starlette cancels it mid-send when the client leaves), not whenever
    # the collector finds it: until the turn is closed it holds its session.
    async with aclosing(events):
        if render is None:
            async for event in events:
                yield event.encode()
            return
        async for event in events:
            frame = render(event)
            if frame:
                yield frame


class _EventSourceResponse(EventSourceResponse):
    """sse-starlette's response, with a cheap stall bound instead of a cancel scope per event.

    Its own `send_timeout` enters `anyio.move_on_after` for every chunk: 3.4 µs of a ~10 µs per-event
    budget (bench/framework.py). Here a send only notes when it started, and one timer per stream checks
    every `stall_s / 2`: a send pending longer than `stall_s` (a client that stopped reading, its buffers
    full) is cancelled and becomes sse-starlette's SendTimeoutError, which closes the event iterator — the
    turn is cancelled and rolled back — and frees the slot, instead of holding both until REQUEST_TIMEOUT_S.
    """

    stall_s: float | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        self._clock = loop.time
        self._since = 0.0  # when the pending body send began; 0.0: none pending
        self._sender: asyncio.Task[Any] | None = None  # the task that streams the body
        self._stalled = False
        self._watchdog: asyncio.TimerHandle | None = None
        if self.stall_s:
            self._watchdog = loop.call_later(self.stall_s / 2, self._check, self.stall_s)
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            logger.warning("a client stopped reading its stream for %g s; the stream was ended", self.stall_s)
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()

    def _check(self, stall_s: float) -> None:
        """Cancel a body send pending longer than `stall_s`; then look again in `stall_s / 2`."""
        since, now = self._since, self._clock()
        if since and now - since >= stall_s and self._sender is not None and not self._stalled:
            self._stalled = True
            self._sender.cancel()
        self._watchdog = asyncio.get_running_loop().call_later(stall_s / 2, self._check, stall_s)

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if not self.stall_s:
            await send(message)
            return
        if self._sender is None:  # the first body send is the stream's (agent_start; pings come after 15 s)
            self._sender = asyncio.current_task()
        self._since = self._clock()
        try:
            await send(message)
        except asyncio.CancelledError:
            if self._stalled and self._sender is not None and self._sender.uncancel() == 0:
                raise SendTimeoutError() from None  # ours alone: the stall, not a disconnect or shutdown
            raise
        self._since = 0.0


def sse_response(
    events: EventStream,
    ping_interval_s: float,
    shutdown: Any = None,
    grace_s: float = 0.0,
    stall_s: float = 0.0,
    *,
    render: Callable[[SSEEvent], bytes | None] | None = None,
) -> EventSourceResponse:
    """Stream already-framed events; `: ping` comments keep idle connections open through proxies.

    On server shutdown sse-starlette sets `shutdown` and waits a little longer than the turn's own grace
    (`grace_s`), so the stream can still send its closing `error` event before being cut. A client that
    reads nothing for `stall_s` (SSE_STALL_TIMEOUT_S) has its stream ended and its turn rolled back.
    `render` writes each event another way (its text, AG-UI's events; None: no frame) instead of its own frame.
    """
    response = _EventSourceResponse(
        _frames(events, render),
        headers=SSE_HEADERS,
        sep="\n",
        ping=ping_interval_s,
        ping_message_factory=_ping,
        shutdown_event=shutdown,
        shutdown_grace_period=grace_s + 1.0 if shutdown is not None else 0,
    )
    response.stall_s = stall_s or None
    return response


class JSONReply(JSONResponse):
    """Starlette's JSONResponse (strict: it raises on NaN or ±Infinity), writing such a number as null instead of
    failing the reply: a graph's own data may hold one, and a 500 for it would make a session unreadable."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except ValueError:
            return super().render(finite(content))


def error_response(error: AgentError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The JSON reply of a refused or failed request: the error's catalogued status, its one body shape."""
    return JSONResponse(error.to_dict(), status_code=error.status, headers=headers)


def install_error_handlers(app: Starlette) -> None:
    """Every refusal and failure of `app`'s routes as the catalog's JSON error: an AgentError raised anywhere on a
    request's way (its entry's status and body), Starlette's own 404/405, and any unhandled failure (a 500
    `internal_error`, without the exception's text)."""
    app.add_exception_handler(Exception, _internal_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(AgentError, _agent_error)


async def _agent_error(request: Request, exc: Exception) -> Response:
    """A refusal (a bad payload, someone else's session, no such run …): its catalog status and JSON body."""
    assert isinstance(exc, AgentError)
    return error_response(exc)


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
               415: "unsupported_media_type"}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (an unknown route, a method a route does not take) in the catalog's JSON shape,
    with their headers (405's `Allow`); its default is plain text."""
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal_error")
    return error_response(AgentError(code), headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    """Any unhandled failure (Starlette's default is a plain-text 500): the JSON error shape, no internals."""
    logger.error("unhandled error on %s", request.url.path, exc_info=exc)
    return error_response(AgentError("internal_error"))


class DeferredJSONResponse(Response):
    """A JSON reply computed when the server sends it, on the server's own event loop.

    The entrypoint returns as soon as the run has started (refusals before it are raised as errors); the body,
    the fold of the run's events, is awaited here, when uvicorn sends the reply. While the turn runs, the
    connection is watched: a client that goes away cancels the turn (which rolls it back) as it would a stream,
    rather than leaving it to run to the end holding its slot. Starlette's
    own responses only notice a disconnect when they next send, and this one sends once, at the end.
    """

    def __init__(self, compute: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        super().__init__(media_type="application/json")
        del self.headers["content-length"]  # not known until the turn has run; the reply sent sets its own
        self.compute = compute

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        turn = asyncio.ensure_future(self.compute())
        watch = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait((turn, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            if not turn.done():
                turn.cancel()  # the client left (or this response was cancelled): stop and roll back the turn
                await asyncio.wait((turn,))  # until the rollback is done; the slot is held meanwhile
        if turn.cancelled():
            return
        try:
            response: Response = JSONReply(turn.result())
        except AgentError as error:
            response = error_response(error)
        await response(scope, receive, send)


async def _disconnected(receive: Receive) -> None:
    """Return when the client disconnects (the request body was already read, so nothing else arrives)."""
    while (await receive())["type"] != "http.disconnect":
        pass
