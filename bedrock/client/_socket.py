"""A WebSocket session with the server (`AgentClient.connect()`): many requests on one `/ws` connection.

    async with AgentClient(base_url="http://127.0.0.1:8080") as client:
        async with client.connect() as conn:
            async for event in conn.stream({"prompt": "What is 25 * 4?", "session_id": "s"}):
                print(event.type, event.data)
            print(await conn.status("s"))

Each request is an `/invocations` payload plus a `request_id` this module picks; the server answers every message
with that id (bedrock/server/websocket.py has the protocol). One reader task takes every message off the socket and
puts it on its request's queue, so runs and actions share the connection and none waits for another's answers.

This module imports nothing of `_client.py` (which imports it): what both transports send is shaped here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from bedrock.client._errors import (
    AgentClientError,
    AgentConnectionError,
    AgentHTTPError,
    AgentStreamError,
    AgentTimeoutError,
)
from bedrock.wire.events import AGENT_START, ERROR, TERMINAL_EVENTS, SSEEvent, encode_frame
from bedrock.wire.result import fold

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

logger = logging.getLogger("bedrock.client")

# Of the headers the AgentCore SDK signs a runtime's handshake with, those sent as they are (the signature covers
# Host and X-Amz-Date; websockets writes Host, Upgrade, Connection and Sec-WebSocket-* itself).
SIGNED_HANDSHAKE = frozenset({"authorization", "x-amz-date", "x-amz-security-token", "user-agent",
                              "x-amzn-bedrock-agentcore-runtime-session-id"})
AG_UI_ENDS = frozenset({"RUN_FINISHED", "RUN_ERROR"})  # an AG-UI run's last event (AGENT_PROTOCOL=ag-ui)
_GONE = object()  # put on every waiting request's queue when the connection ends


def ws_url(base_url: str) -> str:
    """The server's `/ws` from its base URL: `http://h:p/x` → `ws://h:p/x/ws`, `https` → `wss`."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"a WebSocket needs an http(s):// base_url, not {base_url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", parts.query, ""))


def forget_body(key: str | None, namespace: Sequence[str] | None, everything: bool,
                actor_id: str | None) -> dict[str, Any]:
    """The `forget` request; ValueError for what the server would refuse anyway, so nothing is sent for it."""
    if everything and (key is not None or namespace is not None):
        raise ValueError("forget one memory (key, with its namespace if you like) or all=True, not both")
    if not everything and key is None:
        raise ValueError("give the key of the memory to forget, or all=True to forget every memory")
    if isinstance(namespace, str):  # a string is a Sequence[str] too: one label, not one label per character
        raise ValueError("namespace is a sequence of labels, e.g. [actor_id, \"memories\"]")
    return {"action": "forget", "key": key, "namespace": None if namespace is None else list(namespace),
            "all": True if everything else None, "actor_id": actor_id}


def _refusal(message: Mapping[str, Any]) -> AgentHTTPError:
    """A refused message's error, as the HTTP client raises for the same refusal (`body`: the whole message)."""
    data = message.get("data")
    data = data if isinstance(data, dict) else {}
    status = message.get("status")
    return AgentHTTPError(status if isinstance(status, int) else 0, str(data.get("code", "internal_error")),
                          str(data.get("error", "")), dict(message))


def _is_refusal(message: Mapping[str, Any]) -> bool:
    # A run's own `error` event (its last) has the run's `id` and `run_id`; a refused message has an HTTP status.
    return message.get("event") == ERROR and "status" in message


class _Request:
    """One request's answers, as the reader routes them."""

    __slots__ = ("queue",)

    def __init__(self) -> None:
        # Unbounded: one reader serves every request, and a stream its caller is slow to read must not hold back
        # the others' messages. A run's events are finite, and its caller reads them.
        self.queue: asyncio.Queue[Any] = asyncio.Queue()


