"""Per-token cost of our streaming layer, and the Bedrock wire path's cost, in-process.

1. A zero-latency model streaming 2000 tokens: `Agent.stream` (TOKEN_BUFFER_SIZE=1, one event per token)
   against raw `graph.astream(stream_mode=["messages", "updates"])` on the same graph — µs added per token.
2. An agent round trip ("What is 25 * 4?": two model calls and a tool) through ChatBedrockConverse and the local
   Bedrock endpoint, against the same rules as an in-process chat model (baseline).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
import uuid

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from bench.common import median, table
from bench.sse_apps import LONG_REPLY_TOKENS, long_reply_model
from bedrock.core.turn import Agent
from bedrock.config import Settings
from bedrock.core.graph import build_graph
from bedrock.core.model import make_model
from testkit.chat_models import ScriptedChatModel
from bedrock.offline.endpoint import OfflineBedrockEndpoint
from bedrock.wire.request import parse_request
from bedrock.core.tools import default_tools


def settle() -> None:
    """Collect, then freeze what earlier runs left (the in-process saver keeps every session) out of later
    collections: otherwise whichever variant happens to run while a full collection scans that growing heap
    pays ~45 µs a token for it (measured), and the comparison measures the collector, not the code."""
    gc.collect()
    gc.freeze()


async def raw_graph(graph, session: str) -> float:
    settle()
    config = {"configurable": {"thread_id": session}}
    started = time.perf_counter()
    async for _ in graph.astream({"messages": [HumanMessage("go")]}, config, stream_mode=["messages", "updates"]):
        pass
    return time.perf_counter() - started


async def ours(agent: Agent, session: str, tokens: bool = True) -> float:
    request = parse_request({"prompt": "go" if tokens else "What is 25 * 4?", "session_id": session,
                             "stream_tokens": tokens})
    settle()
    started = time.perf_counter()
    async for _ in agent.stream(request):
        pass
    return time.perf_counter() - started


async def per_token(repeat: int) -> tuple[str, dict[str, float]]:
    from testkit.telemetry import Collected, DroppingExporter

    graph = build_graph(long_reply_model(), default_tools(), InMemorySaver())
    settings = Settings(memory_backend="memory", token_buffer_size=1)
    unbatched = Agent(graph, settings)  # telemetry off: no OpenTelemetry SDK in this process
    batched = Agent(graph, Settings(memory_backend="memory"))  # the defaults: 4 tokens or 50 ms
    sdk = Collected(DroppingExporter())  # telemetry on: the SDK's providers, every span made and dropped
    traced = Agent(graph, settings, telemetry=sdk.telemetry(settings))
    runs: dict[str, list[float]] = {"raw": [], "unbatched": [], "batched": [], "traced": []}
    await raw_graph(graph, "warm-raw")
    await ours(unbatched, "warm-ours")
    await ours(traced, "warm-traced")
    for _ in range(repeat):  # interleaved, so drift hits all alike
        runs["raw"].append(await raw_graph(graph, uuid.uuid4().hex))
        runs["unbatched"].append(await ours(unbatched, uuid.uuid4().hex))
        runs["batched"].append(await ours(batched, uuid.uuid4().hex))
        runs["traced"].append(await ours(traced, uuid.uuid4().hex))
    sdk.shutdown()
    us = {name: median(times) / LONG_REPLY_TOKENS * 1e6 for name, times in runs.items()}
    rows = [("graph.astream(messages, updates) (baseline)", f"{us['raw']:.1f}", "—")]
    for name, label in (("unbatched", "Agent.stream, TOKEN_BUFFER_SIZE=1 (an event per token), telemetry off"),
                        ("batched", "Agent.stream, defaults (an event per 4 tokens), telemetry off"),
                        ("traced", "Agent.stream, TOKEN_BUFFER_SIZE=1, telemetry on (SDK, spans dropped)")):
        rows.append((label, f"{us[name]:.1f}", f"{us[name] - us['raw']:+.1f} µs ({us[name] / us['raw']:.2f}×)"))
    off_turn = telemetry_off_per_turn()
    rows.append(("telemetry off, per turn: its span and metrics with no SDK (a whole turn's cost, spread over "
                 f"{LONG_REPLY_TOKENS} tokens)", f"{off_turn / LONG_REPLY_TOKENS:.4f}", f"{off_turn:.1f} µs a turn"))
    return table(("per model token", "µs", "added by us"), rows), {
        "added_us": us["unbatched"] - us["raw"], "added_batched_us": us["batched"] - us["raw"],
        "traced_us": us["traced"] - us["unbatched"], "off_turn_us": off_turn}


def telemetry_off_per_turn(turns: int = 20_000) -> float:
    """µs a turn pays for telemetry without an SDK: its non-recording span and no-op metrics, begin to end.
    (Per token it pays nothing: the turn keeps the plain MetricsCallback.)"""
    from bedrock.core.telemetry import Telemetry
    from bedrock.wire.events import AGENT_END, encode_frame

    telemetry = Telemetry(Settings(memory_backend="memory"))
    end = encode_frame(AGENT_END, {"status": "completed", "metrics": {
        "latency_ms": 1.0, "time_to_first_token_ms": 0.5, "llm_calls": 1, "input_tokens": 5, "output_tokens": 9,
        "tool_calls": 0}})
    started = time.perf_counter()
    for _ in range(turns):
        trace = telemetry.turn("session", "actor", "run")
        trace.begin("prompt")
        trace.end(end)
    return (time.perf_counter() - started) / turns * 1e6


async def bedrock_path(repeat: int) -> tuple[str, dict[str, float]]:
    endpoint = OfflineBedrockEndpoint().start()
    try:
        settings = Settings(model_provider="offline", memory_backend="memory")
        scripted = Agent(build_graph(ScriptedChatModel(), default_tools(), InMemorySaver()), settings)
        wire = Agent(build_graph(make_model(settings, endpoint.url), default_tools(), InMemorySaver()), settings)
        results = {}
        for name, agent in (("scripted", scripted), ("wire", wire)):
            await ours(agent, "warm", tokens=False)
            results[name] = median([await ours(agent, uuid.uuid4().hex, tokens=False) for _ in range(repeat)]) * 1000
    finally:
        endpoint.stop()
    rows = [("rules as an in-process chat model (baseline)", f"{results['scripted']:.1f}", "1.00×"),
            ("ChatBedrockConverse → botocore → local endpoint", f"{results['wire']:.1f}",
             f"{results['wire'] / results['scripted']:.2f}×")]
    return table(("agent round trip (2 model calls + tool)", "ms", "×"), rows), results


async def wire_stream(repeat: int) -> tuple[str, dict[str, float]]:
    """Per streamed chunk through the local endpoint: our model (aiobotocore, on the event loop) vs the stock
    ChatBedrockConverse, whose async stream is LangChain's fallback (an executor round trip per chunk of
    botocore's blocking stream); same agent otherwise. Server and endpoint share this process."""
    from langchain_aws import ChatBedrockConverse

    from bedrock.core.model import OFFLINE_CREDENTIALS, botocore_config
    from bedrock.offline.rules import Reply

    endpoint = OfflineBedrockEndpoint().start()
    settings = Settings(model_provider="offline", memory_backend="memory", token_buffer_size=1)
    chunks = 1000
    stock = ChatBedrockConverse(model=settings.bedrock_model_id, region_name=settings.aws_region,
                                endpoint_url=endpoint.url, config=botocore_config(settings), **OFFLINE_CREDENTIALS)
    try:
        ours_graph = build_graph(make_model(settings, endpoint.url), default_tools(), InMemorySaver())
        agents = {"ours": Agent(ours_graph, settings),
                  "fallback": Agent(build_graph(stock, default_tools(), InMemorySaver()), settings)}
        cpu: dict[str, list[float]] = {name: [] for name in agents}
        for rep in range(repeat + 1):
            for name, agent in agents.items():
                endpoint.then(Reply("word " * chunks, None, 10, chunks))
                request = parse_request({"prompt": "x", "session_id": uuid.uuid4().hex, "stream_tokens": True})
                settle()
                started = time.process_time()
                async for _ in agent.stream(request):
                    pass
                if rep:  # the first round warms up
                    cpu[name].append((time.process_time() - started) / chunks * 1e6)
    finally:
        endpoint.stop()
    values = {name: median(v) for name, v in cpu.items()}
    rows = [("LangChain's fallback: an executor round trip per chunk (baseline)", f"{values['fallback']:.0f}", "1.00×"),
            ("ours: aiobotocore, on the event loop", f"{values['ours']:.0f}",
             f"{values['ours'] / values['fallback']:.2f}×")]
    return table(("ChatBedrockConverse stream, 1000 chunks", "CPU µs per chunk (server + endpoint)", "×"), rows), values


if __name__ == "__main__":
    smoke = "--smoke" in sys.argv
    print(asyncio.run(per_token(1 if smoke else 7))[0])
    print()
    print(asyncio.run(bedrock_path(2 if smoke else 30))[0])
    print()
    print(asyncio.run(wire_stream(1 if smoke else 5))[0])
