"""SSE framework cost and token batching, over real HTTP on loopback.

1. The same frames streamed by plain Starlette (baseline), by our app, and by the SDK's generator path:
   events/s and server CPU µs per event.
2. A real agent whose model streams 2000 tokens with no latency: tokens/s reaching the client with
   TOKEN_BUFFER_SIZE 1 (unbatched, baseline), 4 (the default) and 10.
"""

from __future__ import annotations

import sys
import time
import uuid

import httpx


from bench.common import Server, median, table
from bench.sse_apps import LONG_REPLY_TOKENS

APPS = [sys.executable, "-m", "bench.sse_apps"]


def stream_once(client: httpx.Client, url: str, payload: dict) -> tuple[float, int]:
    started = time.perf_counter()
    chunks = []
    with client.stream("POST", url + "/invocations", json=payload) as response:
        for chunk in response.iter_raw():
            chunks.append(chunk)
    elapsed = time.perf_counter() - started
    return elapsed, b"".join(chunks).count(b"\n\n")  # frames may split anywhere across chunks


def framework(events: int, repeat: int) -> tuple[str, dict[str, float]]:
    variants = ("raw", "ours", "sdk-generator")
    servers = {variant: Server(command=[*APPS, variant]) for variant in variants}
    walls: dict[str, list[float]] = {v: [] for v in variants}
    cpus: dict[str, list[float]] = {v: [] for v in variants}
    try:
        with httpx.Client(timeout=300) as client:
            for server in servers.values():
                stream_once(client, server.url, {"prompt": "1000", "stream": True})  # warm up
            for _ in range(repeat):  # interleaved, so the machine's drift hits every variant alike
                for variant, server in servers.items():
                    cpu = server.cpu_seconds()
                    wall, seen = stream_once(client, server.url, {"prompt": str(events), "stream": True})
                    cpus[variant].append(server.cpu_seconds() - cpu)
                    walls[variant].append(wall)
                    assert seen >= events, (variant, seen)
    finally:
        for server in servers.values():
            server.stop()
    results: dict[str, float] = {}
    for variant in variants:
        results[variant] = events / median(walls[variant])
        results[variant + "_cpu_us"] = median(cpus[variant]) / events * 1e6
    rows = [(variant if variant != "raw" else "raw Starlette (baseline)", f"{results[variant]:,.0f}",
             f"{results[variant + '_cpu_us']:.1f}", f"{results[variant] / results['raw']:.2f}×")
            for variant in variants]
    return table(("server", "events/s", "server CPU µs/event", "× raw"), rows), results


def batching(repeat: int) -> tuple[str, dict[str, float]]:
    sizes = ("1", "4", "10")
    servers = {size: Server({"TOKEN_BUFFER_SIZE": size, "TOKEN_BUFFER_MAX_DELAY_MS": "50"},
                            command=[*APPS, "agent-long"])
               for size in sizes}
    walls: dict[str, list[float]] = {size: [] for size in sizes}
    frames: dict[str, int] = {}
    payload = {"prompt": "go", "stream": True, "stream_tokens": True}
    try:
        with httpx.Client(timeout=300) as client:
            for server in servers.values():
                stream_once(client, server.url, {**payload, "session_id": f"warm-{uuid.uuid4().hex}"})
            for _ in range(repeat):  # interleaved
                for size, server in servers.items():
                    session = {**payload, "session_id": f"b-{uuid.uuid4().hex}"}
                    wall, frames[size] = stream_once(client, server.url, session)
                    walls[size].append(wall)
    finally:
        for server in servers.values():
            server.stop()
    results: dict[str, float] = {size: LONG_REPLY_TOKENS / median(walls[size]) for size in sizes}
    labels = {"1": "1 (unbatched, baseline)", "4": "4 (default)", "10": "10"}
    rows = [(labels[size], f"{results[size]:,.0f}", frames[size], f"{results[size] / results['1']:.2f}×")
            for size in sizes]
    return table(("TOKEN_BUFFER_SIZE", "model tokens/s at the client", "events sent", "× unbatched"), rows), results


if __name__ == "__main__":
    smoke = "--smoke" in sys.argv
    print(framework(200 if smoke else 20_000, 1 if smoke else 5)[0])
    print()
    print(batching(1 if smoke else 5)[0])
