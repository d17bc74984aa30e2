"""A2A's routes, and the standalone app of an A2A-protocol container.

    POST {A2A_PATH}                                A2A's JSON-RPC (a2a-sdk's dispatcher: v1.0's methods, and v0.3's
                                                   `message/send`, `tasks/resubscribe` …); AUTH_MODE=jwt: a bearer
                                                   token (BearerAuth, as /invocations)
    GET  {A2A_PATH}/.well-known/agent-card.json    the agent card, public

`A2AService` holds them for one Runtime, mounted by the app (bedrock/server/app.py) under A2A_PATH. Nothing of
a2a-sdk is imported until the first A2A request (its import costs a cold start, which every AgentCore session pays):
that request builds the server (server.py) once the agent is built. A JSON-RPC body is read here first, bounded as
/invocations' is (a JSON content type, MAX_REQUEST_BYTES, REQUEST_READ_TIMEOUT_S: 415, 413, 408 as the catalog's
JSON errors); a2a-sdk then parses it (its own JSON-RPC errors).

`build_a2a_app`: AgentCore's A2A contract — the same routes at the root of port 9000 (A2A_PORT), and `/ping` —
served by `python -m bedrock.a2a` as `python -m bedrock.agent_runtime` serves the HTTP one (bedrock/server/main.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive

from bedrock.config import Settings
from bedrock.errors import AgentError
from bedrock.server.auth import BearerAuth, TokenVerifier
from bedrock.server.body import json_content_type
from bedrock.server.hosts import HostGuard
from bedrock.server.main import default_host, prepare_process, stop_if_failed
from bedrock.server.responses import install_error_handlers
from bedrock.server.runtime import Runtime

if TYPE_CHECKING:
    from bedrock.a2a.server import A2AServer
    from bedrock.core.turn import Agent

AGENT_CARD_PATH = "/.well-known/agent-card.json"  # a2a-sdk's AGENT_CARD_WELL_KNOWN_PATH (A2A 0.3 and 1.0)


class A2AService:
    """A2A for `runtime`: the JSON-RPC endpoint at `path` ("" : the root) and the card below it, built on first use."""

    def __init__(self, runtime: Runtime, path: str) -> None:
        self.runtime, self.settings = runtime, runtime.settings
        self.rpc_path = path or "/"
        self.card_path = path + AGENT_CARD_PATH
        self._server: A2AServer | None = None
        self._building = asyncio.Lock()

    def routes(self) -> list[Route]:
        return [Route(self.rpc_path, self.rpc, methods=["POST"]),
                Route(self.card_path, self.agent_card, methods=["GET"])]

    async def server(self) -> A2AServer:
        """The A2A server, built once the agent is (a refusal if it cannot be: tried again on the next request)."""
        if self._server is None:
            async with self._building:
                if self._server is None:
                    agent = await self.runtime.serving_agent()
                    from bedrock.a2a.server import A2AServer  # a2a-sdk: loaded now, on the first A2A request

                    self._server = A2AServer(self.runtime, agent, self.rpc_path, self.card_path)
        return self._server

    async def rpc(self, request: Request) -> Response:
        body = await read_body(request, self.settings)
        if body is None:
            return Response(status_code=400)  # the client left before its body was whole: nobody reads this
        server = await self.server()
        return await server.rpc(Request(request.scope, _replay(body, request.receive)))

    async def agent_card(self, request: Request) -> Response:
        server = await self.server()
        url = self.settings.a2a_url or str(request.base_url).rstrip("/") + self.rpc_path
        return await server.agent_card(request, url)

    async def aclose(self) -> None:
        if self._server is not None:
            await self._server.aclose()


async def read_body(request: Request, settings: Settings) -> bytes | None:
    """The request's whole body, as JSONBodyGuard would take it for /invocations (bedrock/server/body.py): a JSON
    content type (else 415: what a web page can send another site without a preflight is not taken), at most
    MAX_REQUEST_BYTES (413), all of it within REQUEST_READ_TIMEOUT_S (408). None: the client left meanwhile."""
    headers = request.headers
    if not json_content_type(headers.get("content-type", "").encode("latin-1") or None, "origin" in headers):
        raise AgentError("unsupported_media_type")
    too_large = AgentError("payload_too_large", f"The request body is larger than {settings.max_request_bytes} bytes.")
    declared = headers.get("content-length", "0")
    if declared.isdigit() and int(declared) > settings.max_request_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    timeout = settings.request_read_timeout_s or None
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > settings.max_request_bytes:
                    raise too_large
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise AgentError("request_timeout", f"The request body was not received within {timeout:g} s.") from None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` first, then what the connection sends (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def build_a2a_app(settings: Settings, *, agent: Agent | None = None, process: bool = False) -> Starlette:
    """The app of an A2A-protocol container: JSON-RPC at `/`, the card at /.well-known/agent-card.json, `/ping`.

    `process`: the app is what its process serves (`python -m bedrock.a2a`): its lifespan sets the process up, and a
    failed build stops it, as the HTTP app's does (bedrock/server/app.py)."""
    runtime = Runtime(settings, agent)
    a2a = A2AService(runtime, "")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if process:
            prepare_process(settings, "A2A JSON-RPC on /")
        build = runtime.start()
        if process:
            build.add_done_callback(stop_if_failed)
        yield
        await runtime.stop()
        await a2a.aclose()

    async def ping(request: Request) -> Response:
        """AgentCore's health check, as the SDK answers it: HealthyBusy while a run is in progress (a task that
        goes on with nobody following it still keeps the session)."""
        busy = runtime.slots.busy or bool(runtime.runs.running())
        return JSONResponse({"status": "HealthyBusy" if busy else "Healthy", "time_of_last_update": int(time.time())})

    verifier = TokenVerifier(settings) if settings.auth_mode == "jwt" else None
    app = Starlette(
        routes=[Route("/ping", ping, methods=["GET"]), *a2a.routes()],
        middleware=[Middleware(HostGuard, configured=settings.allowed_hosts,  # as the main app's (DNS rebinding)
                               listening=settings.bind_host or default_host()),
                    Middleware(BearerAuth, paths=frozenset({a2a.rpc_path}), verifier=verifier)],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    return app


def serve_a2a(settings: Settings) -> None:
    """`python -m bedrock.a2a`: serve the A2A app on A2A_PORT (BIND_HOST, else the SDK's choice) until SIGTERM."""
    from dataclasses import replace

    from bedrock.server.main import serve

    app = build_a2a_app(settings, process=True)
    serve(app, replace(settings, port=settings.a2a_port, serve_ui=False), serving="A2A JSON-RPC on /")

