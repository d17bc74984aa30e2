"""build_app(settings): the AgentCore app — its middleware, routes, entrypoint and lifespan — around a Runtime.

    POST /invocations    AgentCore's route (the SDK's request context, then our entrypoint)
    POST /invoke         local: the same, for the guide's clients
    POST /stream         local: the same with `"stream": true` implied
    WS   /ws             one connection, many requests: the same payloads, each event a JSON message (websocket.py)
    POST /a2a            A2A's JSON-RPC (A2A_PATH; bedrock/a2a/), its card at /a2a/.well-known/agent-card.json
    GET  /ping           Healthy, or HealthyBusy while every invocation slot is taken
    GET  /, /ui/…        local: the chat page (SERVE_UI; bedrock/server/ui.py)

A request's way in is drawn in ARCHITECTURE.md ("A request's way in").
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from bedrock_agentcore.runtime import BedrockAgentCoreApp, PingStatus
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from bedrock.a2a.app import A2AService
from bedrock.config import Settings
from bedrock.core.trace_context import incoming_trace
from bedrock.core.turn import Agent, result_of
from bedrock.server.auth import BearerAuth, TokenVerifier, verified_actor
from bedrock.server.body import JSONBodyGuard, payload_of
from bedrock.server.hosts import HostGuard
from bedrock.server.responses import DeferredJSONResponse, JSONReply, install_error_handlers, sse_response
from bedrock.server.main import default_host, prepare_process, stop_if_failed
from bedrock.server.negotiation import agui_of, prefers_event_stream
from bedrock.server.runtime import Followed, Runtime
from bedrock.server.ui import ui_routes
from bedrock.server.websocket import websocket_handler
from bedrock.wire.headers import SESSION_HEADER
from bedrock.wire.text import TextRendering

logger = logging.getLogger(__name__)

INVOCATION_PATHS = frozenset({"/invocations", "/invoke", "/stream"})


class AgentCoreApp(BedrockAgentCoreApp):
    """BedrockAgentCoreApp whose `/invocations` takes the payload JSONBodyGuard already parsed, on the server's loop.

    The SDK's own handler would read and parse the body a second time, and run an async entrypoint on a
    separate worker loop whose result (our response) is then sent from uvicorn's: every turn would hop loops.
    Its request context (request and session ids, the workload access token, forwarded headers) is still
    set by the SDK's own `_build_request_context`, as it does for every invocation.
    """

    async def _handle_invocation(self, request: Request) -> Response:
        context = self._build_request_context(request)
        return await self.handlers["main"](payload_of(request.scope), context)


def build_app(settings: Settings, *, agent: Agent | None = None, process: bool = False) -> AgentCoreApp:
    """The app for `settings`; `agent` (already built) instead of building one from the settings.

    `process`: the app is what its process serves (`bedrock.agent_runtime.app`), so its lifespan sets the
    process up (`prepare_process`: gc, allocator, our log handler) whoever serves it — `python -m`, or
    `uvicorn bedrock.agent_runtime:app` under `agentcore dev`. Apps built in tests leave the process alone.
    """
    runtime = Runtime(settings, agent)
    # A2A (A2A_PATH): its routes answer from the first request on; a2a-sdk is imported then, not at a cold start.
    a2a = A2AService(runtime, settings.a2a_path) if settings.a2a_path else None

    @asynccontextmanager
    async def lifespan(app: AgentCoreApp) -> AsyncIterator[None]:
        if process:
            prepare_process(settings)
        # Built before the first request is served, but on a worker thread: every new AgentCore session is a
        # cold start, and /ping answers while the model client, graph and checkpointer are being built.
        build = runtime.start()
        if process:  # an app embedded in someone else's server never signals their process
            build.add_done_callback(stop_if_failed)
        yield
        await runtime.stop()
        if a2a is not None:  # after the runs: an A2A task's run has ended (or been rolled back) by now
            await a2a.aclose()

    verifier = TokenVerifier(settings) if settings.auth_mode == "jwt" else None
    app = AgentCoreApp(
        lifespan=lifespan,
        middleware=[
            # Outermost: a request for a Host this address does not answer (DNS rebinding) reaches nothing.
            Middleware(HostGuard, configured=settings.allowed_hosts, listening=settings.bind_host or default_host()),
            # Then: an unauthenticated caller's body is not even read (AUTH_MODE=jwt; a no-op otherwise).
            # A2A's JSON-RPC route too; its agent card stays public.
            Middleware(BearerAuth, paths=INVOCATION_PATHS | ({settings.a2a_path} if a2a else set()), verifier=verifier),
            Middleware(JSONBodyGuard, paths=INVOCATION_PATHS, max_bytes=settings.max_request_bytes,
                       read_timeout_s=settings.request_read_timeout_s),
        ],
    )
    app.state.runtime = runtime

    @app.entrypoint
    async def invoke(payload: Any, context: Any) -> Response:
        """AgentCore's `POST /invocations`."""
        raw = getattr(context, "request", None)
        return await respond(runtime, payload, getattr(context, "session_id", None),
                             verified=verified_actor(raw.scope) if raw is not None else None,
                             headers=raw.headers if raw is not None else None)

    @app.ping
    def ping() -> PingStatus | None:
        """HealthyBusy while every invocation slot is taken; else the SDK's own answer, HealthyBusy while it
        tracks an async task — a run that goes on with nobody following it."""
        return PingStatus.HEALTHY_BUSY if runtime.slots.busy else None

    runtime.track_detached(app.add_async_task, app.complete_async_task)

    async def local(request: Request) -> Response:
        """`POST /invoke` and `POST /stream` (the guide's clients); `/stream` implies `"stream": true`."""
        return await respond(runtime, payload_of(request.scope), request.headers.get(SESSION_HEADER),
                             stream=request.url.path == "/stream", verified=verified_actor(request.scope),
                             headers=request.headers)

    # One connection, many requests (bedrock/server/websocket.py); the SDK's route, the SDK's request context.
    app.websocket(websocket_handler(runtime, verifier))
    app.add_route("/invoke", local, methods=["POST"])
    app.add_route("/stream", local, methods=["POST"])
    if settings.serve_ui:
        app.router.routes.extend(ui_routes())
    if a2a is not None:
        app.router.routes.extend(a2a.routes())
    install_error_handlers(app)  # an AgentError raised anywhere on a request's way: its catalog reply
    return app


