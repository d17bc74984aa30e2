"""Runs: what recording frames for `resume` costs per event, what running a turn as a run (its own task, read by
a follower) adds per token, and the memory a buffered run holds. In-process, zero-latency model.

    python -m bench.runs_bench [--events 200000] [--repeat 7] [--smoke]

Baselines, measured in the same run: the same loop over the same frames without recording; `Agent.stream`
iterated directly (the turn read by its consumer, as before runs existed).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
import tracemalloc
import uuid

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

from langgraph.checkpoint.memory import InMemorySaver

from bench.common import median, table
from bench.sse_apps import LONG_REPLY_TOKENS, long_reply_model
from bedrock.config import Settings
from bedrock.core.graph import build_graph
from bedrock.wire.request import parse_request
from bedrock.core.runs import Run, RunRegistry
from bedrock.core.tools import default_tools
from bedrock.core.turn import Agent
from bedrock.wire.events import EventSequence


def token_frames(n: int) -> list:
    seq = EventSequence()
    return [seq.token(f"word{i % 100} ", 2) for i in range(n)]


def record_cost(frames: list, repeat: int, per_run: int = LONG_REPLY_TOKENS) -> tuple[float, float]:
    """(µs per event of the bare loop, µs per event of Run._record), medians: runs of `per_run` frames each,
    RUN_BUFFER_BYTES at its default, no follower attached."""
    bare, recorded = [], []
    buffer_bytes = Settings().run_buffer_bytes
    for _ in range(repeat):
        gc.collect()
        sink: list = []
        started = time.perf_counter()
        for i, frame in enumerate(frames):
            if i % per_run == 0:
                sink = []
            sink.append(frame)
        bare.append((time.perf_counter() - started) / len(frames) * 1e6)
        started = time.perf_counter()
        for i, frame in enumerate(frames):
            if i % per_run == 0:
                record = Run("run-bench", "s", "a", buffer_bytes=buffer_bytes)._record
            record(frame)
        recorded.append((time.perf_counter() - started) / len(frames) * 1e6)
    return median(bare), median(recorded)


async def per_token(repeat: int) -> tuple[float, float]:
    """(µs per token reading Agent.stream directly, µs per token through a run and its follower)."""
    settings = Settings(memory_backend="memory", token_buffer_size=1)
    agent = Agent(build_graph(long_reply_model(), default_tools(), InMemorySaver()), settings)
    registry = RunRegistry(buffer_bytes=1 << 22, retention_s=0, retain_bytes=0)

    async def direct() -> float:
        request = parse_request({"prompt": "go", "session_id": f"b-{uuid.uuid4().hex}", "stream_tokens": True})
        gc.collect()
        started = time.perf_counter()
        async for _ in agent.stream(request):
            pass
        return time.perf_counter() - started

    async def as_run() -> float:
        request = parse_request({"prompt": "go", "session_id": f"b-{uuid.uuid4().hex}", "stream_tokens": True})
        gc.collect()
        started = time.perf_counter()
        run_id = f"run-{uuid.uuid4().hex}"
        run = registry.start(run_id, request.session_id, "a", agent.stream(request, run_id=run_id), "continue")
        async for _ in run.follow(0, owner=True):
            pass
        elapsed = time.perf_counter() - started
        await run.settled()
        return elapsed

    await direct()
    await as_run()  # warm-up
    directs, runs = [], []
    for _ in range(repeat):  # interleaved: drift hits both alike
        directs.append(await direct())
        runs.append(await as_run())
    await agent.drain()
    per = LONG_REPLY_TOKENS
    return median(directs) / per * 1e6, median(runs) / per * 1e6


def buffered_bytes(tokens: int) -> tuple[int, int]:
    """Bytes a run holds while it runs (its frames as the turn made them, and the buffer), and once it has
    ended (the frames' text only)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    run = Run("run-mem", "s", "a", buffer_bytes=1 << 24)
    for frame in token_frames(tokens):
        run._record(frame)
    running = tracemalloc.get_traced_memory()[0] - before
    run._finish("completed")
    gc.collect()
    finished = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert run.last_id == tokens
    return running, finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks it runs, not speed")
    args = parser.parse_args()
    events, repeat = (2_000, 1) if args.smoke else (args.events, args.repeat)
    bare, recorded = record_cost(token_frames(events), repeat)
    direct, as_run = asyncio.run(per_token(1 if args.smoke else repeat))
    rows = [
        [f"recording a frame for resume ({events:,} `llm_token` frames, no follower)", f"{recorded - bare:.2f} µs",
         f"bare loop {bare:.2f} µs/event", "≤ 1 µs"],
        [f"a {LONG_REPLY_TOKENS}-token turn read through its run and a follower", f"{as_run - direct:+.2f} µs/token",
         f"Agent.stream read directly: {direct:.2f} µs/token ({as_run / direct:.2f}×)", "—"],
    ]
    for tokens in (30, LONG_REPLY_TOKENS):
        running, finished = buffered_bytes(tokens)
        rows.append([f"memory of a run of {tokens} token frames, kept for resume after its end",
                     f"{finished / 1024:.1f} KiB ({finished / tokens:.0f} B/frame)",
                     f"while it runs: {running / 1024:.1f} KiB ({running / tokens:.0f} B/frame)", "—"])
    print(table(["what", "cost", "baseline (same run)", "goal"], rows))


if __name__ == "__main__":
    main()
