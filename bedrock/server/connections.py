"""uvicorn as this runtime runs it: its h11 protocol with every connection bounded in time, a cap on connections
that idle ones cannot hold, and the runtime's JSON error shape for what uvicorn would answer in plain text.

Written here because uvicorn has none of it: its keep-alive timer covers only the idle time *after* a response,
so a client that sent a request head a byte at a time (slowloris), or a head declaring a body it never sent, held
its connection as long as it liked (or 75 s); its `limit_concurrency` answers a plain-text 503 and counts idle
connections as much as busy ones (50 idle sockets kept every other client out for 75 s at MAX_CONNECTIONS=50);
and bytes h11 cannot parse get a plain-text 400. An invocation's body is bounded by JSONBodyGuard
(`bedrock.server.body`) while its app reads it, where an ASGI response (408) can still be sent.

The policy. A connection not in the app's hands waits for one thing, and each has a bound:
  new    nothing received yet                      REQUEST_READ_TIMEOUT_S  (a client opens one to send at once)
  head   part of a request's head                  REQUEST_READ_TIMEOUT_S from its first byte (a first request's:
                                                   from the connection's start), then a JSON 408
  rest   the rest of a body, its response sent     REQUEST_READ_TIMEOUT_S from the response's end (any route:
         (the app did not read it)                 a GET /ping with a Content-Length it never sends)
  idle   the next request                          KEEPALIVE_TIMEOUT_S (75 s: longer than common clients' pools,
                                                   so a reused connection is not closed under a request)
No bound restarts on more bytes: a trickle gains nothing. While the app has the request it has no bound here (the
app's own apply: JSONBodyGuard, REQUEST_TIMEOUT_S, the SSE stall bound).
Under pressure, past 3/4 of MAX_CONNECTIONS open (750 of the default 1000), the connections that wait (new, idle or
owing a rest) are closed longest waiting first once each has waited min(KEEPALIVE_TIMEOUT_S,
REQUEST_READ_TIMEOUT_S, 5 s) (of those that are not 0), as many as the open connections exceed the mark: the
quarter left keeps new clients from needing the eviction below, and closing no more than the excess spares
clients' pools the reconnections. 5 s: httpx's pools drop a connection idle that long (keepalive_expiry) and
Node's HTTP servers close one (keepAliveTimeout), so clients rarely reuse one that old, and meet that bound
anyway. At the cap, a new connection closes the one that has waited longest, whatever its age, and is served;
only when every connection is busy (the app has its request, or a head is under way) is it refused with the JSON
503. So N sockets that only wait cannot keep a new client out at all, and N that send heads slowly for at most
REQUEST_READ_TIMEOUT_S.

uvicorn internals relied on (uvicorn 0.54.0 and h11 0.16.0, locked in requirements.lock; requirements.txt bounds
uvicorn below 0.55, and tests/test_dependencies.py and tests/server/test_connections.py fail if one of these moves):
- `H11Protocol.conn` (the h11.Connection: `their_state`, `trailing_data`), `.cycle` (the request in flight:
  `response_started`, `response_complete`), `.connections` (the server's open connections, a set: its size is
  the cap's count), `.server_state` (one per server: the idle connections' registry is kept on it), `.loop`;
- `on_response_complete`: called when a response's last byte is written (after uvicorn arms its keep-alive timer,
  which ours replaces: `_unset_keepalive_if_required` cancels it);
- `send_400_response(msg)`: what `handle_events` calls on h11.RemoteProtocolError (after logging `msg`);
- a WebSocket upgrade hands the transport to another protocol (`transport.get_protocol()` is then not this one).
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from http import HTTPStatus
from typing import Any, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from bedrock.config import Settings
from bedrock.server.logs import uvicorn_log_config
from bedrock.errors import AgentError

WaitsFor = Literal["new", "head", "rest", "idle"]

# Under pressure (past HIGH_WATER of MAX_CONNECTIONS) a connection waits at most this long for its client; see above.
PRESSURE_WAIT_S = 5.0
HIGH_WATER = 0.75


def _raw_response(error: AgentError) -> bytes:
    """A whole HTTP/1.1 response written before (or without) any request: h11 cannot, so bytes by hand."""
    body = json.dumps(error.to_dict()).encode()
    reason = HTTPStatus(error.status).phrase
    head = (f"HTTP/1.1 {error.status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n")
    return head.encode() + body


class _WaitingConnections:
    """One server's connections that wait for their client (new, idle or owing a rest), longest waiting first,
    and the reaper that closes them after `limit_s` while more than `high_water` connections are open.

    An OrderedDict: adding, removing and finding the oldest are O(1) each, so neither the cap nor the reaper scans
    the open connections (at the cap, where a flood's every accept lands, a scan would cost O(MAX_CONNECTIONS) each).
    """

    def __init__(self, protocol: BoundedH11Protocol) -> None:
        self.loop = protocol.loop
        self.connections = protocol.connections
        self.high_water = int(protocol.max_connections * HIGH_WATER)
        self.limit_s = protocol.pressure_wait_s()
        self.since: OrderedDict[BoundedH11Protocol, float] = OrderedDict()
        self.reaper: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, protocol: BoundedH11Protocol) -> _WaitingConnections:
        """The registry of `protocol`'s server (made by its first connection)."""
        waiting = getattr(protocol.server_state, "bedrock_waiting", None)
        if waiting is None:
            state = protocol.server_state
            waiting = state.bedrock_waiting = cls(protocol)  # type: ignore[attr-defined]  # ours, on uvicorn's state
        return waiting

    def add(self, conn: BoundedH11Protocol) -> None:
        self.since[conn] = self.loop.time()
        if self.reaper is None and len(self.connections) > self.high_water:
            self._reap()

    def discard(self, conn: BoundedH11Protocol) -> None:
        self.since.pop(conn, None)

    def close_oldest(self) -> bool:
        """Close the connection that has waited longest; False when none waits (every connection is busy)."""
        oldest = self._oldest()
        if oldest is not None:
            self._close(oldest[0])
        return oldest is not None

    def _oldest(self) -> tuple[BoundedH11Protocol, float] | None:
        """The connection that has waited longest and since when (dropping any already closing)."""
        while self.since:
            conn, since = next(iter(self.since.items()))
            if not conn.transport.is_closing():
                return conn, since
            del self.since[conn]
        return None

    def _close(self, conn: BoundedH11Protocol) -> None:
        del self.since[conn]
        conn.transport.close()

    def _reap(self) -> None:
        """Past the mark: close the longest waiting, once each has waited `limit_s`, as many as the open connections
        exceed the mark; then wake when the next one will have waited that long (none: `add` wakes it again)."""
        self.reaper = None
        excess = len(self.connections) - self.high_water
        now = self.loop.time()
        while excess > 0 and (oldest := self._oldest()) is not None:
            conn, since = oldest
            if since + self.limit_s > now:
                self.reaper = self.loop.call_at(since + self.limit_s, self._reap)
                return
            self._close(conn)
            excess -= 1


class BoundedH11Protocol(H11Protocol):
    """H11Protocol with every wait bounded (`head_timeout_s`: REQUEST_READ_TIMEOUT_S, `keepalive_timeout_s`),
    `max_connections` that waiting connections cannot hold, and JSON errors. Configure with
    `bounded_protocol(settings)`."""

    head_timeout_s: float = 10.0
    keepalive_timeout_s: float = 75.0
    max_connections: int = 1000

    @classmethod
    def pressure_wait_s(cls) -> float:
        """min(KEEPALIVE_TIMEOUT_S, REQUEST_READ_TIMEOUT_S, 5 s) of those that bound anything (0 does not: an
        unbounded read, or a keep-alive of 0, which closes each connection after its response anyway)."""
        return min(t for t in (cls.keepalive_timeout_s, cls.head_timeout_s, PRESSURE_WAIT_S) if t > 0)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # H11Protocol's own
        self._timer: asyncio.TimerHandle | None = None
        self._waiting_for: WaitsFor | None = None
        super().connection_made(transport)
        self._waiting = _WaitingConnections.of(self)
        if len(self.connections) > self.max_connections and not self._waiting.close_oldest():
            crowded = AgentError("server_busy", "The server has too many open connections; retry shortly.")
            transport.write(_raw_response(crowded))
            transport.close()
            return
        self._update()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._update()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._unset_keepalive_if_required()  # uvicorn's keep-alive timer: ours bounds the wait instead
        self._update()

    def send_400_response(self, msg: str) -> None:
        """Bytes h11 cannot parse (uvicorn has logged `msg`): the catalog's JSON 400, and the connection closes."""
        if not self._request_answered():
            self.transport.write(_raw_response(AgentError("bad_request")))
        self.transport.close()

    def _request_answered(self) -> bool:
        """Whether the request the bad bytes belong to has a response begun, or sent while its body was still
        owed: a second cannot follow (uvicorn's own 400 raised h11.LocalProtocolError there), so it only closes."""
        cycle = self.cycle
        in_flight = cycle is not None and cycle.response_started and not cycle.response_complete
        return in_flight or self._waiting_for == "rest"

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)
        # uvicorn cancels its keep-alive timer only when the connection closed cleanly (exc is None). A client that
        # resets the connection (closing its socket with unread data: what every client that stopped reading
        # does) left the timer armed, holding the whole connection for timeout_keep_alive (75 s): +11 MB a round
        # of 100 such clients in bench/soak.py, growing linearly. (uvicorn arms it only in on_response_complete,
        # which now cancels it at once; this stays as the guard for that leak should that change.)
        self._unset_keepalive_if_required()

    def _what_it_waits_for(self) -> WaitsFor | None:
        """What the connection waits for from its client; None while the app has its request (or it is gone)."""
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return None
        if self.cycle is not None and not self.cycle.response_complete:
            return None
        if self.conn.their_state is not h11.IDLE:
            return "rest"  # the body after its response (or a state on its way to closing): bounded all the same
        if self.conn.trailing_data[0]:
            return "head"
        return "new" if self.cycle is None else "idle"

    def _update(self) -> None:
        """After anything that can change what the connection waits for: its timer and its place among the
        waiting. Unchanged, nothing restarts (a bound runs from the wait's start)."""
        waiting_for = self._what_it_waits_for()
        if waiting_for == self._waiting_for:
            return
        if (self._waiting_for, waiting_for) == ("new", "head"):
            self._waiting_for = "head"  # a first request's head: its bound runs on from the connection's start
            self._waiting.discard(self)
            return
        self._stop_waiting()
        self._waiting_for = waiting_for
        if waiting_for is None:
            return
        if waiting_for != "head":
            self._waiting.add(self)  # a head under way is a request arriving: never evicted, only timed
        limit = self.keepalive_timeout_s if waiting_for == "idle" else self.head_timeout_s
        if limit or waiting_for == "idle":  # REQUEST_READ_TIMEOUT_S=0: no bound; KEEPALIVE_TIMEOUT_S=0: at once
            self._timer = self.loop.call_later(limit, self._waited_too_long)

    def _stop_waiting(self) -> None:
        self._waiting_for = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting.discard(self)

    def _waited_too_long(self) -> None:
        self._timer = None
        if self._what_it_waits_for() != self._waiting_for:
            self._update()  # it changed unseen: bound what it waits for now
            return
        if self._waiting_for == "head":
            slow = AgentError("request_timeout", f"The request was not received within {self.head_timeout_s:g} s.")
            self.transport.write(_raw_response(slow))
        self.transport.close()
        self._stop_waiting()


