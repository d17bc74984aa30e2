"""Which `Host` the app answers: reached on a loopback address, only loopback names (unless ALLOWED_HOSTS says).

DNS rebinding: a page of `attacker.example` whose name is made to resolve to 127.0.0.1 is, to the browser, the same
origin as this server; it could then send JSON and read the answers (sessions' history, an actor's memories, with
AUTH_MODE=none), which the JSON-only bodies and the WebSocket origin check cannot stop — its requests carry
`Host: attacker.example`. A server listening on loopback is only ever reached as localhost, 127.0.0.1 or [::1], so
any other Host is refused (400 `host_not_allowed`, the catalog's JSON; a WebSocket handshake likewise, before the
upgrade). A server listening elsewhere (a container's 0.0.0.0, where AgentCore's proxy chooses the Host) answers
every Host unless ALLOWED_HOSTS lists some. Where a request arrived is its own (ASGI's `server`), so the guard holds
however the app is served (`python -m bedrock.agent_runtime`, uvicorn under `agentcore dev`) and leaves an app
reached in-process (no address) alone.

Hand-written: Starlette's TrustedHostMiddleware answers plain text ("Invalid host header"), not the catalog's one
error shape, and its parser is private (starlette._utils).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from bedrock.errors import AgentError
from bedrock.server.responses import DENIAL, error_response

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def allowed_hosts(configured: Iterable[str], listening: str, arrived: str) -> tuple[str, ...]:
    """The Host names answered, () for every one: ALLOWED_HOSTS if set (`*`: every one); else the loopback names
    for a request that arrived on a loopback address of a server listening on one (BIND_HOST, else the SDK's
    choice). Both: a container listens on 0.0.0.0, and what reaches it over its own loopback (a proxy beside it)
    names whatever Host it was asked for."""
    configured = tuple(configured)
    if configured:
        return () if "*" in configured else configured
    return LOOPBACK_HOSTS if is_loopback(listening) and is_loopback(arrived) else ()


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def host_name(header: str | None) -> str | None:
    """`host[:port]` or `[v6]:port` → the host, lowercased, without brackets or port; None if there is none."""
    if not header:
        return None
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 1 else None
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostGuard:
    """ASGI middleware: a request or handshake whose Host is not one answered where it arrived (`allowed_hosts`) is
    refused before the app sees it. `listening`: the address the server listens on (BIND_HOST, else the SDK's)."""

    def __init__(self, app: ASGIApp, configured: Iterable[str] = (), listening: str = "") -> None:
        self.app = app
        self.configured, self.listening = tuple(configured), listening
        self._by_address: dict[str, frozenset[str]] = {}  # an address a request arrived on → the Hosts answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._allows(scope):
            await self.app(scope, receive, send)
            return
        error = AgentError("host_not_allowed")
        if scope["type"] == "http":
            await error_response(error)(scope, receive, send)
        elif DENIAL in scope.get("extensions", {}):
            await WebSocket(scope, receive, send).send_denial_response(error_response(error))
        else:
            await WebSocket(scope, receive, send).close(4400, "host not allowed")

    def _allows(self, scope: Scope) -> bool:
        server = scope.get("server")
        address = str(server[0]) if server else ""  # (a Unix socket's path; none in-process: never loopback)
        allowed = self._by_address.get(address)
        if allowed is None:
            allowed = self._by_address[address] = frozenset(allowed_hosts(self.configured, self.listening, address))
        if not allowed:
            return True
        for name, value in scope["headers"]:
            if name == b"host":
                return host_name(value.decode("latin-1")) in allowed
        return False
