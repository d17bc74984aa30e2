"""WebSocket `/ws` (the SDK's `@app.websocket` route): one connection carries many requests, each the payload
`/invocations` takes, answered on the socket; the runs are the same runs, so a turn started over HTTP can be followed
here (`{"action": "resume", "last_event_id": 0}`) and one started here resumed over HTTP.

Client → server: one JSON object a message — an `/invocations` payload (`prompt`, `action`, `resume` answers, an
AG-UI RunAgentInput), plus an optional `request_id` (a string of at most 128 characters) echoed on every message that
answers it. Messages are handled as they arrive, each on its own: a `cancel` or an approval sent mid-turn acts at once.
With AUTH_MODE=jwt the handshake's `Authorization` header carries the token; a browser, which cannot set one, sends
`{"authorization": "Bearer …"}` as its first message instead. A connection holds its actor until the token expires:
past it a message is refused and the socket closed (4401), unless it brings a new token of the same actor
(`{"authorization": …}`, alone or with a request; answered `authenticated`).

Server → client, one JSON object a message:

    {"event": TYPE, "id": N, "data": {…}, "run_id": R[, "request_id": Q]}   a run's event, as the SSE stream has it
    {"event": "ag_ui", "data": {…}, "run_id": R[, "request_id": Q]}         an AG-UI run's events, AG-UI's JSON
    {"event": "result", "data": {…}[, "request_id": Q]}                    what an action answers (cancel, status …)
    {"event": "error", "status": S, "data": {"error", "code", …}[, "request_id": Q]}
                                                                           a refused message: the HTTP status and
                                                                           the error event it would have had
    {"event": "authenticated", "data": {"actor_id": A}}                    the first message's token was verified

Refused before the upgrade, as HTTP (the catalog's JSON error): a cross-origin page (403 `origin_forbidden`, unless
WS_ALLOWED_ORIGINS names it), a handshake whose token is not valid (401). Close codes afterwards: 1000 idle
(WS_IDLE_TIMEOUT_S with no run in flight), 1008 a policy bound (messages past WS_MAX_MESSAGES_PER_S kept up, or a
client that read nothing for SSE_STALL_TIMEOUT_S), 1009 a message over MAX_REQUEST_BYTES, 4401 no valid token in the
first message; 1012 (service restart) when the server stops, once the runs the socket follows have sent their last
event (`server_shutting_down` within SHUTDOWN_GRACE_S: `serve` settles them before uvicorn closes the sockets). A
socket that drops is a client leaving: each run it started goes on or is cancelled, as its payload's `on_disconnect`
says (default `continue`, as over HTTP).

Hand-written on Starlette's WebSocket: neither the SDK (a bare route) nor any maintained library multiplexes runs,
actions and their bounds over one socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.websockets import WebSocket

from bedrock.core.trace_context import incoming_trace
from bedrock.errors import AgentError, PayloadError, Unauthorized
from bedrock.server.auth import TokenVerifier
from bedrock.server.negotiation import agui_of
from bedrock.server.responses import DENIAL, error_response
from bedrock.server.runtime import Followed, Runtime
from bedrock.wire.events import SSEEvent, dumps, utc_timestamp
from bedrock.wire.headers import SESSION_HEADER
from bedrock.wire.json_values import refuse_non_finite

logger = logging.getLogger(__name__)

MAX_REQUEST_ID = 128
MAX_PEEK_BYTES = 4096  # a message refused for the rate is read for its request_id only up to this size
MAX_IN_FLIGHT = 64  # requests of one connection being answered at once (runs followed, actions awaited)


def websocket_handler(runtime: Runtime, verifier: TokenVerifier | None) -> Callable[[WebSocket, Any],
                                                                                      Awaitable[None]]:
    """The SDK's `@app.websocket` handler: each connection served by a Connection."""
    logging.getLogger("uvicorn.error").addFilter(_not_a_denial)

    async def handle(websocket: WebSocket, context: Any) -> None:
        await Connection(runtime, verifier, websocket, getattr(context, "session_id", None)).serve()

    return handle


def _not_a_denial(record: logging.LogRecord) -> bool:
    """uvicorn 0.54's WebSocket protocol logs an ERROR for every handshake refused with an HTTP response (the ASGI
    denial extension it offers), as if the app had forgotten the handshake: every refusal here is a denial."""
    return record.getMessage() != "ASGI callable returned without completing handshake."


class SocketGone(Exception):
    """A send found the socket closed: the client left, or the server ended the connection."""


