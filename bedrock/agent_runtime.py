"""The AgentCore Runtime entrypoint: request → validate → graph → events → wire.

`POST /invocations` (AgentCore), and locally `POST /invoke` and `POST /stream`, take the payload in the
README's "Payload" table (`bedrock/payload.py`). `"stream": true` answers with an SSE stream; otherwise with
one JSON object. In-process: `stream_agent(payload)`, `ainvoke_agent(payload)`, `invoke_agent(payload)`.
"""

from __future__ import annotations

if __name__ == "__main__":
    # Every new AgentCore session starts here from cold. Its imports leave ~230k objects that the cyclic
    # collector would scan again and again while they load (~130 ms) and while the model client is built
    # (~90 ms): collect nothing until they are loaded, then freeze them out of later collections (they live
    # as long as the process anyway). See bench/RESULTS_cold_start.md.
    import gc

    gc.disable()

if not __package__:  # run as a script, or imported flat from inside bedrock/
    import _pathfix  # noqa: F401

import asyncio
import json
import logging
import os
import signal
import threading
from concurrent.futures import Future
from contextlib import aclosing, asynccontextmanager
from typing import Any, AsyncIterator, Iterable

import anyio
from bedrock_agentcore.runtime import BedrockAgentCoreApp, PingStatus
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from bedrock.agent import Agent
from bedrock.capacity import InvocationSlots, SlotResponse
from bedrock.config import Settings
from bedrock.errors import AgentError, classify
from bedrock.executor import ElasticThreadPool
from bedrock.events import ERROR, EventSequence, SSEEvent, utc_timestamp
from bedrock.graph import build_graph
from bedrock.identity import BearerAuth, TokenVerifier, bind_actor, verified_actor
from bedrock.memory import make_checkpointer
from bedrock.middleware import JSONBodyGuard
from bedrock.models import make_model
from bedrock.payload import AgentRequest, PayloadError, parse_request
from bedrock.responses import DeferredJSONResponse, error_response, sse_response
from bedrock.tools import default_tools

SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
logger = logging.getLogger("bedrock.agent_runtime")
settings = Settings.from_env()
slots = InvocationSlots(settings.max_concurrent_invocations)
_build_lock = threading.Lock()
_start_lock = threading.Lock()
SERVER_BUSY = AgentError("server_busy", "The server is at capacity; retry shortly.", "ServerBusy", True, 503)
INTERNAL = AgentError("internal_error", "The agent failed unexpectedly; see the server logs.", "InternalError")
BUILD_FAILED = AgentError("internal_error", "The agent could not be started; see the server logs.", "InternalError")


def build_agent(settings: Settings, endpoint_url: str | None = None) -> Agent:
    """Model, tools, checkpointer and graph, as configured."""
    checkpointer = make_checkpointer(settings)
    graph = build_graph(make_model(settings, endpoint_url), default_tools(), checkpointer, settings.history_max_messages)
    return Agent(graph, settings)


@asynccontextmanager
async def lifespan(app: BedrockAgentCoreApp) -> AsyncIterator[None]:
    # Built before the first request is served, but on a worker thread: every new AgentCore session is a
    # cold start, and /ping answers while the model client, graph and checkpointer are being built.
    build = start_build()
    build.add_done_callback(_stop_if_failed)
    # ChatBedrockConverse streams by running each blocking read on the loop's default executor, holding a
    # thread per streaming turn; the stock size (cores + 4) would cap concurrent model streams at 6 here.
    # Threads retire after 30 s idle, so a burst does not leave its peak's threads (and memory) behind.
    threads = settings.model_threads or settings.max_concurrent_invocations + 16
    asyncio.get_running_loop().set_default_executor(ElasticThreadPool(threads, idle_s=30, thread_name_prefix="model"))
    yield
    await asyncio.wait([asyncio.wrap_future(build)], timeout=settings.shutdown_grace_s)  # close what was built
    endpoint = getattr(app.state, "offline_endpoint", None)
    if endpoint is not None:
        endpoint.stop()
    agent = getattr(app.state, "agent", None)
    if agent is not None:
        await agent.drain(settings.shutdown_grace_s)  # turns still rolling back write before the saver closes
    close = getattr(agent and agent.graph.checkpointer, "close", None)
    if callable(close):
        close()


