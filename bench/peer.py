"""Side by side with LangGraph's own Agent Server: the same graph, the same model endpoint, the same client.

Ours (the real app) and the peer (`langgraph-api` 0.16.7 via `langgraph dev`, from the bench-only .venv/bench:
bench/peer_server.py) serve this project's built-in agent (bench/peer_graph.py for the peer), each keeping its
sessions in its own process (ours MEMORY_BACKEND=memory, the peer's in-memory runtime), a new session or thread per
stream, one frame per model chunk (ours TOKEN_BUFFER_SIZE=1; the peer's `messages-tuple` mode). Both read one
offline Bedrock endpoint in a process of its own, pacing its chunks at 20 ms, and are driven by bench/loadgen.py
(its own process), measured in turns (a round of one, then the other):

- one at a time: server CPU per turn, and the turn's time (request sent → last token);
- a burst (N streams in one instant) and spread arrivals (Poisson, the same mean rate): server CPU per turn and
  per chunk, p99 of each stream's time ÷ its ideal (chunks × pace), p99 of its largest gap between chunks;
- memory: RSS idle and at the burst's peak, per stream;
- the capacity curve: p99 stream time ÷ ideal and CPU per turn at 50, 100, 200 and 400 streams at once, drawn
  to bench/capacity_curve.png (bench/curve.py, matplotlib from .venv/bench); streams per core at p99 ≤ 1.2×;
- cold start: process start → the first token of a request sent the moment it answers its health check.

    python -m bench.peer [--streams 100] [--rounds 3] [--sequential 10] [--curve 50,100,200,400] [--cold 3]
                         [--json] [--smoke] [--dev-defaults]

The peer gets its best showing (bench/peer_server.py); `--dev-defaults` measures it as `langgraph dev` starts by
default instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.capacity import PACE_MS, load, summarise
from bench.common import OFFLINE_ENV, ROOT, Endpoint, Server, median, table
from bench.cold_start import free_port, wait_ready
from bench.loadgen import our_payload, peer_request, stream
from testkit import loopback

BENCH_PYTHON = ROOT / ".venv" / "bench" / "bin" / "python"
OURS, PEER = "ours", "langgraph-api"
# The peer's stream has no end event: its last frame is a `messages` one (the model's closing chunk).
SHAPES = {OURS: ("/stream", [], "agent_end"), PEER: ("/runs/stream", ["--peer"], "messages")}
STREAMS_PER_CORE_AT = 1.2  # the curve's bound: p99 stream time ÷ ideal
STOCK_MODEL = "--stock-model" in sys.argv  # the peer serves bench/peer_graph.py's graph_stock


def start_servers(env: dict[str, str], jobs: int, folder: Path, dev_defaults: bool = False) -> dict[str, Server]:
    if not BENCH_PYTHON.exists():
        raise SystemExit(f"{BENCH_PYTHON} is missing: `make bench` sets up .venv/bench (bench/requirements.lock)")
    ours = Server({**env, "MEMORY_BACKEND": "memory", "TOKEN_BUFFER_SIZE": "1",
                   "MAX_CONCURRENT_INVOCATIONS": str(jobs)})
    try:
        command = [str(BENCH_PYTHON), "-m", "bench.peer_server", str(jobs)]
        peer = Server({**env, "PYTHONPATH": str(ROOT)}, command=command + ["--dev-defaults"] * dev_defaults,
                      cwd=folder)
    except BaseException:
        ours.stop()
        raise
    return {OURS: ours, PEER: peer}


def run(server: Server, label: str, streams: int, options: list[str] | None = None,
        sequential: bool = False) -> tuple[list[dict], float]:
    path, flags, last = SHAPES[label]
    if label == PEER and STOCK_MODEL:
        flags = [*flags, "--extra", '{"assistant_id": "agent_stock"}']
    return load(server, path, streams, sequential=sequential, options=[*flags, *(options or [])], last=last)


def rounds(servers: dict[str, Server], count: int, measure: Callable[[Server, str], dict[str, float]]
           ) -> dict[str, dict[str, float]]:
    """`count` rounds of `measure` on each server in turn; the median of each value."""
    seen: dict[str, list[dict[str, float]]] = {label: [] for label in servers}
    for _ in range(count):
        for label, server in servers.items():
            seen[label].append(measure(server, label))
    return {label: {key: median(r[key] for r in values) for key in values[0]} for label, values in seen.items()}


def sequential(server: Server, label: str, turns: int) -> dict[str, float]:
    results, cpu = run(server, label, turns, sequential=True)
    turn_ms = [r["first_ms"] + r["times_ms"][-1] for r in results]
    return {"cpu_ms_per_turn": cpu * 1000 / turns, "turn_ms": median(turn_ms),
            "first_ms": median(r["first_ms"] for r in results)}


def measure_all(streams: int, count: int, turns: int, curve: list[int], dev_defaults: bool = False
                ) -> dict[str, Any]:
    values: dict[str, Any] = {"streams": streams, "curve_sizes": curve}
    folder = Path(tempfile.mkdtemp(prefix="peer-"))
    with Endpoint(PACE_MS) as endpoint:
        env = {**endpoint.server_env(), "OFFLINE_TOKEN_DELAY_MS": str(int(PACE_MS))}
        servers = start_servers(env, max([streams, *curve]) + 50, folder, dev_defaults)
        try:
            ideal = warm_up(servers)
            values["ideal_ms"] = ideal
            values["alone"] = rounds(servers, 1, lambda s, label: sequential(s, label, turns))
            values["idle_rss"] = {label: s.rss_mb() for label, s in servers.items()}
            values["burst"] = rounds(servers, count, lambda s, label: summarise(*run(s, label, streams)))
            spread = ["--spread", "--ideal-ms", f"{ideal:.0f}"]
            values["spread"] = rounds(servers, count, lambda s, label: summarise(*run(s, label, streams, spread)))
            values["peak_rss"] = {label: s.peak_rss_mb() for label, s in servers.items()}
            values["curve"] = {label: [] for label in servers}
            for n in curve:  # smallest first: each size's cost adds to what the process has grown to hold
                for label, server in servers.items():
                    values["curve"][label].append(summarise(*run(server, label, n)))
        finally:
            for server in servers.values():
                server.stop()
            shutil.rmtree(folder, ignore_errors=True)
    return values


def warm_up(servers: dict[str, Server]) -> float:
    """A few turns on each (first connections, the model's client, caches); one stream's ideal time in ms."""
    chunks = set()
    for label, server in servers.items():
        results, _ = run(server, label, 3, sequential=True)
        chunks |= {r["tokens"] for r in results}
    if len(chunks) != 1:
        raise SystemExit(f"the servers streamed different numbers of chunks: {chunks}")
    return (chunks.pop() - 1) * PACE_MS


# --- cold start ---------------------------------------------------------------------------------------------


def cold_start(env: dict[str, str], runs: int) -> dict[str, dict[str, float]]:
    """Process start → ready (its health check answers 200) → first token of a request sent then; interleaved."""
    commands = {OURS: ([sys.executable, "-m", "bedrock.agent_runtime"], "/ping", ROOT),
                PEER: ([str(BENCH_PYTHON), "-m", "bench.peer_server", "10"], "/ok", None)}
    seen: dict[str, list[tuple[float, float]]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, (command, health, cwd) in commands.items():
            seen[label].append(one_cold_start(label, command, health, cwd, env))
    return {label: {"ready_ms": median(r for r, _ in rows), "first_token_ms": median(r + f for r, f in rows)}
            for label, rows in seen.items()}


def one_cold_start(label: str, command: list[str], health: str, cwd: Path | None,
                   env: dict[str, str]) -> tuple[float, float]:
    folder = Path(tempfile.mkdtemp(prefix="peer-cold-"))
    port = free_port()
    child = {**os.environ, **env, "PYTHONPATH": str(ROOT), "PORT": str(port), "BIND_HOST": "127.0.0.1",
             "MEMORY_BACKEND": "memory", "LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd or folder, env=child, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        if label == PEER:  # it picks its own port and says which
            port = int((process.stdout.readline() if process.stdout else "").strip().split("=", 1)[1])
        with loopback.Client(timeout=5.0) as client:
            ready = wait_ready(client, f"http://127.0.0.1:{port}", process, started, health)
        result = asyncio.run(first_stream(label, port))
        if result["first_ms"] is None:
            raise SystemExit(f"{label}: the cold process streamed no token: {result}")
        return ready * 1000, result["first_ms"]
    finally:
        process.kill()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


async def first_stream(label: str, port: int) -> dict:
    prompt = "Tell me about the sea"
    if label == OURS:
        return await stream(port, "/invocations", our_payload(prompt))
    path, payload = peer_request(prompt, "agent_stock" if STOCK_MODEL else "agent")
    return await stream(port, path, payload, peer=True)


# --- report -------------------------------------------------------------------------------------------------


def report(values: dict[str, Any], cores: int) -> str:
    streams, a, b, s = values["streams"], values["alone"], values["burst"], values["spread"]
    per_stream = {label: (values["peak_rss"][label] - values["idle_rss"][label]) * 1024 / streams
                  for label in (OURS, PEER)}
    rows = [
        ("server CPU per turn, one at a time", *pair(a, "cpu_ms_per_turn", "{:.1f} ms")),
        ("turn time one at a time (request → last token)", *pair(a, "turn_ms", "{:.0f} ms")),
        (f"server CPU per turn, {streams} at once", *pair(b, "cpu_ms_per_turn", "{:.1f} ms")),
        (f"server CPU per chunk, {streams} at once", *pair(b, "cpu_us_per_chunk", "{:.0f} µs")),
        (f"p99 stream time ÷ ideal, {streams} at once", *pair(b, "ratio_p99", "{:.3f}")),
        (f"p99 largest gap, {streams} at once", *pair(b, "gap_p99", "{:.0f} ms")),
        (f"server CPU per turn, {streams} spread (Poisson)", *pair(s, "cpu_ms_per_turn", "{:.1f} ms")),
        (f"p99 stream time ÷ ideal, {streams} spread", *pair(s, "ratio_p99", "{:.3f}")),
        (f"p99 largest gap, {streams} spread", *pair(s, "gap_p99", "{:.0f} ms")),
        ("RSS idle", *pair(values["idle_rss"], None, "{:.0f} MB")),
        (f"RSS per stream ({streams} at once)", *pair(per_stream, None, "{:.0f} KB")),
    ]
    curve = values["curve"]
    for label in (OURS, PEER):
        capacity = [n for n, r in zip(values["curve_sizes"], curve[label], strict=True)
                    if r["ratio_p99"] <= STREAMS_PER_CORE_AT]
        values.setdefault("streams_per_core", {})[label] = max(capacity, default=0) / cores
    rows.append((f"streams per core at p99 ≤ {STREAMS_PER_CORE_AT}× ideal (of {values['curve_sizes']})",
                 *pair(values["streams_per_core"], None, "{:.0f}")))
    if "cold" in values:
        rows += [("cold start: process start → ready", *pair(values["cold"], "ready_ms", "{:.0f} ms")),
                 ("cold start: process start → first token", *pair(values["cold"], "first_token_ms", "{:.0f} ms"))]
    text = table(("", "ours", "langgraph-api", "ours ÷ peer"), rows)
    text += "\n\nCapacity curve (one burst of each size; p99 stream time ÷ ideal, server CPU per turn):\n\n"
    text += table(("streams at once", "ours p99 ÷ ideal", "peer p99 ÷ ideal", "ours CPU/turn", "peer CPU/turn"),
                  [(n, f"{o['ratio_p99']:.3f}", f"{p['ratio_p99']:.3f}", f"{o['cpu_ms_per_turn']:.1f} ms",
                    f"{p['cpu_ms_per_turn']:.1f} ms")
                   for n, o, p in zip(values["curve_sizes"], curve[OURS], curve[PEER], strict=True)])
    return text


def pair(values: dict[str, Any], key: str | None, form: str) -> tuple[str, str, str]:
    ours, peer = (values[label] if key is None else values[label][key] for label in (OURS, PEER))
    return form.format(ours), form.format(peer), f"{ours / peer:.2f}×" if peer else "—"


def plot(values: dict[str, Any], path: Path) -> None:
    """bench/curve.py in .venv/bench (matplotlib is not the product's)."""
    subprocess.run([str(BENCH_PYTHON), "-m", "bench.curve", str(path)], input=json.dumps(values), text=True,
                   cwd=ROOT, check=True, timeout=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sequential", type=int, default=10)
    parser.add_argument("--curve", default="50,100,200,400")
    parser.add_argument("--cold", type=int, default=3, help="cold starts of each")
    parser.add_argument("--plot", type=Path, help="draw the capacity curve to this PNG")
    parser.add_argument("--json", action="store_true", help="also print the values as JSON")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks it runs, not speed")
    parser.add_argument("--stock-model", action="store_true",
                        help="the peer serves the graph with langchain-aws's own ChatBedrockConverse")
    parser.add_argument("--dev-defaults", action="store_true",
                        help="the peer as `langgraph dev` starts by default (blocking-I/O checks, info logs)")
    args = parser.parse_args()
    if args.smoke:
        args.streams, args.rounds, args.sequential, args.curve, args.cold = 5, 1, 2, "5,10", 1
    values = measure_all(args.streams, args.rounds, args.sequential, [int(n) for n in args.curve.split(",")],
                         args.dev_defaults)
    if args.cold:
        with Endpoint(0) as endpoint:
            values["cold"] = cold_start({**OFFLINE_ENV, **endpoint.server_env()}, args.cold)
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores; {values['ideal_ms']:.0f} ms ideal stream ({PACE_MS:.0f} ms a chunk); medians of "
          f"{args.rounds} rounds, the servers in turns; cold start: median of {args.cold} of each.\n")
    print(report(values, cores))
    if args.plot:
        plot(values, args.plot)
    if args.json:
        print(json.dumps(values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