async def respond(
    runtime: Runtime, payload: Any, header_session_id: str | None = None, *, stream: bool = False,
    verified: str | None = None, headers: Mapping[str, str] | None = None,
) -> Response:
    """Validate, await the agent, check the session's owner; then act. A run takes a slot and starts as its own
    task; the reply follows it — the SSE stream (our events, or their text), or a JSON reply whose body waits
    for the run's end. Every refusal comes before a stream starts, as a JSON error. From the request's
    `headers`: `Last-Event-ID` (resume) and `Accept` (preferring an event stream: stream without `"stream"`)."""
    headers = headers or {}
    payload, agui = agui_of(runtime.settings, payload)
    request = runtime.validate(payload, header_session_id, verified, headers.get("last-event-id"),
                               prefers_events=prefers_event_stream(headers.get("accept")))
    with incoming_trace(headers):  # the caller's trace becomes the parent of the turn's span
        outcome = await runtime.dispatch(request, "http")
    if not isinstance(outcome, Followed):
        return JSONReply(outcome)
    settings = runtime.settings
    if stream or request.stream:
        render = (agui.render if agui is not None
                  else TextRendering().render if request.stream_format == "text" else None)
        return sse_response(outcome.follower, settings.sse_ping_interval_s, runtime.shutdown_event(),
                            settings.shutdown_grace_s, settings.sse_stall_timeout_s, render=render)
    return DeferredJSONResponse(lambda: result_of(outcome.follower, outcome.start))
