"""AgentClient over HTTP (httpx + httpx-sse) or a deployed runtime (boto3's InvokeAgentRuntime).

    AgentClient(agent_runtime_arn="arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/x", region="us-east-1")
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from httpx_sse import aconnect_sse

from bedrock.client._errors import (
    AgentClientError,
    AgentConnectionError,
    AgentHTTPError,
    AgentStreamError,
    AgentTimeoutError,
)
from bedrock.client._runtime import (
    _arn_region,
    _chunk_reader,
    _close_stream,
    _keep_agent_error,
    _runtime_http_error,
    runtime_session_id,
)
from bedrock.client._socket import SIGNED_HANDSHAKE, Connection, forget_body
from bedrock.wire.decoding import SSEDecoder
from bedrock.wire.events import AGENT_START, TERMINAL_EVENTS, SSEEvent, encode_frame
from bedrock.wire.headers import SESSION_HEADER
from bedrock.wire.result import fold

DEFAULT_URL = "http://127.0.0.1:8080"
logger = logging.getLogger("bedrock.client")


def _event(event_type: str, data: Any, event_id: Any) -> SSEEvent:
    """A received event as the same SSEEvent the server framed (`.type`, `.data`, `.id`)."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            pass  # a foreign stream's plain-text data stays text
    if isinstance(event_id, str):
        event_id = int(event_id) if event_id.isdigit() else None
    return encode_frame(event_type or "message", data, event_id)


async def _before(deadline: float, step: Any) -> Any:
    """Await `step`, raising TimeoutError at `deadline` (loop time). Never spans a `yield` of the caller."""
    if hasattr(asyncio, "timeout_at"):  # 3.11+: same task, so cancellation stays inside `step`
        async with asyncio.timeout_at(deadline):
            return await step
    return await asyncio.wait_for(step, max(0.0, deadline - asyncio.get_running_loop().time()))


