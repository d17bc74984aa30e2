"""The same run's events over each wire: server CPU µs per event over WebSocket /ws and over A2A's `message/stream`
against the SSE stream (the baseline), measured in the same run on the same server.

One server (bench/sse_apps.py's `ours`: our app whose agent yields agent_start, N llm_token events and agent_end,
no model) answers both; runs alternate between the wires so the machine's drift hits both alike. The client reads
every event (SSE and A2A: httpx's raw chunks; WS: the `websockets` client's messages) on the same machine. A2A's
runs are shorter (`--a2a-events`, with an SSE baseline of the same length): a2a-sdk copies the whole task for every
update it applies, so its cost grows with the answer's length; tokens reach A2A clients coalesced, at most 20 chunks a
second (bedrock/a2a/updates.py), and the cost is per event of the run all the same.

    python -m bench.wire_bench [--events 20000] [--a2a-events 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid

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


def ratio(value: float, baseline: float) -> str:
    """`value` as a multiple of `baseline`; none when the baseline measured no CPU at all (the process's CPU clock
    ticks every 10 ms: a smoke run's tiny runs may fit in none)."""
    return f"{value / baseline:.2f}×" if baseline > 0 else "—"


def over_a2a(client: httpx.Client, url: str, events: int) -> tuple[float, int]:
    """One run over A2A's JSON-RPC `message/stream` (v0.3's names): wall seconds, and its updates read (tokens are
    coalesced into chunks: bedrock/a2a/updates.py)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/stream", "params": {"message": {
        "kind": "message", "role": "user", "messageId": uuid.uuid4().hex,
        "parts": [{"kind": "text", "text": str(events)}]}}}
    started = time.perf_counter()
    chunks = []
    with client.stream("POST", url + "/a2a", json=body) as response:
        for chunk in response.iter_raw():
            chunks.append(chunk)
    body_read = b"".join(chunks)
    assert b'"state":"completed"' in body_read, body_read[-300:]
    return time.perf_counter() - started, body_read.count(b"data: ")  # (a2a-sdk's frames end in \r\n\r\n)


def a2a_against_sse(events: int, repeat: int) -> tuple[str, dict[str, float]]:
    server = Server(command=[*APPS, "ours"])
    cpus: dict[str, list[float]] = {"sse": [], "a2a": []}
    updates = 0
    try:
        with httpx.Client(timeout=300) as client:
            stream_once(client, server.url, {"prompt": "100", "stream": True})
            over_a2a(client, server.url, 100)  # a2a-sdk is imported and built on the first A2A request
            for _ in range(repeat):
                cpu = server.cpu_seconds()
                _, seen = stream_once(client, server.url, {"prompt": str(events), "stream": True})
                cpus["sse"].append(server.cpu_seconds() - cpu)
                assert seen >= events, ("sse", seen)
                cpu = server.cpu_seconds()
                _, updates = over_a2a(client, server.url, events)
                cpus["a2a"].append(server.cpu_seconds() - cpu)
    finally:
        server.stop()
    results = {f"{wire}_cpu_us": median(cpus[wire]) / events * 1e6 for wire in cpus}
    labels = {"sse": f"SSE, {events} events (baseline)",
              "a2a": f"A2A message/stream, the same {events} events as {updates} updates"}
    rows = [(labels[wire], f"{results[wire + '_cpu_us']:.1f}", ratio(results[wire + "_cpu_us"], results["sse_cpu_us"]))
            for wire in cpus]
    return table(("wire", "server CPU µs/event", "CPU × SSE"), rows), results


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
             ratio(results[wire + "_cpu_us"], results["sse_cpu_us"])) for wire in cpus]
    return table(("wire", "server CPU µs/event", "events/s at the client", "CPU × SSE"), rows), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--a2a-events", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.a2a_events, args.repeat = 200, 50, 1
    print(wires(args.events, args.repeat)[0])
    print()
    print(a2a_against_sse(args.a2a_events, args.repeat)[0])


if __name__ == "__main__":
    sys.exit(main())
