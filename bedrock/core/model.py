"""make_model(settings, endpoint_url): the chat model the graph calls — always ChatBedrockConverse."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any, AsyncIterator, Callable

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from botocore.config import Config
from langchain_aws import ChatBedrockConverse
from langchain_aws.utils import create_aws_client

from bedrock.config import Settings

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


def control_plane_client(model: ChatBedrockConverse) -> Any:
    """The `bedrock` client ChatBedrockConverse would have built itself, from the same fields."""
    return create_aws_client(
        region_name=model.region_name,
        credentials_profile_name=model.credentials_profile_name,
        aws_access_key_id=model.aws_access_key_id,
        aws_secret_access_key=model.aws_secret_access_key,
        aws_session_token=model.aws_session_token,
        endpoint_url=model.endpoint_url,
        config=model.config,
        service_name="bedrock",
        api_key=model.bedrock_api_key,
    )


_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class BridgedChatBedrockConverse(ChatBedrockConverse):
    """ChatBedrockConverse whose async stream reads botocore's (blocking) event stream on one thread per call.

    langchain-aws has no native async stream, so LangChain's fallback hops to the executor and back for
    *every chunk* (`run_in_executor(next, iterator)`): submit, two futures and a wake-up per token, ~20% of
    the server's CPU under paced load (py-spy, bench/streams.py). Here one executor job per call iterates
    `_stream` and hands chunks to the loop; the request, signing, retries and decoding are unchanged.
    """

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stopped = threading.Event()
        sync_manager = run_manager.get_sync() if run_manager else None

        def hand_over(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone (its caller left): nobody to hand over to
                stopped.set()

        def pump() -> None:
            chunks = self._stream(messages, stop, sync_manager, **kwargs)
            try:
                for chunk in chunks:
                    if stopped.is_set():
                        break
                    hand_over(chunk)
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting side, which raises it
                hand_over(_Failure(error))
            finally:
                chunks.close()  # closes botocore's stream (and its connection) when the reader left early
                hand_over(_END)

        job = loop.run_in_executor(None, contextvars.copy_context().run, pump)
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            stopped.set()
            if not job.done():
                job.add_done_callback(lambda done: done.exception())  # retrieve, so nothing logs "never retrieved"


def make_model(settings: Settings, endpoint_url: str | None = None) -> ChatBedrockConverse:
    """ChatBedrockConverse for `bedrock` and `offline` alike.

    Offline runs only swap the endpoint (`endpoint_url`, the local rule-based one, which `build_agent`
    starts) and use dummy credentials; signing, retries and stream decoding stay botocore's. A `bedrock` run
    honours `endpoint_url`, else botocore's own resolution (incl. AWS_ENDPOINT_URL_BEDROCK_RUNTIME).

    ChatBedrockConverse also builds a Bedrock *control-plane* client, which it calls only to resolve an
    application inference profile: ~90 ms of every cold start (its own botocore session, endpoint data and
    service model). It is given a LazyClient instead, built from the model's own fields on first use.
    """
    extra: dict[str, Any] = {}
    if settings.model_provider == "offline":
        if endpoint_url is None:
            raise ValueError("the offline model needs the offline endpoint's URL (build_agent starts one)")
        extra.update(OFFLINE_CREDENTIALS)
    if endpoint_url is not None:
        extra["endpoint_url"] = endpoint_url
    control_plane = LazyClient()
    model = BridgedChatBedrockConverse(
        model=settings.bedrock_model_id,
        region_name=settings.aws_region,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        config=botocore_config(settings),
        bedrock_client=control_plane,
        **extra,
    )
    control_plane.factory = lambda: control_plane_client(model)
    return model
