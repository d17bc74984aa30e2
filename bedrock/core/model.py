"""make_model(settings, endpoint_url): the chat model the graph calls — always ChatBedrockConverse; make_embeddings:
Bedrock's embeddings for long-term memory's semantic search."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError, ResponseStreamingError
from langchain_aws import ChatBedrockConverse
from langchain_aws.chat_models.bedrock_converse import (
    _extract_thinking_tokens,
    _handle_bedrock_error,
    _parse_stream_event,
    _raise_if_context_overflow,
)
from langchain_aws.utils import create_aws_client
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from bedrock.config import Settings

if TYPE_CHECKING:
    from langchain_aws import BedrockEmbeddings

    from bedrock.core.bedrock_client import LoopClients

OFFLINE_CREDENTIALS = {"aws_access_key_id": "offline", "aws_secret_access_key": "offline"}


def botocore_config(settings: Settings) -> Config:
    """Retries and timeouts for the Bedrock Runtime client."""
    return Config(
        retries={"mode": settings.bedrock_retry_mode, "total_max_attempts": settings.bedrock_max_attempts},
        connect_timeout=settings.bedrock_connect_timeout_s,
        read_timeout=settings.bedrock_read_timeout_s,
        # botocore keeps 10 connections by default: past 10 concurrent turns every model call would open
        # (in production: TLS-handshake) a new connection and then throw it away.
        max_pool_connections=settings.max_concurrent_invocations,
    )


class LazyClient:
    """A boto3 client built on first use, by `factory`, once; attribute access reaches the real client."""

    def __init__(self, factory: Callable[[], Any] | None = None) -> None:
        self.factory = factory
        self._client: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or self.factory is None:  # copy/pickle probes, or not wired yet
            raise AttributeError(name)
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self.factory()
        return getattr(self._client, name)


def aws_client(model: ChatBedrockConverse, service_name: str) -> Any:
    """A (blocking) boto3 client ChatBedrockConverse would have built itself, from the same fields."""
    return create_aws_client(
        region_name=model.region_name,
        credentials_profile_name=model.credentials_profile_name,
        aws_access_key_id=model.aws_access_key_id,
        aws_secret_access_key=model.aws_secret_access_key,
        aws_session_token=model.aws_session_token,
        endpoint_url=model.endpoint_url,
        config=model.config,
        service_name=service_name,
        api_key=model.bedrock_api_key,
    )


# While set, the stand-in client records the request langchain-aws built instead of sending it (see below).
_CAPTURING: ContextVar[bool] = ContextVar("converse_capturing", default=False)
# While set, the stand-in client's `converse` answers with this (an already received response).
_REPLAY: ContextVar[dict[str, Any] | None] = ContextVar("converse_replay", default=None)


class _Captured(Exception):
    def __init__(self, request: dict[str, Any]) -> None:
        self.request = request


class ConverseClient:
    """Stands in for ChatBedrockConverse's blocking boto3 client (`model.client`); everything passes through,
    except while the async model captures a request or replays a response (contextvars: per task)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def converse(self, **request: Any) -> Any:
        if _CAPTURING.get():
            raise _Captured(request)
        replay = _REPLAY.get()
        return replay if replay is not None else self._client.converse(**request)

    def converse_stream(self, **request: Any) -> Any:
        if _CAPTURING.get():
            raise _Captured(request)
        return self._client.converse_stream(**request)


