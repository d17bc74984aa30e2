"""A local stand-in for AgentCore Runtime's InvokeAgentRuntime endpoint, in front of a live agent server.

`POST /runtimes/{arn}/invocations` (what boto3's `bedrock-agentcore` client calls) requires a SigV4
`authorization` header for the `bedrock-agentcore` service, records the call, and forwards the body and the
runtime session header to the agent's `/invocations`, streaming the reply back with its status and content type —
what the real service does for an HTTP-protocol runtime.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bedrock.wire.headers import SESSION_HEADER


class RuntimeStandIn:
    """The ASGI `app`; `calls` lists what each request carried (arn, qualifier, session id, authorization)."""

    def __init__(self, agent_url: str) -> None:
        self.agent_url = agent_url
        self.calls: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/runtimes/{arn:path}/invocations", self.invoke, methods=["POST"])])

    async def invoke(self, request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("AWS4-HMAC-SHA256 ") or "/bedrock-agentcore/aws4_request" not in authorization:
            return JSONResponse(
                {"message": "Missing Authentication Token"}, 403, headers={"x-amzn-errortype": "AccessDeniedException"}
            )
        session = request.headers.get(SESSION_HEADER)
        self.calls.append({
            "arn": request.path_params["arn"],
            "qualifier": request.query_params.get("qualifier"),
            "session_id": session,
            "accept": request.headers.get("accept"),
            "authorization": authorization,
        })
        client = httpx.AsyncClient(timeout=30)
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        if session:
            headers[SESSION_HEADER] = session
        upstream = await client.send(
            client.build_request("POST", f"{self.agent_url}/invocations", content=await request.body(), headers=headers),
            stream=True,
        )

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()
                await client.aclose()

        return StreamingResponse(
            relay(),
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type"),
            headers={SESSION_HEADER: session or ""},
        )