INVOCATION_PATHS = frozenset({"/invocations", "/invoke", "/stream"})
app = BedrockAgentCoreApp(
    lifespan=lifespan,
    middleware=[
        # Outermost: an unauthenticated caller's body is not even read (AUTH_MODE=jwt; a no-op otherwise).
        Middleware(BearerAuth, paths=INVOCATION_PATHS, verifier=TokenVerifier(settings) if settings.auth_mode == "jwt" else None),
        Middleware(
            JSONBodyGuard,
            paths=INVOCATION_PATHS,
            max_bytes=settings.max_request_bytes,
            read_timeout_s=settings.request_read_timeout_s,
        )
    ],
)


def get_agent() -> Agent:
    """The process's agent, built once on first use."""
    agent = getattr(app.state, "agent", None)
    if agent is None:
        with _build_lock:
            agent = getattr(app.state, "agent", None)
            if agent is None:
                endpoint_url = None
                if settings.model_provider == "offline":
                    # Imported here: a Bedrock cold start has no use for it.
                    from bedrock.offline_endpoint import OfflineBedrockEndpoint

                    endpoint = app.state.offline_endpoint = OfflineBedrockEndpoint(settings.offline_token_delay_ms)
                    endpoint_url = endpoint.start().url
                agent = app.state.agent = build_agent(settings, endpoint_url)
    return agent


def start_build() -> Future[Agent]:
    """Build the agent (`get_agent()`) on a worker thread, once, or again after a failure."""
    with _start_lock:
        build: Future[Agent] | None = getattr(app.state, "build", None)
        if build is None or (build.done() and build.exception() is not None):
            build = app.state.build = Future()
            build.set_running_or_notify_cancel()  # a cancelled waiter must not cancel the build
            threading.Thread(target=_run_build, args=(build,), name="agent-build", daemon=True).start()
        return build


def _run_build(build: Future[Agent]) -> None:
    try:
        build.set_result(get_agent())
    except BaseException as error:
        logger.exception("could not build the agent")
        build.set_exception(error)


def _stop_if_failed(build: Future[Agent]) -> None:
    """A server whose agent cannot be built stops, as a failed startup would, rather than answer errors."""
    if build.exception() is not None:
        os.kill(os.getpid(), signal.SIGTERM)


async def ready_agent() -> Agent:
    """The agent, awaiting its build without blocking this thread's event loop (uvicorn's or the SDK's)."""
    agent = getattr(app.state, "agent", None)
    return agent if agent is not None else await asyncio.wrap_future(start_build())


def validate(payload: Any, header_session_id: str | None = None, verified: str | None = None) -> AgentRequest:
    """Parse a payload against the runtime's settings; raises PayloadError, or ActorForbidden when a verified
    caller's payload names another actor. A verified actor is the request's actor."""
    request = parse_request(
        payload,
        header_session_id=header_session_id,
        default_actor_id=verified or settings.default_actor_id,
        max_prompt_chars=settings.max_prompt_chars,
    )
    if verified is not None:
        bind_actor(payload, verified)
    return request


async def respond(
    payload: Any, header_session_id: str | None = None, *, stream: bool = False, verified: str | None = None
) -> Response:
    """Validate, await the agent, check the session's owner, take a slot, then answer with the SSE stream or
    a JSON reply whose body runs the turn. Every refusal comes before a stream starts, as a JSON error."""
    try:
        request = validate(payload, header_session_id, verified)
    except PayloadError as error:
        return error_response(error.to_dict(), 400)
    except AgentError as error:
        return error_response(error.to_dict(), error.status)
    try:
        agent = await ready_agent()
    except Exception:
        return error_response(BUILD_FAILED.to_dict(), BUILD_FAILED.status)
    try:
        await agent.owners.check(request.session_id, request.actor_id)
    except Exception as refused:
        error = classify(refused)
        return error_response(error.to_dict(), error.status)
    if not slots.try_acquire():
        return error_response(SERVER_BUSY.to_dict(), SERVER_BUSY.status)
    if stream or request.stream:
        shutdown = anyio.Event()
        response: Response = sse_response(
            agent.stream(request, shutdown=shutdown), settings.sse_ping_interval_s, shutdown, settings.shutdown_grace_s,
            settings.sse_stall_timeout_s,
        )
    else:
        response = DeferredJSONResponse(lambda: agent.invoke(request))
    return SlotResponse(response, slots)


