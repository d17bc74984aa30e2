"""A local stand-in for AgentCore Runtime's data plane, in front of a live agent server.

`POST /runtimes/{arn}/invocations` (what boto3's `bedrock-agentcore` client calls) requires a SigV4
`authorization` header for the `bedrock-agentcore` service, records the call, and forwards the body and the
runtime session header to the agent's `/invocations`, streaming the reply back with its status and content type —
what the real service does for an HTTP-protocol runtime. `POST /invocations` forwards the same way without the
signature check (a plain proxy, for `AgentClient(base_url=...)`). `WS /runtimes/{arn}/ws` checks the handshake's
signature and session header likewise, then relays messages both ways with the agent's `/ws` (AgentCore's
bidirectional streaming).

As the real service does, it reads the container's stream to its end whether or not its own client is still
there (`upstream` keeps every call's bytes): the container never learns that a client left. `drop_after`
makes it cut its client's connection after that many frames, once per entry, to force dropped streams.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from bedrock.wire.headers import SESSION_HEADER
from testkit import loopback


class Upstream:
    """What the container sent for one call, read to its end."""

    def __init__(self) -> None:
        self.body = b""
        self.ended_at: float | None = None  # time.perf_counter() when the container's reply ended
        self.ended = asyncio.Event()


class RuntimeStandIn:
    """The ASGI `app`; `calls` lists what each request carried (arn, qualifier, session id, authorization)."""

    def __init__(self, agent_url: str) -> None:
        self.agent_url = agent_url
        self.calls: list[dict[str, Any]] = []
        self.upstream: list[Upstream] = []
        self.drop_after: list[int] = []  # frames after which the next calls' client connections are cut
        self.app = Starlette(routes=[
            Route("/runtimes/{arn:path}/invocations", self.invoke, methods=["POST"]),
            Route("/invocations", self.forward, methods=["POST"]),
            WebSocketRoute("/runtimes/{arn:path}/ws", self.websocket),
        ])

    async def invoke(self, request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("AWS4-HMAC-SHA256 ") or "/bedrock-agentcore/aws4_request" not in authorization:
            return JSONResponse(
                {"message": "Missing Authentication Token"}, 403, headers={"x-amzn-errortype": "AccessDeniedException"}
            )
        self.calls.append({
            "arn": request.path_params["arn"],
            "qualifier": request.query_params.get("qualifier"),
            "session_id": request.headers.get(SESSION_HEADER),
            "accept": request.headers.get("accept"),
            "authorization": authorization,
        })
        return await self.forward(request)

    async def websocket(self, websocket: WebSocket) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        authorization = websocket.headers.get("authorization", "")
        session = websocket.headers.get(SESSION_HEADER)
        if not authorization.startswith("AWS4-HMAC-SHA256 ") or "/bedrock-agentcore/aws4_request" not in authorization:
            await websocket.close(1008)
            return
        self.calls.append({"arn": websocket.path_params["arn"], "session_id": session, "authorization": authorization,
                           "ws": True})
        await websocket.accept()
        async with connect(self.agent_url.replace("http://", "ws://") + "/ws",
                           additional_headers={SESSION_HEADER: session or ""}, max_size=None) as agent:
            async def up() -> None:
                while (message := await websocket.receive())["type"] != "websocket.disconnect":
                    await agent.send(message.get("text") or message.get("bytes") or "")

            async def down() -> None:
                try:
                    async for message in agent:
                        await websocket.send_text(message if isinstance(message, str) else message.decode())
                except ConnectionClosed:
                    pass

            done, pending = await asyncio.wait([asyncio.ensure_future(up()), asyncio.ensure_future(down())],
                                               return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        try:
            await websocket.close()
        except RuntimeError:
            pass  # the client left first

    async def forward(self, request: Request) -> Response:
        session = request.headers.get(SESSION_HEADER)
        client = loopback.AsyncClient(timeout=60)
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        if session:
            headers[SESSION_HEADER] = session
        upstream = await client.send(
            client.build_request("POST", f"{self.agent_url}/invocations", content=await request.body(), headers=headers),
            stream=True,
        )
        record = Upstream()
        self.upstream.append(record)
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def read_to_the_end() -> None:  # whatever happens to our own client
            try:
                async for chunk in upstream.aiter_raw():
                    record.body += chunk
                    chunks.put_nowait(chunk)
            finally:
                record.ended_at = time.perf_counter()
                record.ended.set()
                chunks.put_nowait(None)
                await upstream.aclose()
                await client.aclose()

        reader = asyncio.ensure_future(read_to_the_end())
        reader.add_done_callback(lambda task: task.cancelled() or task.exception())
        drop_after = self.drop_after.pop(0) if self.drop_after else None

        async def relay() -> AsyncIterator[bytes]:
            sent = b""
            while (chunk := await chunks.get()) is not None:
                if drop_after is not None and (sent + chunk).count(b"\n\n") >= drop_after:
                    # Send up to the cut frame's end, then break the connection mid-response.
                    whole = sent + chunk
                    cut = _nth_frame_end(whole, drop_after)
                    yield whole[len(sent):cut]
                    raise ConnectionResetError("the stand-in cut this connection")
                sent += chunk
                yield chunk

        return StreamingResponse(
            relay(),
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type"),
            headers={SESSION_HEADER: session or ""},
        )


def _nth_frame_end(data: bytes, n: int) -> int:
    """The offset just after the `n`-th blank-line frame terminator in `data`."""
    end = 0
    for _ in range(n):
        end = data.index(b"\n\n", end) + 2
    return end