class AsyncChatBedrockConverse(ChatBedrockConverse):
    """ChatBedrockConverse whose async calls (`astream`, `ainvoke`: all the graph makes) go through aiobotocore
    on the event loop: no thread per model call, no cross-thread hand-off per chunk (bedrock_client.py says why).

    What is sent stays langchain-aws's own: its sync method builds the request (messages, system, tools,
    inference config, cache points…) and the stand-in client captures it at the Converse call, before anything
    is sent; so a new langchain-aws feature reaches the wire unchanged. A streamed answer is parsed with its own
    event parser; a Converse answer is handed back to its own `_generate` to parse. Sync calls (`invoke`,
    `stream`) are untouched and use the blocking client, built on first use.
    """

    _clients: Any = PrivateAttr(default=None)

    @property
    def async_clients(self) -> LoopClients:
        """The aiobotocore clients, per event loop (made by `make_model`; for a model built directly, on first use)."""
        if self._clients is None:
            self._clients = async_clients(self)
        return self._clients

    def _converse_request(self, method: Callable[..., Any], messages: list[BaseMessage], stop: list[str] | None,
                          **kwargs: Any) -> dict[str, Any]:
        token = _CAPTURING.set(True)
        try:
            result = method(messages, stop, None, **kwargs)
            if isinstance(result, Iterator):
                next(result)  # `_stream` is a generator: run it to its Converse call
        except _Captured as captured:
            return captured.request
        finally:
            _CAPTURING.reset(token)
        raise RuntimeError(f"langchain-aws's {method.__name__} made no Converse call")  # pragma: no cover

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        from bedrock.core.bedrock_client import detached

        request = self._converse_request(self._generate, messages, stop, **kwargs)
        client = await self.async_clients.get()
        try:
            response = await detached(partial(client.converse, **request))
        except ClientError as error:
            _handle_bedrock_error(error)  # langchain-aws's own mapping (context overflow, InvokeTool); re-raises
            raise
        token = _REPLAY.set(response)
        try:  # builds the request again (~0.1 ms) and parses the response exactly as langchain-aws does
            return self._generate(messages, stop, None, **kwargs)
        finally:
            _REPLAY.reset(token)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        import aiohttp  # loaded by make_model already; not at module import, which is on a cold start's path

        from bedrock.core.bedrock_client import detached

        request = self._converse_request(self._stream, messages, stop, **kwargs)
        client = await self.async_clients.get()
        try:
            response = await detached(partial(client.converse_stream, **request))
        except ClientError as error:
            _handle_bedrock_error(error)
            raise
        # From here as langchain-aws's `_stream` reads botocore's stream, event by event.
        stream = response["stream"]
        model_name = self.base_model_id or self.model_id
        named = stopped = False
        reasoning_tokens: int | None = None
        try:
            async for event in stream:
                if "messageStop" in event:
                    stopped = True
                    fields = event["messageStop"].get("additionalModelResponseFields")
                    reasoning_tokens = _extract_thinking_tokens(fields)
                message = _parse_stream_event(event, reasoning_tokens=reasoning_tokens)
                if not message:
                    continue
                if not named and getattr(message, "usage_metadata", None):
                    message.response_metadata["model_name"] = model_name
                    if "application-inference-profile" in self.model_id:
                        message.response_metadata["inference_profile_id"] = self.model_id
                    if metadata := response.get("ResponseMetadata"):
                        message.response_metadata["ResponseMetadata"] = metadata
                    named = True
                message.response_metadata["model_provider"] = "bedrock_converse"
                chunk = ChatGenerationChunk(message=message)
                if run_manager:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        except ClientError as error:  # an exception event inside the stream (throttling, model stream error…)
            _raise_if_context_overflow(error)
            raise
        # aiohttp's own errors surface while reading the stream; botocore's blocking reader wraps them in its
        # exceptions, so the runtime's error catalog (and any caller's `except`) sees botocore's here too.
        except aiohttp.ServerTimeoutError as error:
            raise ReadTimeoutError(endpoint_url=self.endpoint_url or "bedrock-runtime", error=error) from error
        except aiohttp.ClientError as error:
            raise ResponseStreamingError(error=error) from error
        finally:
            stream.close()  # closes the HTTP response: a reader that left early frees the connection
        if not stopped:
            raise ResponseStreamingError(error="the stream ended before its messageStop event")


def make_model(settings: Settings, endpoint_url: str | None = None) -> ChatBedrockConverse:
    """ChatBedrockConverse for `bedrock` and `offline` alike.

    Offline runs only swap the endpoint (`endpoint_url`, the local rule-based one, which `build_agent`
    starts) and use dummy credentials; signing, retries and stream decoding stay botocore's. A `bedrock` run
    honours `endpoint_url`, else botocore's own resolution (incl. AWS_ENDPOINT_URL_BEDROCK_RUNTIME).

    The graph's calls go through aiobotocore (AsyncChatBedrockConverse), one client per event loop made from one
    warmed session per process. ChatBedrockConverse would also build two blocking boto3 clients: the runtime one
    (now only for sync calls) and a Bedrock *control-plane* one, which it calls only to resolve an application
    inference profile; ~90 ms of a cold start each (own botocore session, endpoint data, service model). Both are
    LazyClients instead, built from the model's own fields on first use.
    """
    extra: dict[str, Any] = {}
    if settings.model_provider == "offline":
        if endpoint_url is None:
            raise ValueError("the offline model needs the offline endpoint's URL (build_agent starts one)")
        extra.update(OFFLINE_CREDENTIALS)
    if endpoint_url is not None:
        extra["endpoint_url"] = endpoint_url
    control_plane, runtime = LazyClient(), LazyClient()
    model = AsyncChatBedrockConverse(
        model=settings.bedrock_model_id,
        region_name=settings.aws_region,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        config=botocore_config(settings),
        client=ConverseClient(runtime),
        bedrock_client=control_plane,
        **extra,
    )
    control_plane.factory = lambda: aws_client(model, "bedrock")
    runtime.factory = lambda: aws_client(model, "bedrock-runtime")
    model._clients = async_clients(model)
    return model