@app.entrypoint
async def invoke(payload: Any, context: Any) -> Response:
    """AgentCore's `POST /invocations`."""
    raw = getattr(context, "request", None)
    try:
        return await respond(payload, getattr(context, "session_id", None),
                             verified=verified_actor(raw.scope) if raw else None)
    except Exception:  # the SDK would answer {"error": str(exc)}: internals, and not our error shape
        logger.exception("invocation failed")
        return error_response(INTERNAL.to_dict(), INTERNAL.status)


@app.ping
def ping() -> PingStatus:
    """HealthyBusy while every invocation slot is taken."""
    return PingStatus.HEALTHY_BUSY if slots.busy else PingStatus.HEALTHY


async def _local_route(request: Request) -> Response:
    """`POST /invoke` and `POST /stream` (the guide's clients); `/stream` implies `"stream": true`."""
    payload = json.loads(await request.body())  # JSONBodyGuard let only valid JSON through
    return await respond(payload, request.headers.get(SESSION_HEADER), stream=request.url.path == "/stream",
                         verified=verified_actor(request.scope))


async def _internal_error(request: Request, exc: Exception) -> Response:
    """Any unhandled failure (Starlette's default is a plain-text 500): the JSON error shape, no internals."""
    logger.error("unhandled error on %s", request.url.path, exc_info=exc)
    return error_response(INTERNAL.to_dict(), INTERNAL.status)


app.add_exception_handler(Exception, _internal_error)
app.add_route("/invoke", _local_route, methods=["POST"])
app.add_route("/stream", _local_route, methods=["POST"])


async def stream_agent(payload: dict[str, Any], *, callbacks: Iterable[Any] | None = None) -> AsyncIterator[SSEEvent]:
    """Run one turn in-process, yielding its SSE events; a bad payload yields one `error` event."""
    try:
        request = validate(payload)
    except PayloadError as error:
        data = {"error": error.message, "type": "PayloadError", "code": error.code, "retryable": False,
                "details": error.details, "timestamp": utc_timestamp()}
        yield EventSequence().emit(ERROR, data)
        return
    # Closed with this generator (a caller that stops early, or is cancelled), not whenever the collector
    # gets to it: until it is closed its turn holds the session.
    async with aclosing(get_agent().stream(request, callbacks or ())) as events:
        async for event in events:
            yield event


async def ainvoke_agent(payload: dict[str, Any], *, callbacks: Iterable[Any] | None = None) -> dict[str, Any]:
    """Run one turn in-process and return its result dict; raises PayloadError or AgentError."""
    return await get_agent().invoke(validate(payload), callbacks or ())


async def _invoke_and_settle(payload: dict[str, Any], callbacks: Iterable[Any] | None) -> dict[str, Any]:
    try:
        return await ainvoke_agent(payload, callbacks=callbacks)
    finally:
        # A kept turn's checkpoint pruning runs after its result, on this loop; asyncio.run would cancel it.
        await get_agent().drain()


def invoke_agent(payload: dict[str, Any], *, callbacks: Iterable[Any] | None = None) -> dict[str, Any]:
    """Synchronous `ainvoke_agent`, for scripts (inside a running event loop, await `ainvoke_agent`)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_invoke_and_settle(payload, callbacks))
    raise RuntimeError("invoke_agent() cannot run inside an event loop; use `await ainvoke_agent(payload)`")


__all__ = ["app", "invoke", "stream_agent", "invoke_agent", "ainvoke_agent", "AgentError", "PayloadError"]

if __name__ == "__main__":
    gc.freeze()
    gc.enable()
    from bedrock.allocator import tune_allocator

    tune_allocator()  # freed memory goes back to the system after bursts (bedrock/allocator.py)
    # Our loggers only: the SDK's logger already has its own JSON handler.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("bedrock").addHandler(handler)
    logging.getLogger("bedrock").setLevel(settings.log_level)
    model = "offline rule-based stand-in (not an LLM)" if settings.model_provider == "offline" else settings.bedrock_model_id
    logger.info("serving POST /invocations on port %d; model: %s", settings.port, model)
    # BIND_HOST overrides the SDK's choice (0.0.0.0 in a container, else 127.0.0.1), e.g. for loopback-only runs.
    from bedrock.http_server import uvicorn_options

    app.run(port=settings.port, host=settings.bind_host or None, **uvicorn_options(settings))