class RateBucket:
    """A token bucket: `rate` messages a second sustained, bursts of `burst`."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Connection:
    """One socket: its actor, the requests it is answering, one writer at a time, and its bounds."""

    def __init__(self, runtime: Runtime, verifier: TokenVerifier | None, websocket: WebSocket,
                 session_id: str | None) -> None:
        self.runtime, self.settings, self.verifier, self.ws = runtime, runtime.settings, verifier, websocket
        self.header_session = session_id or websocket.headers.get(SESSION_HEADER)
        self.actor: str | None = None
        self.expires_at = float("inf")  # the token's expiry (AUTH_MODE=jwt): past it, no message is answered
        self.tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        loop = asyncio.get_running_loop()
        self._clock = loop.time
        self._since = 0.0  # when the pending send began; 0.0: none pending
        self._bucket = RateBucket(self.settings.ws_max_messages_per_s, 2 * self.settings.ws_max_messages_per_s,
                                  loop.time())
        self._refused: list[float] = []  # when messages past the rate were refused, within the last second
        self._close: tuple[int, str] | None = None  # why the server ends the connection, when it does
        self._receiver: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    # --- the connection's life -------------------------------------------------------------------------------

    async def serve(self) -> None:
        refusal = self._origin_refusal()
        if refusal is None and self.verifier is not None and "authorization" in self.ws.headers:
            try:
                self.actor, self.expires_at = await self.verifier.verify(self.ws.headers["authorization"])
            except Unauthorized as error:
                refusal = error
        if refusal is not None:
            await self._deny(refusal)
            return
        await self.ws.accept()
        stall = self.settings.sse_stall_timeout_s
        if stall:
            self._watchdog = asyncio.get_running_loop().call_later(stall / 2, self._check, stall)
        self._receiver = asyncio.ensure_future(self._receive_all())
        try:
            await asyncio.wait([self._receiver])
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
            await self._end()

    async def _receive_all(self) -> None:
        if self.verifier is not None and self.actor is None and not await self._authenticate():
            return
        idle = self.settings.ws_idle_timeout_s or None
        while True:
            try:
                message = await asyncio.wait_for(self.ws.receive(), idle)
            except TimeoutError:
                if self.tasks:
                    continue  # a run in flight (or an action awaited): its client is listening, not idle
                self._close = (1000, "idle")
                return
            if message["type"] == "websocket.disconnect":
                return
            await self._admit(message)
            if self._close is not None:
                return

    async def _end(self) -> None:
        """Every request still being answered ends (a run this socket started: as its `on_disconnect` says, its
        rollback awaited); then the socket closes, with the server's reason if it has one."""
        if self._receiver is not None and not self._receiver.done():
            self._receiver.cancel()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self._close is not None:
            code, reason = self._close
            try:  # a client that reads nothing may never take the close frame: bounded
                await asyncio.wait_for(self.ws.close(code, reason), 1.0)
            except Exception:
                pass

    def _check(self, stall_s: float) -> None:
        """End a connection whose send has been pending `stall_s` (a client that stopped reading); look again in
        `stall_s / 2`."""
        since = self._since
        if since and self._clock() - since >= stall_s and self._close is None:
            logger.warning("a WebSocket client stopped reading for %g s; the connection was ended", stall_s)
            self._close = (1008, "the client stopped reading")
            if self._receiver is not None:
                self._receiver.cancel()
            return
        self._watchdog = asyncio.get_running_loop().call_later(stall_s / 2, self._check, stall_s)

    # --- who may connect -------------------------------------------------------------------------------------

    def _origin_refusal(self) -> AgentError | None:
        """A browser page of another origin is refused unless WS_ALLOWED_ORIGINS names it: WebSockets have no CORS,
        so with AUTH_MODE=none any site a developer visits could otherwise drive their local server."""
        origin = self.ws.headers.get("origin")
        if origin is None:  # not a browser
            return None
        origin = origin.strip().rstrip("/").lower()
        host = self.ws.headers.get("host", "").lower()
        if origin in (f"http://{host}", f"https://{host}") or origin in self.settings.ws_allowed_origins:
            return None
        return AgentError("origin_forbidden")

    async def _deny(self, error: AgentError) -> None:
        """Refuse the handshake with the catalog's HTTP error (where the server can send one), else a close code."""
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if error.status == 401 else None
        if DENIAL in self.ws.scope.get("extensions", {}):
            await self.ws.send_denial_response(error_response(error, headers))
        else:
            await self.ws.close(4000 + error.status, error.message[:120])

    async def _authenticate(self) -> bool:
        """AUTH_MODE=jwt without a token on the handshake: the first message's `authorization`, within
        REQUEST_READ_TIMEOUT_S; else an `error` and close 4401."""
        timeout = self.settings.request_read_timeout_s or None
        try:
            message = await asyncio.wait_for(self.ws.receive(), timeout)
        except TimeoutError:
            return await self._unauthorized(Unauthorized(f"No token within {timeout:g} s: send "
                                                         '{"authorization": "Bearer …"} first.'), None)
        if message["type"] == "websocket.disconnect":
            return False
        payload = self._parse(_raw(message))
        request_id = _request_id_of(payload)
        if not isinstance(payload, dict) or not isinstance(payload.get("authorization"), str):
            return await self._unauthorized(Unauthorized('The first message must be {"authorization": "Bearer …"}.'),
                                            request_id)
        try:
            self.actor, self.expires_at = await self.verifier.verify(  # type: ignore[union-attr]
                payload.pop("authorization"))
        except Unauthorized as error:
            return await self._unauthorized(error, request_id)
        try:
            await self.send(f'{{"event":"authenticated","data":{dumps({"actor_id": self.actor})}}}')
        except SocketGone:
            return False
        if payload:  # the first request, sent with the token
            self._start(payload)
        return True

    async def _reauthenticate(self, payload: Any) -> None:
        """A token that has expired ends the connection (4401) unless the message brings a new one, of the same
        actor (another's: `actor_forbidden`): `{"authorization": "Bearer …"}`, alone or with a request."""
        request_id = _request_id_of(payload)
        authorization = payload.pop("authorization", None) if isinstance(payload, dict) else None
        if not isinstance(authorization, str):
            await self._unauthorized(Unauthorized("The token has expired: send a new one as "
                                                  '{"authorization": "Bearer …"}.'), request_id)
            return
        try:
            actor, expires_at = await self.verifier.verify(authorization)  # type: ignore[union-attr]
        except Unauthorized as error:
            await self._unauthorized(error, request_id)
            return
        if actor != self.actor:
            await self._send_error(AgentError("actor_forbidden", "A connection keeps the actor it was opened "
                                              "with; open another for another actor."), request_id)
            return
        self.expires_at = expires_at
        try:
            await self.send(f'{{"event":"authenticated","data":{dumps({"actor_id": actor})}{_tail(request_id)}}}')
        except SocketGone:
            return
        if set(payload) - {"request_id"}:
            self._start(payload)

    async def _unauthorized(self, error: Unauthorized, request_id: str | None) -> bool:
        await self._send_error(error, request_id)
        self._close = (4401, "unauthorized")
        return False

    # --- what arrives ----------------------------------------------------------------------------------------

    async def _admit(self, message: Mapping[str, Any]) -> None:
        """One message: within the rate (else `rate_limited`; the connection ended when twice the rate is kept up
        a second), within MAX_REQUEST_BYTES (else 1009), JSON; then answered on a task of its own. Refusals are
        sent before the next message is read: a client flooding a socket it does not read is held by the stall
        bound."""
        now = self._clock()
        if not self._bucket.take(now):
            self._refused = [at for at in self._refused if now - at < 1.0] + [now]
            if len(self._refused) > 2 * self.settings.ws_max_messages_per_s:
                self._close = (1008, "too many messages")
                return
            raw = _raw(message)  # refused unread but for its request_id (a small message's: parsing one is ~2 µs)
            request_id = _request_id_of(self._parse(raw)) if len(raw) <= MAX_PEEK_BYTES else None
            await self._send_error(AgentError("rate_limited"), request_id)
            return
        raw = _raw(message)
        if len(raw) > self.settings.max_request_bytes:  # (uvicorn, given our options, closes with 1009 before)
            await self._send_error(AgentError("payload_too_large"), None)
            self._close = (1009, "message too big")
            return
        payload = self._parse(raw)
        if self.verifier is not None and (isinstance(payload, dict) and "authorization" in payload
                                          or time.time() > self.expires_at):
            await self._reauthenticate(payload)
        elif isinstance(payload, AgentError):
            await self._send_error(payload, None)  # (not JSON: no request_id to be read)
        elif len(self.tasks) >= MAX_IN_FLIGHT:
            await self._send_error(AgentError("rate_limited", f"At most {MAX_IN_FLIGHT} requests of one connection "
                                              "are answered at once; wait for an answer."), _request_id_of(payload))
        else:
            self._start(payload)

    def _parse(self, raw: bytes) -> Any:
        """The message's JSON (strict: no NaN or ±Infinity), or the PayloadError saying why not."""
        try:
            payload = json.loads(raw)
            refuse_non_finite(payload)
        except PayloadError as refused:
            return refused
        except (ValueError, RecursionError):
            return PayloadError("The message is not valid JSON.")
        return payload

    def _start(self, payload: Any) -> None:
        task = asyncio.ensure_future(self._answer(payload))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.runtime.socket_tasks.add(task)
        task.add_done_callback(self.runtime.socket_tasks.discard)

    async def _answer(self, payload: Any) -> None:
        """One request: validated as `/invocations` validates, dispatched the one way; its answer sent."""
        request_id = None
        try:
            payload, request_id = _request_id(payload)
            payload, agui = agui_of(self.settings, payload)
            # A socket is an event stream: a run streams its tokens unless its payload says not (`stream_tokens`).
            request = self.runtime.validate(payload, self.header_session, self.actor, prefers_events=True)
            with incoming_trace(self.ws.headers):  # the handshake's trace context: each turn's parent
                outcome = await self.runtime.dispatch(request, "ws")
        except AgentError as error:
            await self._send_error(error, request_id)
            return
        except Exception:
            logger.exception("a WebSocket request failed")
            await self._send_error(AgentError("internal_error"), request_id)
            return
        if isinstance(outcome, Followed):
            await self._forward(outcome, request_id, agui)  # (no await before: a cancel here closes the follower)
        else:
            try:
                await self.send(f'{{"event":"result","data":{dumps(outcome)}{_tail(request_id)}}}')
            except SocketGone:
                pass

    # --- what is sent ----------------------------------------------------------------------------------------

    async def _forward(self, followed: Followed, request_id: Any, agui: Any) -> None:
        """A run's events, each one message, until its end; the run is left when the socket is (its `on_disconnect`
        then says whether it goes on)."""
        follower = followed.follower
        tail = f',"run_id":{dumps(follower.run.run_id)}{_tail(request_id)}}}'
        try:
            async for event in follower:
                if agui is None:
                    await self.send(_message(event) + tail)
                    continue
                for translated in agui.events(event):
                    await self.send('{"event":"ag_ui","data":'
                                    + translated.model_dump_json(by_alias=True, exclude_none=True) + tail)
        except SocketGone:
            pass  # the follower is left below
        finally:
            await follower.aclose()

    async def send(self, text: str) -> None:
        """One message, one writer at a time; how long a send has been pending is what the stall bound watches."""
        async with self._lock:
            self._since = self._clock()
            try:
                await self.ws.send_text(text)
            except Exception as gone:  # uvicorn's ClientDisconnected, Starlette's after a close, an OSError …
                raise SocketGone() from gone
            finally:
                self._since = 0.0

    async def _send_error(self, error: AgentError, request_id: Any) -> None:
        data = dumps(error.event_data(utc_timestamp()))
        try:
            await self.send(f'{{"event":"error","status":{error.status},"data":{data}{_tail(request_id)}}}')
        except SocketGone:
            pass


