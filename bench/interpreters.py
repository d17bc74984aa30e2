"""The interpreter: the runtime's cold start and server CPU per turn on each Python AgentCore offers, in one run.

AgentCore's code-zip runtime offers PYTHON_3_11, PYTHON_3_12 and PYTHON_3_13. Each PYTHON given is a virtual
environment's interpreter with the dev lock installed (`make bench` sets up .venv/py3.12 and .venv/py3.13 where
those Pythons exist); the first is the baseline (this checkout's .venv: 3.11). For each, interleaved:

- cold start (bench/cold_start.py's measure: the model on Bedrock's wire, a standalone endpoint answering at once):
  process start → ready (`/ping` 200) and → first token of a request sent then; peak RSS;
- server CPU per streamed turn (bench/capacity.py's load: the endpoint pacing at 20 ms a chunk, MEMORY_BACKEND
  SQLite, a new session a turn, one `llm_token` frame a chunk): one at a time, and N streams at once.

    python -m bench.interpreters [--runs 5] [--turns 20] [--streams 100] [--rounds 3] PYTHON...
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench.capacity import PACE_MS, load
from bench.cold_start import Run, measure
from bench.common import Endpoint, Server, median, table


def version(python: str) -> str:
    return subprocess.run([python, "-c", "import platform; print(platform.python_version())"], check=True,
                          capture_output=True, text=True, timeout=60).stdout.strip()


def cold(pythons: list[str], runs: int) -> dict[str, list[Run]]:
    seen: dict[str, list[Run]] = {python: [] for python in pythons}
    with Endpoint(0) as endpoint:
        for python in pythons:  # untimed: page cache and bytecode
            measure([python, "-m", "bedrock.agent_runtime"], endpoint.url)
        for _ in range(runs):
            for python in pythons:
                seen[python].append(measure([python, "-m", "bedrock.agent_runtime"], endpoint.url))
    return seen


def cpu(pythons: list[str], turns: int, streams: int, rounds: int) -> dict[str, tuple[float, float]]:
    """(CPU ms per turn one at a time, the median of `rounds` with `streams` at once) for each."""
    alone: dict[str, float] = dict.fromkeys(pythons, 0.0)
    loaded: dict[str, list[float]] = {python: [] for python in pythons}
    with Endpoint(PACE_MS) as endpoint:
        env = {**endpoint.server_env(), "OFFLINE_TOKEN_DELAY_MS": str(int(PACE_MS)), "TOKEN_BUFFER_SIZE": "1",
               "MAX_CONCURRENT_INVOCATIONS": str(streams + 50)}
        servers = {}
        try:
            for python in pythons:
                servers[python] = Server(env, command=[python, "-m", "testkit.serve"])
            for server in servers.values():
                load(server, "/stream", 3, sequential=True)  # warm up
            for python, server in servers.items():
                alone[python] = load(server, "/stream", turns, sequential=True)[1] * 1000 / turns
            for _ in range(rounds):
                for python, server in servers.items():
                    loaded[python].append(load(server, "/stream", streams)[1] * 1000 / streams)
        finally:
            for server in servers.values():
                server.stop()
    return {python: (alone[python], median(loaded[python])) for python in pythons}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pythons", nargs="+", help="interpreters, the baseline first")
    parser.add_argument("--runs", type=int, default=5, help="cold starts of each")
    parser.add_argument("--turns", type=int, default=20, help="turns one at a time")
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pythons = [str(Path(p)) for p in args.pythons]
    versions = {python: version(python) for python in pythons}
    starts = cold(pythons, args.runs)
    costs = cpu(pythons, args.turns, args.streams, args.rounds)
    base = pythons[0]
    ready0, token0 = median([r.ready_ms for r in starts[base]]), median([r.token_from_start_ms for r in starts[base]])
    alone0, loaded0 = costs[base]
    rows = []
    for python in pythons:
        runs = starts[python]
        ready, token = median([r.ready_ms for r in runs]), median([r.token_from_start_ms for r in runs])
        alone, loaded = costs[python]
        rows.append((f"Python {versions[python]}", f"{ready:.0f} ms ({ready / ready0:.2f}×)",
                     f"{token:.0f} ms ({token / token0:.2f}×)", f"{median([r.peak_rss_mb for r in runs]):.0f} MB",
                     f"{alone:.1f} ms ({alone / alone0:.2f}×)", f"{loaded:.2f} ms ({loaded / loaded0:.2f}×)"))
    print(f"Cold start: median of {args.runs} fresh processes each; CPU per turn: {args.turns} turns one at a "
          f"time, median of {args.rounds} rounds of {args.streams} at once; interleaved, × the first.\n")
    print(table(("interpreter", "start → ready", "start → first token", "peak RSS", "CPU/turn one at a time",
                 f"CPU/turn {args.streams} at once"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
