"""Load: N sessions × T turns at once over HTTP on the offline endpoint.

Checks what must never happen (an error, a history that is not exactly its turns in order) and reports
p50/p99 time to first token and total per turn, as ratios to the same turn measured alone (one session,
sequential) against the same server in the same run. Loopback only; bounded in count and time.

    python -m bench.load [--sessions 100] [--turns 5] [--delay-ms 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import httpx


from bench.common import Server, percentile, table
from bedrock.core.graph import build_graph
from testkit.chat_models import ScriptedChatModel
from bedrock.core.tools import default_tools
from bedrock.store.sqlite import ThreadedSqliteSaver


async def turn(client: httpx.AsyncClient, url: str, session: str, n: int) -> tuple[float, float, dict]:
    payload = {"prompt": f"What is {n} * 7?", "session_id": session, "stream_tokens": True}
    started = time.perf_counter()
    first = None
    last: dict = {}
    async with client.stream("POST", url + "/stream", json=payload) as response:
        if response.status_code != 200:
            return 0.0, 0.0, {"error": response.status_code}
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
                if event == "llm_token" and first is None:
                    first = time.perf_counter() - started
            elif line.startswith("data: "):
                last = {"event": event, **json.loads(line[6:])}
    return (first or 0.0) * 1000, (time.perf_counter() - started) * 1000, last


async def session(client: httpx.AsyncClient, url: str, name: str, turns: int, samples: list) -> int:
    errors = 0
    for n in range(turns):
        ttft, total, last = await turn(client, url, name, n)
        if last.get("event") != "agent_end" or last.get("output") != f"The result of {n} * 7 is {n * 7}.":
            errors += 1
        samples.append((ttft, total))
    return errors


async def run(url: str, sessions: int, turns: int, prefix: str) -> tuple[int, list, float]:
    samples: list = []
    limits = httpx.Limits(max_connections=sessions, max_keepalive_connections=sessions)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        started = time.perf_counter()
        errors = await asyncio.gather(*(session(client, url, f"{prefix}-{i:04d}", turns, samples)
                                        for i in range(sessions)))
        return sum(errors), samples, time.perf_counter() - started


def check_histories(memory_path: str, prefix: str, sessions: int, turns: int) -> int:
    graph = build_graph(ScriptedChatModel(), default_tools(), ThreadedSqliteSaver.open(memory_path))
    bad = 0
    for i in range(sessions):
        messages = graph.get_state({"configurable": {"thread_id": f"{prefix}-{i:04d}"}}).values.get("messages", [])
        humans = [m.content for m in messages if m.type == "human"]
        if humans != [f"What is {n} * 7?" for n in range(turns)] or len(messages) != 4 * turns:
            bad += 1
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--delay-ms", type=int, default=5, help="offline endpoint pace per chunk")
    args = parser.parse_args()
    with Server({"OFFLINE_TOKEN_DELAY_MS": str(args.delay_ms)}) as server:
        asyncio.run(run(server.url, 1, 2, "warmup"))
        cpu = server.cpu_seconds()
        base_errors, base, _ = asyncio.run(run(server.url, 1, max(5, args.turns), "alone"))
        cpu_alone, cpu = server.cpu_seconds() - cpu, server.cpu_seconds()
        errors, samples, wall = asyncio.run(run(server.url, args.sessions, args.turns, "load"))
        cpu_load = server.cpu_seconds() - cpu
        bad = check_histories(server.memory_path, "load", args.sessions, args.turns)
    rows = []
    for label, index in (("time to first token", 0), ("turn total", 1)):
        alone = [s[index] for s in base]
        loaded = [s[index] for s in samples]
        for q in (50, 99):
            a, b = percentile(alone, q), percentile(loaded, q)
            rows.append((f"{label} p{q}", f"{a:.1f} ms", f"{b:.1f} ms", f"{b / a:.2f}×"))
    per_turn = cpu_alone * 1000 / len(base), cpu_load * 1000 / len(samples)
    rows.append(("server CPU per turn (2 model calls and a tool)", f"{per_turn[0]:.1f} ms", f"{per_turn[1]:.1f} ms",
                 f"{per_turn[1] / per_turn[0]:.2f}×"))
    print(f"{args.sessions} sessions × {args.turns} turns, chunk pace {args.delay_ms} ms, "
          f"{len(samples)} turns in {wall:.1f} s ({len(samples) / wall:.0f} turns/s)")
    print(table(("metric", "one session alone (baseline)", f"{args.sessions} sessions at once", "ratio"), rows))
    print(f"errors: {errors + base_errors}; sessions whose history is not exactly their turns in order: {bad}")
    return 1 if errors or base_errors or bad else 0


if __name__ == "__main__":
    sys.exit(main())