def bounded_protocol(settings: Settings) -> type[H11Protocol]:
    """BoundedH11Protocol with REQUEST_READ_TIMEOUT_S, KEEPALIVE_TIMEOUT_S and MAX_CONNECTIONS."""
    return type("BoundedH11Protocol", (BoundedH11Protocol,), {
        "head_timeout_s": settings.request_read_timeout_s, "keepalive_timeout_s": settings.keepalive_timeout_s,
        "max_connections": settings.max_connections,
    })


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What every server of the app runs with (`python -m bedrock.agent_runtime`, tests' live servers)."""
    return {
        "http": bounded_protocol(settings),
        # The protocol bounds idle connections itself (KEEPALIVE_TIMEOUT_S); uvicorn's setting says the same.
        "timeout_keep_alive": settings.keepalive_timeout_s,
        # /ws: a message is bounded as a request body is (the protocol closes with 1009 past it, before buffering
        # more); pings find dead peers. No per-message deflate: a token's message is ~100 bytes, which deflate
        # barely shrinks for CPU on every message (and a compressed message is a small bomb's way in).
        "ws_max_size": settings.max_request_bytes,
        "ws_ping_interval": settings.ws_ping_interval_s or None,
        "ws_ping_timeout": settings.ws_ping_interval_s or None,
        "ws_per_message_deflate": False,
        # Graceful shutdown outlasts SHUTDOWN_GRACE_S, so open streams end with their error event, not a cut.
        "timeout_graceful_shutdown": settings.shutdown_grace_s + 5,
        **({"log_config": log_config} if (log_config := uvicorn_log_config(settings)) else {}),
    }