def async_clients(model: ChatBedrockConverse) -> LoopClients:
    """aiobotocore clients with the model's own region, endpoint, credentials and botocore Config."""
    from bedrock.core.bedrock_client import LoopClients, aio_config

    session = aio_session(model.credentials_profile_name)
    options: dict[str, Any] = {"region_name": model.region_name, "endpoint_url": model.endpoint_url,
                               "config": aio_config(model.config)}
    for name in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"):
        secret = getattr(model, name)
        if secret is not None:
            options[name] = secret.get_secret_value()

    def prepare(client: Any) -> None:  # as ChatBedrockConverse does on its own client
        headers = model.default_headers
        if headers:
            def add_headers(request: Any, **_: Any) -> None:
                request.headers.update(headers)

            for operation in ("Converse", "ConverseStream"):
                client.meta.events.register(f"before-send.bedrock-runtime.{operation}", add_headers)

    return LoopClients(session, options, prepare=prepare)


_SESSIONS: dict[str | None, Any] = {}
_SESSIONS_LOCK = threading.Lock()


def aio_session(profile: str | None) -> Any:
    """One aiobotocore session per profile and process, warmed once: its loaded service model and endpoint
    rules serve every client made from it (the first client costs ~45 ms, the next ones ~2 ms)."""
    from aiobotocore.session import AioSession

    from bedrock.core.bedrock_client import warm

    with _SESSIONS_LOCK:
        session = _SESSIONS.get(profile)
        if session is None:
            session = _SESSIONS[profile] = AioSession(profile=profile)
            warm(session)
        return session


def make_embeddings(settings: Settings, endpoint_url: str | None = None) -> BedrockEmbeddings:
    """BedrockEmbeddings for semantic search (`EMBEDDING_MODEL_ID`, `EMBEDDING_DIMENSIONS`), `bedrock` and `offline`
    alike, as `make_model` makes the chat model: the same region, botocore Config, and — offline — the same endpoint
    (it answers InvokeModel for Titan text embeddings v2) and dummy credentials.

    `dimensions` is BedrockEmbeddings' own field rather than `model_kwargs`: it sends `{"dimensions": N}` for Titan,
    and the key each other family expects (Cohere v4, Nova) should EMBEDDING_MODEL_ID name one. Its boto3 client is
    a LazyClient, built on first use: BedrockEmbeddings would build one at once (~90 ms of a cold start, as
    `make_model` says of the chat model's), and langchain-aws (with numpy) is loaded only here, not at import.
    """
    from langchain_aws import BedrockEmbeddings

    extra: dict[str, Any] = {}
    if settings.model_provider == "offline":
        if endpoint_url is None:
            raise ValueError("offline embeddings need the offline endpoint's URL (build_agent starts one)")
        extra.update(OFFLINE_CREDENTIALS)
    if endpoint_url is not None:
        extra["endpoint_url"] = endpoint_url
    runtime = LazyClient()
    embeddings = BedrockEmbeddings(
        model_id=settings.embedding_model_id,
        dimensions=settings.embedding_dimensions,
        region_name=settings.aws_region,
        config=botocore_config(settings),
        client=runtime,
        **extra,
    )
    runtime.factory = lambda: embeddings_client(embeddings)
    return embeddings


class LazyEmbeddings(Embeddings):
    """Embeddings made on first use by `factory` (`make_embeddings`): importing langchain-aws's embeddings loads numpy,
    ~80 ms of every cold start, while most turns embed nothing (an actor without memories: none)."""

    def __init__(self, factory: Callable[[], Embeddings]) -> None:
        self._factory = factory
        self._made: Embeddings | None = None
        self._lock = threading.Lock()

    @property
    def made(self) -> Embeddings:
        if self._made is None:
            with self._lock:
                if self._made is None:
                    self._made = self._factory()
        return self._made

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.made.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.made.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await self.made.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await self.made.aembed_query(text)


def embeddings_client(embeddings: BedrockEmbeddings) -> Any:
    """The boto3 `bedrock-runtime` client BedrockEmbeddings would have built itself, from the same fields (`aws_client`
    reads a chat model's, which has fields BedrockEmbeddings lacks: its Bedrock API key)."""
    return create_aws_client(
        region_name=embeddings.region_name,
        credentials_profile_name=embeddings.credentials_profile_name,
        aws_access_key_id=embeddings.aws_access_key_id,
        aws_secret_access_key=embeddings.aws_secret_access_key,
        aws_session_token=embeddings.aws_session_token,
        endpoint_url=embeddings.endpoint_url,
        config=embeddings.config,
        service_name="bedrock-runtime",
    )
