"""The floors of a streamed turn's server CPU: what any server doing less than ours would spend.

    python -m bench.floor_apps sse|bedrock|langgraph|langgraph-tap   # POST /invocations on 127.0.0.1; prints PORT=N

- sse: Starlette streaming the turn's SSE frames, paced as the model paces its chunks — HTTP and SSE alone.
- bedrock: the Converse stream alone (aiobotocore, no thread), each text delta relayed as an `llm_token` frame.
- langgraph: LangGraph and the model as our agent calls them (the same graph and model, tools bound, no
  memory), its `messages` stream relayed as frames: what our runtime adds to is measured against this one.
- langgraph-tap: the same, its tokens taken from the model's callback as ours are (not a floor: what that saves).

All read the offline endpoint named by AWS_ENDPOINT_URL_BEDROCK_RUNTIME (the `sse` floor: its pace and the
offline model's reply length, so the bytes match).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from bedrock.config import Settings
from bench.sse_apps import serve
from bedrock.wire.events import encode_frame, token_frame

PACE_S = float(os.environ.get("OFFLINE_TOKEN_DELAY_MS", "20")) / 1000


def frames_app(turn: Any) -> Starlette:
    """POST /invocations → agent_start, what `turn(prompt)` yields (token texts) as llm_token frames, agent_end."""

    async def invocations(request: Request) -> StreamingResponse:
        payload = await request.json()

        async def body() -> AsyncIterator[str]:
            yield encode_frame("agent_start", {"session_id": payload["session_id"]}, 1)
            n = 1
            async for text in turn(payload["prompt"]):
                n += 1
                yield token_frame(text, 2, n)
            yield encode_frame("agent_end", {"output": ""}, n + 1)

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/invocations", invocations, methods=["POST"])])


def sse_floor() -> Starlette:
    from bedrock.offline.rules import Turn, reply_to, tokenize

    async def turn(prompt: str) -> AsyncIterator[str]:
        for i, token in enumerate(tokenize(reply_to([Turn("user", prompt)]).text)):
            if i:
                await asyncio.sleep(PACE_S)
            yield token

    return frames_app(turn)


def bedrock_floor() -> Starlette:
    from bedrock.core.model import make_model

    model = make_model(Settings.from_env())  # only for its aiobotocore clients: the request is written here

    async def turn(prompt: str) -> AsyncIterator[str]:
        client = await model.async_clients.get()
        response = await client.converse_stream(modelId=model.model_id,
                                                messages=[{"role": "user", "content": [{"text": prompt}]}])
        async for event in response["stream"]:
            text = event.get("contentBlockDelta", {}).get("delta", {}).get("text")
            if text:
                yield text

    return frames_app(turn)


def langgraph_floor() -> Starlette:
    from langchain_core.messages import HumanMessage

    from bedrock.core.graph import build_graph
    from bedrock.core.model import make_model
    from bedrock.core.tools import default_tools

    settings = Settings.from_env()
    graph = build_graph(make_model(settings), default_tools(), None, settings.history_max_messages)

    async def turn(prompt: str) -> AsyncIterator[str]:
        async for message, _ in graph.astream({"messages": [HumanMessage(prompt)]}, stream_mode="messages"):
            if message.content:
                yield message.text

    return frames_app(turn)


def langgraph_tap() -> Starlette:
    """The `langgraph` floor with its tokens taken as ours are (bedrock/core/tokens.py), not by `messages` mode."""
    from langchain_core.messages import HumanMessage

    from bedrock.core.graph import build_graph
    from bedrock.core.model import make_model
    from bedrock.core.tokens import TappedStream, TokenTap
    from bedrock.core.tools import default_tools

    settings = Settings.from_env()
    graph = build_graph(make_model(settings), default_tools(), None, settings.history_max_messages)

    async def turn(prompt: str) -> AsyncIterator[str]:
        tap = TokenTap()
        stream = TappedStream(graph.astream({"messages": [HumanMessage(prompt)]}, {"callbacks": [tap]},
                                            stream_mode=["updates"], subgraphs=True), tap)
        async for _, mode, chunk in stream:
            if mode == "messages" and chunk[0].content:
                yield chunk[0].text

    return frames_app(turn)


FLOORS = {"sse": sse_floor, "bedrock": bedrock_floor, "langgraph": langgraph_floor, "langgraph-tap": langgraph_tap}


def main() -> None:
    serve(FLOORS[sys.argv[1]]())


if __name__ == "__main__":
    main()