def _raw(message: Mapping[str, Any]) -> bytes:
    text = message.get("text")
    return text.encode("utf-8", "surrogatepass") if text is not None else message.get("bytes") or b""


def _request_id(payload: Any) -> tuple[Any, str | None]:
    """The payload without its `request_id`, and the id (a string of at most MAX_REQUEST_ID characters)."""
    if not isinstance(payload, dict) or "request_id" not in payload:
        return payload, None
    payload = dict(payload)
    request_id = payload.pop("request_id")
    if not isinstance(request_id, str) or len(request_id) > MAX_REQUEST_ID:
        raise PayloadError("invalid payload: request_id",
                           [{"field": "request_id", "message": f"a string of at most {MAX_REQUEST_ID} characters"}])
    return payload, request_id


def _request_id_of(payload: Any) -> str | None:
    """The payload's `request_id` if it is a usable one, for a refusal that does not read the rest."""
    request_id = payload.get("request_id") if isinstance(payload, dict) else None
    return request_id if isinstance(request_id, str) and len(request_id) <= MAX_REQUEST_ID else None


def _tail(request_id: str | None) -> str:
    return "" if request_id is None else f',"request_id":{dumps(request_id)}'


def _message(event: SSEEvent) -> str:
    """A run's event as a message's head, from its SSE frame's text (`event: T\\ndata: D\\nid: N\\n\\n`): its data's
    JSON is reused, not written again (a token's whole cost here is this slice)."""
    start = event.index("\ndata: ") + 7
    data = event[start:event.index("\n", start)]
    event_id = "null" if event.id is None else event.id
    return f'{{"event":"{event.type}","id":{event_id},"data":{data}'