class AgentClient:
    """Streams or invokes agent turns; use as `async with AgentClient(...) as client`, or call `aclose()`.

    Give `base_url` (local or HTTPS server: `POST {base_url}/invocations`) or `agent_runtime_arn` (a deployed
    runtime, through boto3's `bedrock-agentcore` InvokeAgentRuntime, signed with your AWS credentials).
    `timeout` bounds a whole turn. Connection failures before the first event are retried `retries` times;
    over HTTP with backoff `backoff_s`, doubling; for a runtime ARN by botocore's standard retry mode, which
    also retries throttling. Once the run has started it is never started again: a stream that breaks is
    re-attached to the same run (`resume` from the last event id received) up to `reconnects` times, and every
    event is yielded once, in order.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        agent_runtime_arn: str | None = None,
        region: str | None = None,
        qualifier: str = "DEFAULT",
        endpoint_url: str | None = None,
        timeout: float = 300.0,
        retries: int = 3,
        backoff_s: float = 0.2,
        headers: Mapping[str, str] | None = None,
        reconnects: int = 3,
    ) -> None:
        """`headers` are sent with every HTTP request (base_url only), e.g. an `Authorization` bearer token."""
        if (base_url is None) == (agent_runtime_arn is None):
            raise ValueError("give exactly one of base_url or agent_runtime_arn")
        self.base_url = base_url.rstrip("/") if base_url else None
        self.agent_runtime_arn = agent_runtime_arn
        self.region = region or _arn_region(agent_runtime_arn)
        self.qualifier, self.endpoint_url = qualifier, endpoint_url
        self.timeout, self.retries, self.backoff_s, self.reconnects = timeout, retries, backoff_s, reconnects
        self._headers = dict(headers or {})  # also the WebSocket handshake's (connect)
        self._http: httpx.AsyncClient | None = None
        if self.base_url is not None:
            # One pooled client for every turn: keep-alive connections are reused across streams.
            self._http = httpx.AsyncClient(
                headers=self._headers,
                timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                limits=httpx.Limits(max_keepalive_connections=10),
            )
        self._boto: Any = None
        self._boto_lock = threading.Lock()
        # The runtime session of the calls that name no session (`memories`, `forget`): one per client, not a
        # fresh one each call, since every new runtime session starts a microVM of its own.
        self._own_runtime_session = runtime_session_id(None)

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections."""
        if self._http is not None:
            await self._http.aclose()
        if self._boto is not None:
            self._boto.close()

    async def stream(self, payload: Mapping[str, Any]) -> AsyncGenerator[SSEEvent, None]:
        """One run's events, `agent_start` … `agent_end`; a failed run's `error` event comes last (not raised).

        A connection that breaks after the run started is re-attached (`resume` from the last event id) up to
        `reconnects` times, with backoff; the events are yielded once each, in order, whatever the drops.
        Raises AgentHTTPError (refused), AgentConnectionError, AgentTimeoutError, or AgentStreamError when the
        stream ends without a final event.
        """
        body = {**payload, "stream": True}
        deadline = asyncio.get_running_loop().time() + self.timeout
        run: dict[str, Any] = {}  # agent_start's data: where to re-attach
        last_id = 0
        for attempt in range(self.reconnects + 1):
            source = self._runtime_events(body) if self.agent_runtime_arn else self._http_events(body)
            try:
                while True:
                    try:
                        event = await _before(deadline, source.__anext__())
                    except StopAsyncIteration:
                        broke: AgentClientError = AgentStreamError.incomplete()
                        break
                    except AgentConnectionError as error:
                        broke = error
                        break
                    except TimeoutError:
                        message = f"The agent did not finish within the {self.timeout:g} s timeout."
                        raise AgentTimeoutError(message) from None
                    if event.id is not None and event.id <= last_id:
                        continue  # already yielded before the drop
                    if event.type == AGENT_START and isinstance(event.data, dict):
                        run = event.data
                    last_id = event.id or last_id
                    yield event
                    if event.type in TERMINAL_EVENTS:
                        return
            finally:
                await source.aclose()
            if not run.get("run_id") or attempt == self.reconnects:
                raise broke
            delay = self.backoff_s * 2**attempt
            logger.warning("the stream of run %s broke (%s); re-attaching from event %d in %.2f s (%d/%d)",
                           run["run_id"], broke, last_id, delay, attempt + 1, self.reconnects)
            await asyncio.sleep(delay)
            body = {"action": "resume", "session_id": run["session_id"], "actor_id": run["actor_id"],
                    "run_id": run["run_id"], "last_event_id": last_id, "stream": True}
        raise AssertionError("unreachable")  # the loop returns or raises

    def resume(self, session_id: str, interrupt_id: str, approved: bool, args: Mapping[str, Any] | None = None, *,
               actor_id: str | None = None, stream_tokens: bool = True) -> AsyncGenerator[SSEEvent, None]:
        """Answer the session's pending approval (an `interrupt` event's `interrupt_id`) and stream the run that
        continues the turn: approved, the tool runs (with `args` instead, if given); declined, it does not."""
        decision: dict[str, Any] = {"interrupt_id": interrupt_id, "approved": approved}
        if args is not None:
            decision["args"] = dict(args)
        payload: dict[str, Any] = {"session_id": session_id, "resume": decision, "stream_tokens": stream_tokens}
        if actor_id is not None:
            payload["actor_id"] = actor_id
        return self.stream(payload)

    async def cancel(self, session_id: str, run_id: str | None = None, *,
                     actor_id: str | None = None) -> dict[str, Any]:
        """Cancel the session's run in progress (`run_id`: only if it is that one); its turn is rolled back.
        Returns `{"session_id", "run_id", "status": "cancelled"}`; AgentHTTPError 404 `no_active_run` if none."""
        return await self._request({"action": "cancel", "session_id": session_id, "run_id": run_id,
                                    "actor_id": actor_id})

    async def status(self, session_id: str, run_id: str | None = None, *,
                     actor_id: str | None = None) -> dict[str, Any]:
        """The session's run in progress or last run: `{"session_id", "run_id", "state", "last_event_id"}`."""
        return await self._request({"action": "status", "session_id": session_id, "run_id": run_id,
                                    "actor_id": actor_id})

    async def history(self, session_id: str, *, actor_id: str | None = None) -> dict[str, Any]:
        """The session's kept conversation: `{"session_id", "messages": [agent_step data…], "truncated",
        "pending": [approvals waiting for an answer], "run": its run in progress (as `status`) or None}`."""
        return await self._request({"action": "history", "session_id": session_id, "actor_id": actor_id})

    async def memories(self, *, limit: int = 20, offset: int = 0, actor_id: str | None = None) -> dict[str, Any]:
        """A page of the actor's long-term memories (no session needed): `{"actor_id", "memories": [{"namespace",
        "key", "value", "created_at", "updated_at"}…], "next_offset"}` — `next_offset` is None on the last page.
        AgentHTTPError 409 `long_term_memory_off` if the server keeps none."""
        return await self._request({"action": "memories", "limit": limit, "offset": offset, "actor_id": actor_id})

    async def forget(self, key: str | None = None, *, namespace: Sequence[str] | None = None, all: bool = False,
                     actor_id: str | None = None) -> dict[str, Any]:
        """Delete the actor's memory `key` (in `namespace`, else wherever the actor keeps it), or with `all=True`
        every memory of the actor. Returns `{"actor_id", "forgotten": count}`; AgentHTTPError 404
        `memory_not_found` for a key the actor has no memory under. ValueError, before anything is sent, unless
        exactly one of `key` or `all` is given."""
        return await self._request(forget_body(key, namespace, all, actor_id))

    def connect(self, session_id: str | None = None) -> Connection:
        """A WebSocket session with the server (`{base_url}/ws`, `ws://` or `wss://`): one connection for many
        turns and actions, several at once, with this client's `headers` (its bearer token) on the handshake.

            async with client.connect() as conn:
                result = await conn.invoke({"prompt": "My name is Alice", "session_id": "s"})
                async for event in conn.stream({"prompt": "What's my name?", "session_id": "s"}):
                    ...

        A runtime-ARN client connects to the deployed runtime's `/ws` through AgentCore (the AgentCore SDK's
        SigV4-signed handshake, AgentCoreRuntimeClient.generate_ws_connection): the connection is one runtime session
        (`session_id`, made a valid runtime session id as `stream` does; else a new one), as every request on it
        reaches the same container. The socket opens on `async with` (or `await client.connect()`), with this
        client's `timeout`, `retries` and `backoff_s`."""
        if self.base_url is not None:
            return Connection(self.base_url, headers=self._headers, timeout=self.timeout, retries=self.retries,
                              backoff_s=self.backoff_s)
        arn, region, endpoint_url = self.agent_runtime_arn, self.region, self.endpoint_url
        assert arn is not None  # (one of base_url and agent_runtime_arn is given: __init__)
        session = runtime_session_id(session_id)

        def handshake() -> tuple[str, dict[str, str]]:
            # Signed at each attempt (a signature is good for minutes); websockets writes Host, Upgrade and the key.
            from bedrock_agentcore.runtime import AgentCoreRuntimeClient

            url, headers = AgentCoreRuntimeClient(region=region).generate_ws_connection(arn, session_id=session)
            if endpoint_url:  # a stand-in of the data plane (tests), as `endpoint_url` is for InvokeAgentRuntime
                parts, local = urlsplit(url), urlsplit(endpoint_url)
                url = urlunsplit(("ws" if local.scheme == "http" else "wss", local.netloc, parts.path, parts.query, ""))
            return url, {name: value for name, value in headers.items() if name.lower() in SIGNED_HANDSHAKE}

        return Connection(None, handshake=handshake, timeout=self.timeout, retries=self.retries,
                          backoff_s=self.backoff_s)

    async def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        body = {key: value for key, value in body.items() if value is not None}
        try:
            async with asyncio.timeout(min(self.timeout, 60.0)):
                if self.agent_runtime_arn:
                    return await self._runtime_json(body)
                assert self._http is not None
                # The actor's memories belong to no session: their requests name none.
                headers = {SESSION_HEADER: body["session_id"]} if "session_id" in body else {}
                response = await self._http.post(f"{self.base_url}/invocations", json=body, headers=headers)
        except TimeoutError:
            raise AgentTimeoutError(f"The agent did not answer {body['action']} in time.") from None
        except httpx.TransportError as exc:
            raise AgentConnectionError(f"Could not reach {self.base_url}: {exc!r}") from exc
        if not response.is_success:
            raise AgentHTTPError.from_body(response.status_code, response.content)
        return response.json()

    async def invoke(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """One turn's result `{output, session_id, actor_id, steps, metrics}`; AgentStreamError if it failed."""
        return await fold(self.stream(payload), AgentStreamError.from_event, AgentStreamError.incomplete)

    # --- HTTP ---------------------------------------------------------------------------------------------

    async def _http_events(self, body: dict[str, Any]) -> AsyncGenerator[SSEEvent, None]:
        assert self._http is not None
        url = f"{self.base_url}/invocations"
        headers = {SESSION_HEADER: body["session_id"]} if isinstance(body.get("session_id"), str) else {}
        received = False
        for attempt in range(self.retries + 1):
            try:
                async with aconnect_sse(self._http, "POST", url, json=body, headers=headers) as source:
                    response = source.response
                    if not response.is_success:
                        raise AgentHTTPError.from_body(response.status_code, await response.aread())
                    content_type = response.headers.get("content-type", "")
                    if not content_type.startswith("text/event-stream"):
                        raise AgentClientError(f"expected an event stream from {url}, got {content_type!r}")
                    async for sse in source.aiter_sse():
                        received = True
                        yield _event(sse.event, sse.data, sse.id)
                return
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Nothing reached the agent yet, so trying again cannot run the turn twice.
                if received or attempt == self.retries:
                    message = f"Could not connect to {url} after {attempt + 1} attempt(s): {exc}"
                    raise AgentConnectionError(message) from exc
                delay = self.backoff_s * 2**attempt
                logger.warning("connecting to %s failed (%s); retry %d/%d in %.2f s",
                               url, exc, attempt + 1, self.retries, delay)
                await asyncio.sleep(delay)
            except httpx.TimeoutException as exc:
                raise AgentTimeoutError(f"{url} stopped sending within the {self.timeout:g} s timeout.") from exc
            except httpx.TransportError as exc:
                raise AgentConnectionError(f"The connection to {url} broke: {exc!r}") from exc

    # --- Deployed runtime (boto3) ---------------------------------------------------------------------------

    def _boto_client(self) -> Any:
        with self._boto_lock:
            if self._boto is None:
                import boto3  # only runtime-ARN users pay for boto3's import
                from botocore.config import Config

                config = Config(
                    connect_timeout=min(self.timeout, 10.0),
                    read_timeout=self.timeout,  # also ends a read left blocked in a thread after our timeout
                    retries={"mode": "standard", "total_max_attempts": self.retries + 1},
                )
                client = boto3.session.Session().client(
                    "bedrock-agentcore", region_name=self.region, endpoint_url=self.endpoint_url, config=config
                )
                client.meta.events.register("before-parse.bedrock-agentcore.InvokeAgentRuntime", _keep_agent_error)
                self._boto = client
            return self._boto

    def _invoke_runtime(self, body: dict[str, Any], session: str, accept: str = "text/event-stream") -> Any:
        return self._boto_client().invoke_agent_runtime(
            agentRuntimeArn=self.agent_runtime_arn,
            runtimeSessionId=session,
            payload=json.dumps(body).encode("utf-8"),
            qualifier=self.qualifier,
            contentType="application/json",
            accept=accept,
        )

    async def _runtime_json(self, body: dict[str, Any]) -> dict[str, Any]:
        """A non-streamed call to the deployed runtime (`cancel`, `status`, `history`) on the session's runtime
        session; one of no session (`memories`, `forget`) on this client's own."""
        from botocore import exceptions as boto_errors

        session = runtime_session_id(body["session_id"]) if "session_id" in body else self._own_runtime_session
        try:
            response = await asyncio.to_thread(self._invoke_runtime, body, session, "application/json")
        except boto_errors.ClientError as exc:
            raise _runtime_http_error(exc) from exc
        except (boto_errors.EndpointConnectionError, boto_errors.ConnectTimeoutError) as exc:
            raise AgentConnectionError(f"Could not connect to AgentCore Runtime: {exc}") from exc
        stream = response["response"]
        try:
            return json.loads(await asyncio.to_thread(stream.read))
        finally:
            _close_stream(stream)

    async def _runtime_events(self, body: dict[str, Any]) -> AsyncGenerator[SSEEvent, None]:
        from botocore import exceptions as boto_errors
        from urllib3 import exceptions as urllib3_errors

        sid = body.get("session_id")
        session = runtime_session_id(sid if isinstance(sid, str) else None)
        try:
            # boto3 blocks, so the call and every read below run on a worker thread.
            response = await asyncio.to_thread(self._invoke_runtime, body, session)
        except boto_errors.ClientError as exc:
            raise _runtime_http_error(exc) from exc
        except (boto_errors.EndpointConnectionError, boto_errors.ConnectTimeoutError) as exc:
            message = f"Could not connect to AgentCore Runtime after {self.retries + 1} attempt(s): {exc}"
            raise AgentConnectionError(message) from exc
        except boto_errors.ReadTimeoutError as exc:
            message = f"AgentCore Runtime did not answer within the {self.timeout:g} s timeout."
            raise AgentTimeoutError(message) from exc
        stream = response["response"]
        read = _chunk_reader(stream)
        decoder = SSEDecoder()
        try:
            while chunk := await asyncio.to_thread(read):
                for parsed in decoder.feed(chunk):
                    yield _event(parsed["type"], parsed["data"], parsed.get("id"))
        except (urllib3_errors.ReadTimeoutError, boto_errors.ReadTimeoutError) as exc:
            message = f"AgentCore Runtime stopped sending within the {self.timeout:g} s timeout."
            raise AgentTimeoutError(message) from exc
        except (urllib3_errors.HTTPError, boto_errors.BotoCoreError, OSError) as exc:
            raise AgentConnectionError(f"The AgentCore Runtime stream broke: {exc!r}") from exc
        finally:
            _close_stream(stream)
