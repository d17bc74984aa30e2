"""Servers for the benchmarks, one per variant, on 127.0.0.1 port 0 (prints `PORT=N`).

    python -m bench.sse_apps raw|sdk-generator|ours|agent-long

- raw: plain Starlette streaming pre-framed SSE bytes — the ceiling.
- sdk-generator: BedrockAgentCoreApp with an async-generator entrypoint (11× raw Starlette's cost, so the
  entrypoint returns its own response).
- ours: the real `bedrock.agent_runtime.app`; only the turn's event source is a stub yielding the same frames,
  so validation, slots, deadlines, observers, framing and sse-starlette all run as in production.
- agent-long: the real app and a real graph whose (zero-latency) model answers with LONG_REPLY tokens.
"""

from __future__ import annotations

import gc
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn


from bedrock.wire.events import SSEEvent, encode_frame

LONG_REPLY_TOKENS = 2000


def frames(n: int) -> list[SSEEvent]:
    """agent_start, n-2 llm_token events, agent_end — the same bytes for every variant."""
    events = [encode_frame("agent_start", {"session_id": "bench", "actor_id": "bench", "timestamp": "t"}, 1)]
    events += [encode_frame("llm_token", {"token": "word ", "step": 2}, i) for i in range(2, n)]
    events.append(encode_frame("agent_end", {"output": "", "steps": 2, "metrics": {}, "timestamp": "t"}, n))
    return events


def raw_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def invocations(request: Request) -> StreamingResponse:
        n = int((await request.json())["prompt"])

        async def body() -> AsyncIterator[bytes]:
            for frame in frames(n):
                yield frame.encode()

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/invocations", invocations, methods=["POST"])])


def sdk_generator_app() -> Any:
    from bedrock_agentcore.runtime import BedrockAgentCoreApp

    app = BedrockAgentCoreApp()

    @app.entrypoint
    async def invoke(payload: dict[str, Any]) -> AsyncIterator[str]:
        for frame in frames(int(payload["prompt"])):
            yield str(frame)

    return app


def ours_app() -> Any:
    from bedrock.config import Settings
    from bedrock.core.build import build_agent
    from bedrock.core.turn import Agent
    from bedrock.server.app import build_app

    class FrameAgent(Agent):
        async def _events(self, request: Any, *_: Any) -> AsyncIterator[SSEEvent]:
            for frame in frames(int(request.prompt)):
                yield frame

    settings = Settings.from_env()
    real = build_agent(settings)
    return build_app(settings, agent=FrameAgent(real.graph, real.settings, real.store))


def agent_long_app() -> Any:
    from bedrock.config import Settings
    from bedrock.core.graph import build_graph
    from bedrock.core.tools import default_tools
    from bedrock.core.turn import Agent
    from bedrock.server.app import build_app
    from bedrock.store import open_store

    # The configured (SQLite) store, as in production: an in-process one would grow the heap every turn.
    settings = Settings.from_env()
    store = open_store(settings)
    graph = build_graph(long_reply_model(), default_tools(), store.checkpointer)
    return build_app(settings, agent=Agent(graph, settings, store))


def long_reply_model() -> Any:
    """A zero-latency chat model that streams LONG_REPLY_TOKENS word tokens (and reports usage)."""
    from bedrock.offline.rules import Reply
    from testkit.chat_models import ScriptedChatModel

    class LongReplyModel(ScriptedChatModel):
        def _reply(self, messages: Any, tools: Any) -> Reply:
            return Reply("word " * LONG_REPLY_TOKENS, None, 10, LONG_REPLY_TOKENS)

    return LongReplyModel()


VARIANTS = {"raw": raw_app, "sdk-generator": sdk_generator_app, "ours": ours_app, "agent-long": agent_long_app}


def serve(app: Any) -> None:
    """Serve a bench app on 127.0.0.1, a free port, printing `PORT=N` first (what bench.common.Server reads)."""
    # As `python -m bedrock.agent_runtime` does: the loaded modules leave the cyclic collector's scans.
    gc.collect()
    gc.freeze()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT={sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=75)).run(sockets=[sock])


def main() -> None:
    serve(VARIANTS[sys.argv[1]]())


if __name__ == "__main__":
    main()
