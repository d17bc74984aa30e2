"""The same run's events over each wire: server CPU µs per event over WebSocket /ws against the SSE stream (the
baseline), measured in the same run on the same server.

One server (bench/sse_apps.py's `ours`: our app whose agent yields agent_start, N llm_token events and agent_end,
no model) answers both; runs alternate between the wires so the machine's drift hits both alike. The client reads
every event (SSE: httpx's raw chunks; WS: the `websockets` client's messages) on the same machine.

    python -m bench.wire_bench [--events 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import httpx
from websockets.asyncio.client import connect

from bench.common import Server, median, table
from bench.framework import APPS, stream_once


async def over_ws(url: str, events: int) -> tuple[float, int]:
    """One run over /ws: wall seconds, and messages read (its events)."""
    async with connect(url.replace("http://", "ws://") + "/ws", max_size=None) as ws:
        started = time.perf_counter()
        await ws.send(json.dumps({"prompt": str(events), "request_id": "r"}))
        seen = 0
        async for message in ws:
            seen += 1
            if '"event":"agent_end"' in message[:40]:
                break
        return time.perf_counter() - started, seen


def wires(events: int, repeat: int) -> tuple[str, dict[str, float]]:
    server = Server(command=[*APPS, "ours"])
    cpus: dict[str, list[float]] = {"sse": [], "ws": []}
    walls: dict[str, list[float]] = {"sse": [], "ws": []}
    try:
        with httpx.Client(timeout=300) as client:
            stream_once(client, server.url, {"prompt": "1000", "stream": True})  # warm up both
            asyncio.run(over_ws(server.url, 1000))
            for _ in range(repeat):
                cpu = server.cpu_seconds()
                wall, seen = stream_once(client, server.url, {"prompt": str(events), "stream": True})
                cpus["sse"].append(server.cpu_seconds() - cpu)
                walls["sse"].append(wall)
                assert seen >= events, ("sse", seen)
                cpu = server.cpu_seconds()
                wall, seen = asyncio.run(over_ws(server.url, events))
                cpus["ws"].append(server.cpu_seconds() - cpu)
                walls["ws"].append(wall)
                assert seen >= events, ("ws", seen)
    finally:
        server.stop()
    results = {f"{wire}_cpu_us": median(cpus[wire]) / events * 1e6 for wire in cpus}
    results.update({f"{wire}_events_s": events / median(walls[wire]) for wire in walls})
    labels = {"sse": "SSE, POST /invocations (baseline)", "ws": "WebSocket /ws"}
    rows = [(labels[wire], f"{results[wire + '_cpu_us']:.1f}", f"{results[wire + '_events_s']:,.0f}",
             f"{results[wire + '_cpu_us'] / results['sse_cpu_us']:.2f}×") for wire in cpus]
    return table(("wire", "server CPU µs/event", "events/s at the client", "CPU × SSE"), rows), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.repeat = 200, 1
    print(wires(args.events, args.repeat)[0])


if __name__ == "__main__":
    sys.exit(main())
