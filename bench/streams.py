"""Isolation over HTTP (offline endpoint in its own process, paced at 250 ms a chunk): with N slow streams open,
p99 latency of `/ping` and of a new stream's first token, against the same with no stream open (baseline).

Paced load, server CPU per turn and memory per stream: bench/capacity.py.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

import httpx


from bench.common import Endpoint, Server, percentile, table

PROMPT = "Tell me about the sea"  # the offline model's plain reply: ~40 chunks


async def first_token_ms(client: httpx.AsyncClient, url: str) -> float:
    payload = {"prompt": PROMPT, "session_id": f"probe-{uuid.uuid4().hex}", "stream_tokens": True}
    started = time.perf_counter()
    async with client.stream("POST", url + "/stream", json=payload) as response:
        async for line in response.aiter_lines():
            if line.startswith("event: llm_token"):
                return (time.perf_counter() - started) * 1000
    raise RuntimeError("stream ended without a token")


async def probes(url: str, samples: int) -> tuple[list[float], list[float]]:
    pings, tokens = [], []
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(samples):
            started = time.perf_counter()
            await client.get(url + "/ping")
            pings.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.01)
        for _ in range(max(3, samples // 3)):
            tokens.append(await first_token_ms(client, url))
    return pings, tokens


async def hold_stream(client: httpx.AsyncClient, url: str, opened: asyncio.Event, counter: list[int], total: int,
                      stop: asyncio.Event) -> None:
    payload = {"prompt": PROMPT, "session_id": f"slow-{uuid.uuid4().hex}", "stream_tokens": True}
    async with client.stream("POST", url + "/stream", json=payload) as response:
        async for _ in response.aiter_raw():
            counter[0] += 1
            if counter[0] == total:
                opened.set()
            if stop.is_set():
                return
            break
        async for _ in response.aiter_raw():
            if stop.is_set():
                return


async def isolation(streams: int, samples: int) -> tuple[str, dict[str, float]]:
    env = {"MAX_CONCURRENT_INVOCATIONS": str(streams + 50)}
    with Endpoint(250) as endpoint, Server({**endpoint.server_env(), **env}) as server:
        await probes(server.url, 3)  # warm up
        idle_pings, idle_tokens = await probes(server.url, samples)
        opened, stop, counter = asyncio.Event(), asyncio.Event(), [0]
        limits = httpx.Limits(max_connections=streams + 10)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            holders = [asyncio.ensure_future(hold_stream(client, server.url, opened, counter, streams, stop))
                       for _ in range(streams)]
            await asyncio.wait_for(opened.wait(), 60)
            await asyncio.sleep(1.0)  # past the open burst: measure the steady state of N open streams
            busy_pings, busy_tokens = await probes(server.url, samples)
            stop.set()
            for holder in holders:
                holder.cancel()
            await asyncio.gather(*holders, return_exceptions=True)
    values = {"ping_idle": percentile(idle_pings, 99), "ping_busy": percentile(busy_pings, 99),
              "token_idle": percentile(idle_tokens, 99), "token_busy": percentile(busy_tokens, 99)}
    rows = [("/ping p99", f"{values['ping_idle']:.1f} ms", f"{values['ping_busy']:.1f} ms"),
            ("new stream's first token p99", f"{values['token_idle']:.1f} ms", f"{values['token_busy']:.1f} ms")]
    return table(("latency", "no stream open (baseline)", f"{streams} slow streams open"), rows), values


if __name__ == "__main__":
    smoke = "--smoke" in sys.argv
    print(asyncio.run(isolation(5 if smoke else 200, 5 if smoke else 30))[0])
