"""The dependencies' private APIs this code relies on, and the lock files it is installed from.

Part 1: every private API of a dependency that bedrock/ uses (underscored, or an undocumented attribute it reaches
into), checked in the shape it is used in. Each failure names the file that relies on it and what moved: see
ARCHITECTURE.md, "Private APIs of dependencies", before raising that dependency's upper bound in requirements.txt and
pyproject.toml. Shapes are checked by signature where a call is all that is relied on, and by a small run of the
dependency's own code where what matters is that it calls the hook (uvicorn, sse-starlette, langchain-core).

Part 2: the lock files (`make lock` writes them): the venv is what requirements-dev.lock pins, requirements.txt and
pyproject.toml agree with the locks, and the runtime lock (the image's) is the dev lock's releases (the tests').
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import io
import re
import sqlite3
import threading
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"


def relied_on(ok: Any, where: str, api: str, detail: str) -> None:
    """Fail loudly, naming the file that relies on `api` and what changed."""
    if not ok:
        pytest.fail(f"{where} relies on {api}: {detail}. A dependency upgrade moved it; see ARCHITECTURE.md, "
                    f"'Private APIs of dependencies'.", pytrace=False)


def users(pattern: str) -> str:
    """The files under bedrock/ whose code matches `pattern`: where an API is relied on, wherever that code moves."""
    found = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "bedrock").rglob("*.py")
                   if re.search(pattern, path.read_text(encoding="utf-8")))
    return ", ".join(found) or "bedrock/ (no file matches any more: drop this check and its row in ARCHITECTURE.md)"


def params(fn: Callable[..., Any]) -> list[tuple[str, Any]]:
    """(name, kind) of each parameter, `self` included."""
    return [(p.name, p.kind) for p in inspect.signature(fn).parameters.values()]


POS = inspect.Parameter.POSITIONAL_OR_KEYWORD
KW = inspect.Parameter.KEYWORD_ONLY
VAR_KW = inspect.Parameter.VAR_KEYWORD


# --- uvicorn: bedrock/server/connections.py (BoundedH11Protocol) ---------------------------------------------------

CONNECTIONS = "bedrock/server/connections.py"


class FakeTransport(asyncio.Transport):
    """Just enough of a socket transport for H11Protocol."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.protocol: Any = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol


def test_uvicorn_h11_protocol_methods_keep_their_shape():
    from uvicorn.protocols.http.h11_impl import H11Protocol

    for name, shape in {
        "on_response_complete": [("self", POS)],
        "send_400_response": [("self", POS), ("msg", POS)],
        "_unset_keepalive_if_required": [("self", POS)],
        "connection_made": [("self", POS), ("transport", POS)],
        "data_received": [("self", POS), ("data", POS)],
        "connection_lost": [("self", POS), ("exc", POS)],
    }.items():
        method = getattr(H11Protocol, name, None)
        relied_on(callable(method), CONNECTIONS, f"uvicorn H11Protocol.{name}", "it is gone")
        relied_on(params(method) == shape, CONNECTIONS, f"uvicorn H11Protocol.{name}",
                  f"its parameters are now {params(method)}, not {shape}")
    init = [name for name, _ in params(H11Protocol.__init__)]
    relied_on(init[:4] == ["self", "config", "server_state", "app_state"], CONNECTIONS,
              "uvicorn H11Protocol.__init__(config, server_state, app_state, _loop)", f"its parameters are now {init}")