class Connection:
    """One WebSocket to the server's `/ws`; `AgentClient.connect()` makes it. Use as `async with client.connect()
    as conn:` (or `conn = await client.connect()`, then `await conn.close()`).

    `stream`, `invoke`, `cancel`, `status`, `history`, `memories` and `forget` answer as AgentClient's do, and
    raise the same errors: AgentHTTPError for a refused request, AgentTimeoutError past the client's `timeout`,
    AgentConnectionError when the connection ends (every call waiting on it raises it; the socket is not opened
    again: open another); `renew` gives it a new token of its actor. Any number of calls may run at once on one
    connection, from any tasks of its loop.
    """

    def __init__(self, base_url: str | None, *, headers: Mapping[str, str] | None = None, timeout: float = 300.0,
                 retries: int = 3, backoff_s: float = 0.2,
                 handshake: Callable[[], tuple[str, dict[str, str]]] | None = None) -> None:
        """`headers` go on the handshake: the client's `Authorization` (with AUTH_MODE=jwt) and any other.
        `handshake` (instead of `base_url`): the URL and headers of each attempt, made on a thread — a deployed
        runtime's, signed anew each time."""
        if (base_url is None) == (handshake is None):
            raise ValueError("give exactly one of base_url or handshake")
        self._handshake = handshake
        self.url = ws_url(base_url) if base_url is not None else "the runtime's /ws"
        self.timeout, self.retries, self.backoff_s = timeout, retries, backoff_s
        self._headers = dict(headers or {})
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, _Request] = {}  # by request_id, in the order sent
        self._ids = itertools.count(1)
        self._ended: str | None = None  # why the connection ended, once it has
        self._closing = False
        self._leaving: set[asyncio.Task[None]] = set()  # cancels of runs whose stream was left (on_disconnect)
        self._gate = asyncio.Lock()  # two tasks opening it at once open one socket

    # --- the connection's life -------------------------------------------------------------------------------

    async def open(self) -> Connection:
        """Open the socket (once). A failure to connect is retried `retries` times, with backoff: nothing has
        reached the agent yet. A refused handshake (401 without a valid token, 403 another origin) raises
        AgentHTTPError."""
        async with self._gate:  # two tasks opening it at once open one socket
            if self._ended is not None:
                raise self._gone()
            if self._ws is None:
                self._ws = await self._connect()
                self._reader = asyncio.ensure_future(self._read_all())
        return self

    async def _connect(self) -> ClientConnection:
        # Imported on the first connection: HTTP-only users do not pay websockets' ~55 ms import.
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus

        for attempt in range(self.retries + 1):
            try:
                url, headers = self.url, self._headers
                if self._handshake is not None:
                    url, headers = await asyncio.to_thread(self._handshake)
                    self.url = url.split("?", 1)[0]
                return await connect(
                    url, additional_headers=headers, open_timeout=min(self.timeout, 10.0),
                    # The server bounds what it reads (MAX_REQUEST_BYTES); what it answers (a long history) is read
                    # whole, as the HTTP client reads any body.
                    max_size=None,
                )
            except InvalidStatus as refused:
                response = refused.response
                raise AgentHTTPError.from_body(response.status_code, bytes(response.body or b"")) from refused
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                if attempt == self.retries:
                    message = f"Could not connect to {self.url} after {attempt + 1} attempt(s): {exc!r}"
                    raise AgentConnectionError(message) from exc
                delay = self.backoff_s * 2**attempt
                logger.warning("connecting to %s failed (%r); retry %d/%d in %.2f s",
                               self.url, exc, attempt + 1, self.retries, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def __await__(self) -> Generator[Any, None, Connection]:
        return self.open().__await__()

    async def __aenter__(self) -> Connection:
        return await self.open()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        """Whether the connection has ended (closed here, by the server, or broken)."""
        return self._ended is not None

    async def close(self) -> None:
        """Close the socket; every call still waiting raises AgentConnectionError. Runs this connection started
        go on or are cancelled as their payload's `on_disconnect` says (default `continue`), as over HTTP."""
        self._closing = True
        for task in self._leaving:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader
        self._end(f"The connection to {self.url} was closed.")

    async def _read_all(self) -> None:
        """The one reader: every message to its request's queue; at the end, every waiting call told."""
        from websockets.exceptions import ConnectionClosed

        assert self._ws is not None
        ws = self._ws
        try:
            async for raw in ws:
                try:
                    message = json.loads(raw)
                except ValueError:
                    logger.warning("a WebSocket message that is not JSON was ignored: %.200r", raw)
                    continue
                if isinstance(message, dict):
                    self._route(message)
        except ConnectionClosed:
            pass  # why is read below
        except Exception:  # the reader must not end silently: every waiting call would wait for ever
            logger.exception("reading %s failed", self.url)
        if self._closing:
            self._end(f"The connection to {self.url} was closed.")
        elif ws.protocol.close_rcvd is not None:
            close = ws.protocol.close_rcvd
            self._end(f"The server closed the connection to {self.url} ({close.code}"
                      f"{' ' + close.reason if close.reason else ''}).")
        else:
            self._end(f"The connection to {self.url} broke.")

    def _route(self, message: dict[str, Any]) -> None:
        request_id = message.get("request_id")
        request = self._pending.get(request_id) if isinstance(request_id, str) else None
        if request is None:
            if request_id is None and message.get("event") == ERROR:
                logger.warning("the server refused a message of no waiting call: %s", message.get("data"))
            return  # a stream its caller left (the run goes on), or the server's `authenticated`
        request.queue.put_nowait(message)

    def _end(self, why: str) -> None:
        if self._ended is not None:
            return
        self._ended = why
        for request in self._pending.values():
            request.queue.put_nowait(_GONE)

    def _gone(self) -> AgentConnectionError:
        # A new error for each call that raises it: one instance raised in many tasks would pile up tracebacks.
        return AgentConnectionError(self._ended or f"The connection to {self.url} is not open.")

    # --- requests --------------------------------------------------------------------------------------------

    async def _send(self, body: Mapping[str, Any]) -> tuple[str, _Request]:
        """Send one request; returns its id and its queue. The caller removes it from `_pending` when done."""
        if self._ws is None or self._ended is not None:
            raise self._gone()
        from websockets.exceptions import ConnectionClosed

        request_id, request = str(next(self._ids)), _Request()
        text = json.dumps({**body, "request_id": request_id}, ensure_ascii=False, separators=(",", ":"))
        self._pending[request_id] = request
        try:
            try:
                await self._ws.send(text)
            except ConnectionClosed:
                # The reader learns why (the server's close code) as it ends: what the error then says.
                if self._reader is not None:
                    await asyncio.wait([self._reader], timeout=5.0)
                raise self._gone() from None
        except BaseException:  # not sent, or its caller gave up (cancelled): nothing is to be routed to it
            self._pending.pop(request_id, None)
            raise
        return request_id, request

    async def _next(self, request: _Request) -> dict[str, Any]:
        message = await request.queue.get()
        if message is _GONE:
            raise self._gone()
        return message

    async def stream(self, payload: Mapping[str, Any]) -> AsyncGenerator[SSEEvent, None]:
        """One run's events, as AgentClient.stream yields them: `agent_start` … `agent_end`; a failed (or
        cancelled) run's `error` event comes last, not raised. Raises AgentHTTPError (refused),
        AgentConnectionError (the connection ended), AgentTimeoutError (past `timeout`).

        Leaving the loop early leaves the run as an HTTP client's disconnect would: it goes on, unless its payload
        says `"on_disconnect": "cancel"` (then it is cancelled on this connection)."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        request_id: str | None = None
        run: dict[str, Any] = {}  # agent_start's data: what to cancel if the caller leaves
        ended = False
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    request_id, request = await self._send(payload)
            except TimeoutError:
                raise self._late() from None
            while True:
                try:
                    async with asyncio.timeout_at(deadline):  # never spans the `yield` below
                        message = await self._next(request)
                except TimeoutError:
                    raise self._late() from None
                if _is_refusal(message):
                    raise _refusal(message)
                event_type = str(message.get("event"))
                data = message.get("data")
                event_id = message.get("id")
                event = encode_frame(event_type, data, event_id if isinstance(event_id, int) else None)
                if event_type == AGENT_START and isinstance(data, dict):
                    run = data
                ended = event_type in TERMINAL_EVENTS or (
                    event_type == "ag_ui" and isinstance(data, dict) and data.get("type") in AG_UI_ENDS)
                yield event
                if ended:
                    return
        finally:
            if request_id is not None:
                self._pending.pop(request_id, None)
            if not ended and run.get("run_id") and payload.get("on_disconnect") == "cancel":
                self._leave(run)

    def _late(self) -> AgentTimeoutError:
        return AgentTimeoutError(f"The agent did not finish within the {self.timeout:g} s timeout.")

    def _leave(self, run: Mapping[str, Any]) -> None:
        """Cancel a run whose caller left its stream, on a task of its own: the caller is not kept waiting."""
        if self._ended is not None:
            return  # the server saw the socket go: it cancelled the run itself

        async def cancel() -> None:
            try:
                await self.cancel(run["session_id"], run["run_id"], actor_id=run.get("actor_id"))
            except AgentClientError:
                pass  # the run had ended meanwhile (no_active_run), or the connection did

        task = asyncio.ensure_future(cancel())
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    async def invoke(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """One turn's result `{output, session_id, actor_id, run_id, steps, metrics}`; AgentStreamError if it
        failed, as AgentClient.invoke."""
        return await fold(self.stream(payload), AgentStreamError.from_event, AgentStreamError.incomplete)

    async def _request(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """An action the server answers with one `result` (cancel, status …): its `data`."""
        body = {key: value for key, value in body.items() if value is not None}
        message = await self._exchange(body, repr(body.get("action")))
        data = message.get("data")
        if message.get("event") != "result" or not isinstance(data, dict):
            raise AgentClientError(f"{body.get('action')!r} is answered with a stream of events: use stream()")
        return data

    async def _exchange(self, body: Mapping[str, Any], what: str) -> dict[str, Any]:
        """Send `body`; its one answer (a refusal raised as AgentHTTPError), within the client's timeout (60 s at
        most: an action's answer does not wait for a turn)."""
        request_id: str | None = None
        try:
            async with asyncio.timeout(min(self.timeout, 60.0)):
                request_id, request = await self._send(body)
                message = await self._next(request)
        except TimeoutError:
            raise AgentTimeoutError(f"The agent did not answer {what} in time.") from None
        finally:
            if request_id is not None:
                self._pending.pop(request_id, None)
        if _is_refusal(message):
            raise _refusal(message)
        return message

    async def renew(self, token: str) -> str:
        """Give the connection a new bearer token (AUTH_MODE=jwt) before the one it holds expires: past it, the
        server refuses every message and closes the socket (4401). The token must be the same actor's (another's:
        AgentHTTPError 403 `actor_forbidden`; a token that is not valid: 401, and the socket closed). Returns the
        actor's id. Runs in flight are not interrupted."""
        authorization = token if token[:7].lower() == "bearer " else f"Bearer {token}"
        message = await self._exchange({"authorization": authorization}, "the new token")
        data = message.get("data")
        if message.get("event") != "authenticated" or not isinstance(data, dict):
            raise AgentClientError(f"The server answered a new token with {message.get('event')!r}.")
        self._headers["Authorization"] = authorization
        return str(data.get("actor_id"))

    async def cancel(self, session_id: str, run_id: str | None = None, *,
                     actor_id: str | None = None) -> dict[str, Any]:
        """Cancel the session's run in progress (`run_id`: only if it is that one), as AgentClient.cancel: its
        stream ends with the `cancelled` error event. Returns `{"session_id", "run_id", "status": "cancelled"}`."""
        return await self._request({"action": "cancel", "session_id": session_id, "run_id": run_id,
                                   "actor_id": actor_id})

    async def status(self, session_id: str, run_id: str | None = None, *,
                     actor_id: str | None = None) -> dict[str, Any]:
        """The session's run in progress or last run: `{"session_id", "run_id", "state", "last_event_id"}`."""
        return await self._request({"action": "status", "session_id": session_id, "run_id": run_id,
                                   "actor_id": actor_id})

    async def history(self, session_id: str, *, actor_id: str | None = None) -> dict[str, Any]:
        """The session's kept conversation, as AgentClient.history."""
        return await self._request({"action": "history", "session_id": session_id, "actor_id": actor_id})

    async def memories(self, *, limit: int = 20, offset: int = 0, actor_id: str | None = None) -> dict[str, Any]:
        """A page of the actor's long-term memories, as AgentClient.memories."""
        return await self._request({"action": "memories", "limit": limit, "offset": offset, "actor_id": actor_id})

    async def forget(self, key: str | None = None, *, namespace: Sequence[str] | None = None, all: bool = False,
                     actor_id: str | None = None) -> dict[str, Any]:
        """Delete the actor's memory `key` (or every one, `all=True`), as AgentClient.forget."""
        return await self._request(forget_body(key, namespace, all, actor_id))