async def test_uvicorn_h11_protocol_internals_as_bounded_h11_protocol_uses_them():
    """One request and one malformed one through a plain H11Protocol subclass: the attributes read, and the hooks
    uvicorn calls (on_response_complete after a response's last byte, send_400_response on bytes h11 refuses)."""
    import h11
    from uvicorn.config import Config
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.server import ServerState

    calls: list[Any] = []
    keepalive: dict[str, Any] = {}

    class Probe(H11Protocol):
        def on_response_complete(self) -> None:
            calls.append("on_response_complete")
            super().on_response_complete()
            # uvicorn arms its keep-alive timer here; BoundedH11Protocol cancels it at once with this:
            keepalive["armed"] = getattr(self, "timeout_keep_alive_task", None)
            self._unset_keepalive_if_required()
            keepalive["after_unset"] = getattr(self, "timeout_keep_alive_task", None)

        def send_400_response(self, msg: str) -> None:
            calls.append(("send_400_response", msg))
            super().send_400_response(msg)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    state = ServerState()
    state.bedrock_waiting = "kept"  # type: ignore[attr-defined]
    relied_on(getattr(state, "bedrock_waiting", None) == "kept", CONNECTIONS,
              "uvicorn ServerState taking an attribute of ours (bedrock_waiting: the idle connections' registry)",
              "it no longer accepts one")
    protocol = Probe(Config(app, log_config=None, lifespan="off"), state, {}, asyncio.get_running_loop())
    relied_on(isinstance(protocol.conn, h11.Connection), CONNECTIONS, "uvicorn H11Protocol.conn",
              "it is not the connection's h11.Connection")
    relied_on(protocol.cycle is None, CONNECTIONS, "uvicorn H11Protocol.cycle", "it is not None before a request")
    relied_on(protocol.server_state is state and protocol.connections is state.connections, CONNECTIONS,
              "uvicorn H11Protocol.server_state / .connections", "they are not the server's state and its set")
    relied_on(protocol.loop is asyncio.get_running_loop(), CONNECTIONS, "uvicorn H11Protocol.loop",
              "it is not the serving loop")

    transport = FakeTransport()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    relied_on(protocol in state.connections and protocol.transport is transport, CONNECTIONS,
              "uvicorn H11Protocol.connection_made", "the connection is not in server_state.connections")
    relied_on(protocol.conn.their_state is h11.IDLE and protocol.conn.trailing_data == (b"", False), CONNECTIONS,
              "h11 Connection.their_state / .trailing_data", "a new connection is not IDLE with no trailing data")

    protocol.data_received(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    cycle = protocol.cycle
    relied_on(cycle is not None and hasattr(cycle, "response_started") and hasattr(cycle, "response_complete"),
              CONNECTIONS, "uvicorn H11Protocol.cycle.response_started / .response_complete",
              f"a request's cycle is {cycle!r}")
    for _ in range(200):
        if cycle.response_complete:
            break
        await asyncio.sleep(0.005)
    relied_on(cycle.response_started and cycle.response_complete, CONNECTIONS,
              "uvicorn RequestResponseCycle.response_started / .response_complete", "not set once a response was sent")
    relied_on(calls == ["on_response_complete"], CONNECTIONS, "uvicorn calling self.on_response_complete",
              f"after a response the calls were {calls}")
    relied_on(keepalive["armed"] is not None, CONNECTIONS,
              "uvicorn H11Protocol.on_response_complete arming timeout_keep_alive_task",
              "no keep-alive timer was armed (the one _unset_keepalive_if_required cancels)")
    relied_on(keepalive["after_unset"] is None and keepalive["armed"].cancelled(), CONNECTIONS,
              "uvicorn H11Protocol._unset_keepalive_if_required", "it left the keep-alive timer armed")
    relied_on(transport.written.startswith(b"HTTP/1.1 200 "), CONNECTIONS, "uvicorn H11Protocol",
              f"it wrote {bytes(transport.written[:40])!r}")

    protocol.data_received(b"\x00\x01 not http\r\n\r\n")
    relied_on(calls[1:2] and calls[1][0] == "send_400_response" and isinstance(calls[1][1], str), CONNECTIONS,
              "uvicorn handle_events calling self.send_400_response(msg) on h11.RemoteProtocolError",
              f"after malformed bytes the calls were {calls}")
    protocol.connection_lost(None)
    relied_on(protocol not in state.connections, CONNECTIONS, "uvicorn H11Protocol.connection_lost",
              "the connection stayed in server_state.connections")


# --- bedrock-agentcore: bedrock/server/app.py (AgentCoreApp) ----------------------------------------------------------

APP = "bedrock/server/app.py"


def test_bedrock_agentcore_invocation_hooks_keep_their_shape():
    from bedrock_agentcore.runtime import BedrockAgentCoreApp

    handle = getattr(BedrockAgentCoreApp, "_handle_invocation", None)
    relied_on(inspect.iscoroutinefunction(handle), APP, "BedrockAgentCoreApp._handle_invocation",
              "it is gone or not a coroutine function")
    relied_on(params(handle) == [("self", POS), ("request", POS)], APP, "BedrockAgentCoreApp._handle_invocation",
              f"its parameters are now {params(handle)}")
    build = getattr(BedrockAgentCoreApp, "_build_request_context", None)
    relied_on(callable(build) and not inspect.iscoroutinefunction(build), APP,
              "BedrockAgentCoreApp._build_request_context", "it is gone, or now a coroutine")
    relied_on(params(build) == [("self", POS), ("request", POS)], APP, "BedrockAgentCoreApp._build_request_context",
              f"its parameters are now {params(build)}")
    run = params(BedrockAgentCoreApp.run)
    relied_on(("port", POS) in run and ("host", POS) in run and run[-1][1] is VAR_KW,
              "bedrock/server/main.py", "BedrockAgentCoreApp.run(port, host, **uvicorn_options)",
              f"its parameters are now {run}")


def test_bedrock_agentcore_routes_invocations_through_the_overridable_handler():
    """`/invocations` must reach `self._handle_invocation` (so AgentCoreApp's override serves it); the entrypoint is
    kept in `handlers["main"]`; the context built carries the session id and the request."""
    from bedrock_agentcore.runtime import BedrockAgentCoreApp
    from starlette.requests import Request

    class Probe(BedrockAgentCoreApp):
        async def _handle_invocation(self, request: Any) -> Any:  # pragma: no cover - never called
            raise NotImplementedError

    app = Probe()
    endpoints = [getattr(route, "endpoint", None) for route in app.routes
                 if getattr(route, "path", "") == "/invocations"]
    relied_on(len(endpoints) == 1 and getattr(endpoints[0], "__func__", None) is Probe._handle_invocation, APP,
              "BedrockAgentCoreApp routing POST /invocations to self._handle_invocation",
              f"the route's endpoint is {endpoints}")

    @app.entrypoint
    async def main(payload: Any, context: Any) -> None:  # pragma: no cover - never called
        pass

    relied_on(app.handlers.get("main") is main, APP, "BedrockAgentCoreApp.handlers['main'] (the entrypoint)",
              f"handlers is {app.handlers!r}")

    scope = {"type": "http", "method": "POST", "path": "/invocations", "query_string": b"",
             "headers": [(b"x-amzn-bedrock-agentcore-runtime-session-id", b"session-1")]}
    request = Request(scope)
    context = app._build_request_context(request)
    relied_on(getattr(context, "session_id", None) == "session-1" and getattr(context, "request", None) is request, APP,
              "BedrockAgentCoreApp._build_request_context(request) -> RequestContext(session_id, request)",
              f"it returned {context!r}")


# --- sse-starlette: bedrock/server/responses.py (_EventSourceResponse) ----------------------------------------------

RESPONSES = "bedrock/server/responses.py"


def test_sse_starlette_send_with_timeout_keeps_its_shape():
    from sse_starlette import EventSourceResponse

    send = getattr(EventSourceResponse, "_send_with_timeout", None)
    relied_on(inspect.iscoroutinefunction(send), RESPONSES, "sse_starlette EventSourceResponse._send_with_timeout",
              "it is gone or not a coroutine function")
    relied_on(params(send) == [("self", POS), ("send", POS), ("message", POS)], RESPONSES,
              "sse_starlette EventSourceResponse._send_with_timeout(send, message)",
              f"its parameters are now {params(send)}")
    sse = importlib.import_module("sse_starlette.sse")
    relied_on(isinstance(getattr(sse, "SendTimeoutError", None), type), RESPONSES, "sse_starlette.sse.SendTimeoutError",
              "it is gone")
    init = dict(params(EventSourceResponse.__init__))
    wanted = ["headers", "sep", "ping", "ping_message_factory", "shutdown_event", "shutdown_grace_period"]
    relied_on(all(name in init for name in wanted), RESPONSES, f"EventSourceResponse({', '.join(wanted)})",
              f"its parameters are now {list(init)}")


async def test_sse_starlette_sends_every_message_through_send_with_timeout():
    """Every message the response sends goes through `_send_with_timeout`; a SendTimeoutError raised there comes out
    of `__call__` as itself (which _EventSourceResponse catches)."""
    from sse_starlette import EventSourceResponse
    from sse_starlette.sse import SendTimeoutError

    routed: list[dict[str, Any]] = []

    class Probe(EventSourceResponse):
        fail_on_body = False

        async def _send_with_timeout(self, send: Any, message: Any) -> None:
            routed.append(message)
            if self.fail_on_body and message["type"] == "http.response.body":
                raise SendTimeoutError()
            await send(message)

    async def frames() -> Any:
        yield b"data: one\n\n"
        yield b"data: two\n\n"

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never leaves
        return {"type": "http.disconnect"}  # pragma: no cover

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    await asyncio.wait_for(Probe(frames(), ping=600)(scope, receive, send), 5)
    bodies = [m.get("body") for m in sent if m["type"] == "http.response.body" and m.get("body")]
    relied_on(bodies == [b"data: one\n\n", b"data: two\n\n"] and all(m in routed for m in sent if m.get("body")),
              RESPONSES, "sse_starlette sending each body chunk through self._send_with_timeout",
              f"sent {sent}, of which through _send_with_timeout {routed}")

    failing = Probe(frames(), ping=600)
    failing.fail_on_body = True
    with pytest.raises(BaseException) as raised:
        await asyncio.wait_for(failing(scope, receive, send), 5)
    relied_on(raised.type is SendTimeoutError, RESPONSES,
              "sse_starlette letting a SendTimeoutError from _send_with_timeout out of __call__",
              f"it came out as {raised.value!r}")


# --- langchain-aws: bedrock/core/model.py (AsyncChatBedrockConverse) --------------------------------------------------

MODEL = "bedrock/core/model.py"


def test_langchain_aws_converse_helpers_keep_their_shape():
    converse = importlib.import_module("langchain_aws.chat_models.bedrock_converse")
    shapes = {
        "_extract_thinking_tokens": [("additional_fields", POS)],
        "_handle_bedrock_error": [("error", POS)],
        "_parse_stream_event": [("event", POS), ("reasoning_tokens", KW)],
        "_raise_if_context_overflow": [("error", POS)],
    }
    for name, shape in shapes.items():
        fn = getattr(converse, name, None)
        relied_on(callable(fn), MODEL, f"langchain_aws.chat_models.bedrock_converse.{name}", "it is gone")
        relied_on(params(fn) == shape, MODEL, f"langchain_aws.chat_models.bedrock_converse.{name}",
                  f"its parameters are now {params(fn)}, not {shape}")

    chunk = converse._parse_stream_event({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "hi"}}},
                                         reasoning_tokens=None)
    relied_on(getattr(chunk, "text", None) == "hi", MODEL, "_parse_stream_event(event) -> a message chunk",
              f"a text delta gave {chunk!r}")
    tokens = converse._extract_thinking_tokens({"usage": {"output_tokens_details": {"thinking_tokens": 7}}})
    relied_on(tokens == 7, MODEL, "_extract_thinking_tokens(additionalModelResponseFields)", f"it read {tokens!r}")

    from botocore.exceptions import ClientError

    too_long = {"Code": "ValidationException", "Message": "Input is too long for requested model."}
    overflow = ClientError({"Error": too_long}, "Converse")
    with pytest.raises(Exception) as raised:
        converse._raise_if_context_overflow(overflow)
    relied_on(raised.value is not overflow and raised.value.__cause__ is overflow, MODEL,
              "_raise_if_context_overflow(error) raising langchain-aws's context-overflow error",
              f"it raised {raised.value!r}")


def test_langchain_aws_fields_and_client_factory_keep_their_shape():
    from langchain_aws import ChatBedrockConverse
    from langchain_aws.utils import create_aws_client

    fields = set(ChatBedrockConverse.model_fields)
    wanted = {"client", "bedrock_client", "region_name", "credentials_profile_name", "aws_access_key_id",
              "aws_secret_access_key", "aws_session_token", "endpoint_url", "config", "bedrock_api_key",
              "default_headers", "base_model_id", "model_id"}
    relied_on(wanted <= fields, MODEL, "ChatBedrockConverse's fields", f"missing: {sorted(wanted - fields)}")
    factory = {name for name, _ in params(create_aws_client)}
    wanted = {"service_name", "region_name", "credentials_profile_name", "aws_access_key_id", "aws_secret_access_key",
              "aws_session_token", "endpoint_url", "config", "api_key"}
    relied_on(wanted <= factory, MODEL, "langchain_aws.utils.create_aws_client", f"missing: {sorted(wanted - factory)}")


def test_langchain_aws_builds_its_request_through_model_client():
    """AsyncChatBedrockConverse captures the request langchain-aws's own `_generate`/`_stream` build at their call of
    `self.client.converse(**request)` / `.converse_stream(**request)`, and replays a response into `_generate`."""
    from langchain_core.messages import HumanMessage

    from bedrock.config import Settings
    from bedrock.core import model as model_module

    model = model_module.make_model(Settings.from_env(), endpoint_url="http://127.0.0.1:9")
    messages = [HumanMessage("What is 2 + 2?")]
    for method in (model._stream, model._generate):
        try:
            request: Any = model._converse_request(method, messages, None)
        except Exception as error:  # e.g. a `_stream` that ends without calling the client
            request = error
        call = "converse_stream" if method == model._stream else "converse"
        relied_on(isinstance(request, dict) and request.get("messages") and request.get("modelId"), MODEL,
                  f"ChatBedrockConverse.{method.__name__} calling self.client.{call}(**request)",
                  f"the captured request is {request!r}")
    response = {"output": {"message": {"role": "assistant", "content": [{"text": "4"}]}}, "stopReason": "end_turn",
                "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}, "metrics": {"latencyMs": 1}}
    token = model_module._REPLAY.set(response)
    try:
        result = model._generate(messages, None, None)
    finally:
        model_module._REPLAY.reset(token)
    relied_on(result.generations[0].message.text == "4", MODEL,
              "ChatBedrockConverse._generate parsing the response of self.client.converse",
              f"a replayed response gave {result!r}")


# --- langchain-core: bedrock/core/tokens.py (TokenTap) --------------------------------------------------------------

TOKENS = "bedrock/core/tokens.py"


def test_langchain_core_streaming_callback_handler_is_importable():
    try:
        streaming = importlib.import_module("langchain_core.tracers._streaming")
        marker = streaming._StreamingCallbackHandler
    except (ImportError, AttributeError) as error:
        relied_on(False, TOKENS, "langchain_core.tracers._streaming._StreamingCallbackHandler", f"{error!r}")
    for name in ("tap_output_aiter", "tap_output_iter"):
        relied_on(callable(getattr(marker, name, None)), TOKENS, f"_StreamingCallbackHandler.{name}",
                  "TokenTap implements it as the marker's interface, and it is gone")


async def test_langchain_core_streams_a_model_call_for_a_streaming_handler():
    """A handler that is a _StreamingCallbackHandler makes `ainvoke` stream (on_llm_new_token per chunk); a plain
    handler does not: that marker is how TokenTap gets tokens without LangGraph's `messages` mode."""
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from bedrock.core.tokens import TokenTap

    tap = TokenTap()
    got: list[Any] = []
    tap.sink = got.append
    model = GenericFakeChatModel(messages=iter([AIMessage("one two three"), AIMessage("one two three")]))
    await model.ainvoke("hi", config={"callbacks": [tap], "metadata": {"langgraph_node": "chatbot"}})
    relied_on(len(got) >= 3, TOKENS, "BaseChatModel streaming a call for a _StreamingCallbackHandler",
              f"TokenTap got {len(got)} chunks")

    class Plain(BaseCallbackHandler):
        tokens = 0

        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            Plain.tokens += 1

    await model.ainvoke("hi", config={"callbacks": [Plain()]})
    assert Plain.tokens == 0, "control: without the marker the call is not streamed (so the check above means it)"


# --- opentelemetry-api: bedrock/core/telemetry.py (Telemetry.flush) ---------------------------------------------------

def test_opentelemetry_logs_provider_is_reachable():
    try:
        logs = importlib.import_module("opentelemetry._logs")
    except ImportError as error:
        relied_on(False, "bedrock/core/telemetry.py", "opentelemetry._logs", f"{error!r}")
    relied_on(callable(getattr(logs, "get_logger_provider", None)), "bedrock/core/telemetry.py",
              "opentelemetry._logs.get_logger_provider", "it is gone")
    relied_on(logs.get_logger_provider() is not None, "bedrock/core/telemetry.py",
              "opentelemetry._logs.get_logger_provider()", "it returned None")


# --- botocore and urllib3: bedrock/client/_runtime.py (the deployed runtime's stream) ------------------------------

def test_botocore_streaming_body_raw_stream():
    from botocore.response import StreamingBody
    from urllib3.response import HTTPResponse

    raw = io.BytesIO(b"abc")
    body = StreamingBody(raw, 3)
    relied_on(getattr(body, "_raw_stream", None) is raw, "bedrock/client/_runtime.py",
              "botocore StreamingBody._raw_stream", "it is not the raw stream it was made with")
    for name in ("read1", "shutdown"):  # the raw stream is urllib3's HTTPResponse
        relied_on(callable(getattr(HTTPResponse, name, None)), "bedrock/client/_runtime.py",
                  f"urllib3 HTTPResponse.{name}", "it is gone (without it tokens wait for full reads, or a blocked "
                  "read is not woken)")


# --- langgraph's savers: ThreadedSqliteSaver and the SQLite owners, ThreadedPostgresSaver ----------------------------

SQLITE_SAVER = r"saver\.lock = threading\.RLock\(\)|with (self\.)?saver\.lock, (self\.)?saver\.conn"
POSTGRES_SAVER = r"saver\.lock = contextlib\.nullcontext\(\)|saver\.conn\.connection\(\)"


def test_langgraph_sqlite_saver_takes_self_lock_on_self_conn():
    """ThreadedSqliteSaver replaces `saver.lock` with an RLock it holds around inline calls, and the SQLite owners run
    their own SQL on `saver.conn` under it: both only mean something while SqliteSaver's calls take `self.lock`."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    where = users(SQLITE_SAVER)
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    saver = SqliteSaver(conn)
    relied_on(saver.conn is conn and hasattr(saver.lock, "acquire"), where,
              "SqliteSaver.conn / .lock", f"conn={saver.conn!r}, lock={getattr(saver, 'lock', None)!r}")
    entered = []

    class Recording:
        def __init__(self) -> None:
            self.lock = threading.RLock()

        def __enter__(self) -> Any:
            entered.append(True)
            return self.lock.__enter__()

        def __exit__(self, *exc: Any) -> Any:
            return self.lock.__exit__(*exc)

        def acquire(self, *args: Any, **kwargs: Any) -> bool:
            entered.append(True)
            return self.lock.acquire(*args, **kwargs)

        def release(self) -> None:
            self.lock.release()

    saver.lock = Recording()  # type: ignore[assignment]
    saver.setup()
    saver.get_tuple({"configurable": {"thread_id": "t", "checkpoint_ns": ""}})
    relied_on(entered, where, "SqliteSaver taking `with self.lock` around its calls",
              "a call ran without taking it")
    conn.close()


SQLITE_STORE = r"store\.lock = threading\.RLock\(\)"


def test_langgraph_sqlite_store_takes_self_lock_around_its_batch():
    """SqliteMemories replaces the store's `lock` with an RLock it holds around inline batches (so a batch on the loop
    never runs beside one on a worker thread): that only means something while SqliteStore.batch takes `self.lock`."""
    from langgraph.store.sqlite import SqliteStore

    where = users(SQLITE_STORE)
    conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    store = SqliteStore(conn)
    relied_on(hasattr(store.lock, "acquire"), where, "SqliteStore.lock", f"lock={getattr(store, 'lock', None)!r}")
    store.setup()
    entered = []

    class Recording:
        def __init__(self) -> None:
            self.lock = threading.RLock()

        def __enter__(self) -> Any:
            entered.append(True)
            return self.lock.__enter__()

        def __exit__(self, *exc: Any) -> Any:
            return self.lock.__exit__(*exc)

    store.lock = Recording()  # type: ignore[assignment]
    store.put(("a",), "k", {"v": 1})
    relied_on(entered, where, "SqliteStore taking `with self.lock` around its batch", "a batch ran without it")
    conn.close()


def test_langgraph_postgres_saver_lock_and_pool():
    """ThreadedPostgresSaver sets `saver.lock` to a no-op (each call has its own pooled connection) and reads the
    pool back as `saver.conn`."""
    from langgraph.checkpoint.postgres import PostgresSaver

    where = users(POSTGRES_SAVER)
    pool = object()
    saver = PostgresSaver(pool)  # type: ignore[arg-type]
    relied_on(saver.conn is pool and hasattr(saver.lock, "acquire"), where,
              "PostgresSaver.conn / .lock", f"conn={saver.conn!r}, lock={getattr(saver, 'lock', None)!r}")
    source = inspect.getsource(PostgresSaver._cursor)
    relied_on("self.lock" in source, where, "PostgresSaver._cursor taking self.lock",
              "it no longer does (replacing it would be pointless, or something else now serialises calls)")


# --- The lock files -------------------------------------------------------------------------------------------------

PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;\\]+)"
                 r"(?:\s*;\s*(?P<marker>[^\\]+?))?\s*\\?$")


@dataclass
class Pin:
    name: str
    version: str
    marker: Marker | None
    hashes: set[str] = field(default_factory=set)
    via: str = ""

    def applies(self) -> bool:
        return self.marker is None or self.marker.evaluate()


def read_lock(path: Path) -> list[Pin]:
    assert path.is_file(), f"{path.name} is missing: `make lock` writes it"
    pins: list[Pin] = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if match := PIN.match(line):
            marker = match["marker"]
            pins.append(Pin(canonicalize_name(match["name"]), match["version"], Marker(marker) if marker else None))
        elif pins and (digest := re.match(r"--hash=sha256:([0-9a-f]{64})", stripped)):
            pins[-1].hashes.add(digest[1])
        elif pins and stripped.startswith("# via"):
            pins[-1].via = stripped.removeprefix("# via").strip()
        elif pins and stripped.startswith("#   "):
            pins[-1].via += ", " + stripped.removeprefix("#").strip()
        elif stripped and not stripped.startswith("#"):
            pytest.fail(f"{path.name}: a line this test cannot read: {line!r}")
    return pins


def ranges(lines: list[str]) -> list[Requirement]:
    return [Requirement(line.split("#", 1)[0]) for line in lines if line.split("#", 1)[0].strip()]


def runtime_ranges() -> list[Requirement]:
    return ranges((ROOT / "requirements.txt").read_text().splitlines())


def project_ranges() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return ranges(project["dependencies"] + project["optional-dependencies"]["test"]
                  + project["optional-dependencies"]["dev"])


def test_every_pin_has_hashes():
    for lock in (LOCK, DEV_LOCK):
        unhashed = [pin.name for pin in read_lock(lock) if not pin.hashes]
        assert not unhashed, f"{lock.name}: pins without hashes (pip --require-hashes refuses them): {unhashed}"


def test_the_venv_is_what_the_dev_lock_pins():
    drift = []
    for pin in read_lock(DEV_LOCK):
        if not pin.applies():
            continue
        try:
            installed = metadata.version(pin.name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != pin.version:
            drift.append(f"{pin.name}: locked {pin.version}, installed {installed}")
    assert not drift, ("the venv has drifted from requirements-dev.lock (`make` reinstalls it when the lock changes; "
                       "`rm .venv/.installed && make .venv/.installed` forces it):\n  " + "\n  ".join(drift))


def check_ranges_against(lock: Path, wanted: list[Requirement], top_level: Callable[[Pin], bool], source: str) -> None:
    pins = read_lock(lock)
    locked = {pin.name: pin for pin in pins if pin.applies()}
    names = {canonicalize_name(req.name) for req in wanted}
    marked = {pin.name for pin in pins if top_level(pin)}
    assert marked == names, (f"{source} and {lock.name} disagree on the top-level packages (run `make lock`): only in "
                             f"{source}: {sorted(names - marked)}; only in {lock.name}: {sorted(marked - names)}")
    outside = [f"{req} (locked {locked[canonicalize_name(req.name)].version})" for req in wanted
               if not req.specifier.contains(locked[canonicalize_name(req.name)].version, prereleases=True)]
    assert not outside, f"{lock.name} pins releases outside {source}'s ranges (run `make lock`): {outside}"
    for req in wanted:  # an extra's own dependencies (psycopg[binary,pool]: psycopg-binary, psycopg-pool) are locked
        for extra in req.extras:
            for dep in map(Requirement, metadata.requires(req.name) or []):
                if dep.marker and dep.marker.evaluate({"extra": extra}) and not dep.marker.evaluate({"extra": ""}):
                    assert canonicalize_name(dep.name) in locked, f"{lock.name} lacks {dep.name}, which {req} needs"


def test_requirements_txt_and_the_runtime_lock_agree():
    check_ranges_against(LOCK, runtime_ranges(), lambda pin: "-r requirements.txt" in pin.via, "requirements.txt")


def test_pyproject_and_the_dev_lock_agree():
    check_ranges_against(DEV_LOCK, project_ranges(), lambda pin: "(pyproject.toml)" in pin.via,
                         "pyproject.toml (dependencies, test and dev extras)")


def test_the_runtime_lock_is_the_dev_locks_releases():
    """The image installs requirements.lock; the tests run on requirements-dev.lock: the same release, the same
    files, of every package both have."""
    differ = [f"{pin.name} {pin.version}: dev lock has {versions or 'none'}"
              for pin, versions in outside_the_dev_lock(LOCK, every_package=True)]
    assert not differ, f"requirements.lock is not within requirements-dev.lock (run `make lock`): {differ}"


def test_the_bench_lock_runs_the_dev_locks_releases():
    """bench/peer.py serves one graph with ours and with LangGraph's own server (.venv/bench, bench/requirements.lock):
    every package both locks have is the same release, so langgraph and langchain are not what differs."""
    differ = [f"{pin.name} {pin.version}: dev lock has {versions}"
              for pin, versions in outside_the_dev_lock(ROOT / "bench" / "requirements.lock", every_package=False)]
    assert not differ, f"bench/requirements.lock is not within requirements-dev.lock (run `make lock`): {differ}"


def outside_the_dev_lock(lock: Path, every_package: bool) -> list[tuple[Pin, list[str]]]:
    """`lock`'s pins that no pin of the dev lock matches (release and files); those the dev lock lacks count only
    with `every_package`."""
    dev: dict[str, list[Pin]] = {}
    for pin in read_lock(DEV_LOCK):
        dev.setdefault(pin.name, []).append(pin)
    differ = []
    for pin in read_lock(lock):
        others = dev.get(pin.name, [])
        if (others or every_package) and not any((o.version, o.hashes) == (pin.version, pin.hashes) for o in others):
            differ.append((pin, [other.version for other in others]))
    return differ
