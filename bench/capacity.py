"""Server CPU per streamed turn, ours against its floors, one at a time and 100 paced streams at once.

Every server reads the same offline endpoint (its own process, 20 ms between chunks: 50 tokens/s) and is driven
by the same light client (bench/loadgen.py, its own process). For each: server CPU per turn and per chunk
(its /proc counters around the load), and under load each stream's time against its ideal (chunks × pace) and
its largest gap between chunks. Floors (bench/floor_apps.py): HTTP + SSE alone; the Converse stream alone;
LangGraph + the model (its tokens by `messages` mode, as LangGraph's docs stream them), and the same with its
tokens taken as ours are (what that alone saves). Each load comes twice a round: N streams in one instant (a burst),
and N spread as a Poisson process at the same mean rate. Ours: the real app, one `llm_token` frame per chunk
(TOKEN_BUFFER_SIZE=1, as the floors), SQLite memory, a new session each turn (so each claims its owner).

    python -m bench.capacity [--streams 100] [--rounds 7] [--sequential 20] [--baseline DIR]

`--baseline DIR`: also serve the real app from another checkout (say, the commit before a change), measured in
turns with the rest, and print this checkout's CPU per turn as a ratio of that one's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from bench.common import ROOT, Endpoint, Server, median, percentile, table

PACE_MS = 20.0
FLOORS = [("HTTP + SSE alone (floor)", "sse"), ("Converse stream alone (floor)", "bedrock"),
          ("LangGraph + model (floor)", "langgraph"), ("LangGraph + model, tokens from the callback", "langgraph-tap")]
OURS = "ours (the real app)"
BASELINE = "ours, baseline checkout"
LANGGRAPH_FLOOR = "LangGraph + model (floor)"


def load(server: Server, path: str, streams: int, rounds: int = 1, sequential: bool = False,
         options: Sequence[str] = (), last: str = "agent_end") -> tuple[list[dict], float]:
    """Run the load client (`options`: more of its flags); its results and the server CPU seconds the load cost.
    Every stream must have answered 200 and ended with a `last` frame after two tokens or more."""
    command = [sys.executable, "-m", "bench.loadgen", str(server.port), path, "--streams", str(streams),
               "--rounds", str(rounds), *options] + (["--sequential"] if sequential else [])
    cpu = server.cpu_seconds()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    cpu = server.cpu_seconds() - cpu
    if done.returncode != 0:
        raise SystemExit(f"load client failed:\n{done.stderr}")
    results = [json.loads(line) for line in done.stdout.splitlines()]
    bad = [r for r in results if r["status"] != 200 or r["last"] != last or r["tokens"] < 2]
    if bad:
        raise SystemExit(f"{len(bad)} of {len(results)} streams failed, e.g. {bad[0]}")
    return results, cpu


def summarise(results: list[dict], cpu: float) -> dict[str, float]:
    chunks = sum(r["tokens"] for r in results)
    ratios = [r["times_ms"][-1] / ((r["tokens"] - 1) * PACE_MS) for r in results]
    gaps = [max(b - a for a, b in pairwise(r["times_ms"])) for r in results]
    return {"cpu_ms_per_turn": cpu * 1000 / len(results), "cpu_us_per_chunk": cpu * 1e6 / chunks,
            "chunks_per_turn": chunks / len(results), "ratio_p99": percentile(ratios, 99),
            "ratio_p50": percentile(ratios, 50), "gap_p99": percentile(gaps, 99),
            "first_ms_p99": percentile([r["first_ms"] for r in results], 99)}


def capacity(streams: int, rounds: int, sequential: int, baseline: Path | None = None) -> tuple[str, dict[str, Any]]:
    """Every server up at once, measured in turns (a round of each, then the next round): this machine's
    neighbours come and go within a minute, and measuring one server after another gave them to one server."""
    values: dict[str, Any] = {}
    with Endpoint(PACE_MS) as endpoint:
        env = {**endpoint.server_env(), "OFFLINE_TOKEN_DELAY_MS": str(int(PACE_MS))}
        servers: dict[str, tuple[Server, str]] = {}
        try:
            for label, floor in FLOORS:
                command = [sys.executable, "-m", "bench.floor_apps", floor]
                servers[label] = (Server(env, command=command), "/invocations")
            ours_env = {**env, "TOKEN_BUFFER_SIZE": "1", "MAX_CONCURRENT_INVOCATIONS": str(streams + 50)}
            servers[OURS] = (Server(ours_env), "/stream")
            if baseline is not None:
                servers[BASELINE] = (Server(ours_env, cwd=baseline), "/stream")
            for server, path in servers.values():
                load(server, path, 3, sequential=True)  # warm up: first connections, first model client, caches
            alone: dict[str, tuple[list[dict], float]] = {label: ([], 0.0) for label in servers}
            batches = max(1, sequential // 5)
            for _ in range(batches):  # one at a time, a few turns of each server in turn
                for label, (server, path) in servers.items():
                    results, cpu = load(server, path, max(1, sequential // batches), sequential=True)
                    alone[label] = (alone[label][0] + results, alone[label][1] + cpu)
            idle_rss = servers[OURS][0].rss_mb()
            loaded: dict[str, list[dict[str, float]]] = {label: [] for label in servers}
            spread: dict[str, list[dict[str, float]]] = {label: [] for label in servers}
            # The same mean rate as a burst (N streams an ideal stream's time), as a Poisson process.
            poisson = ["--spread", "--ideal-ms", str((alone[OURS][0][0]["tokens"] - 1) * PACE_MS)]
            for _ in range(rounds):  # a round is ~1.5 s; the median of the rounds is kept
                for label, (server, path) in servers.items():
                    loaded[label].append(summarise(*load(server, path, streams)))
                    spread[label].append(summarise(*load(server, path, streams, options=poisson)))
            for label in servers:
                values[label] = {"alone": summarise(*alone[label]),
                                 "loaded": {key: median(r[key] for r in loaded[label]) for key in loaded[label][0]},
                                 "spread": {key: median(r[key] for r in spread[label]) for key in spread[label][0]}}
            values[OURS].update(idle_rss=idle_rss, peak_rss=servers[OURS][0].peak_rss_mb())
        finally:
            for server, _ in servers.values():
                server.stop()
    floor = values[LANGGRAPH_FLOOR]
    rows = []
    for label, v in values.items():
        a, b, c = v["alone"], v["loaded"], v["spread"]
        alone, loaded = floor["alone"]["cpu_ms_per_turn"], floor["loaded"]["cpu_ms_per_turn"]
        rows.append((label, f"{a['cpu_ms_per_turn']:.2f} ms", f"{a['cpu_ms_per_turn'] / alone:.2f}×",
                     f"{b['cpu_ms_per_turn']:.2f} ms", f"{b['cpu_ms_per_turn'] / loaded:.2f}×",
                     f"{b['cpu_us_per_chunk']:.0f} µs", f"{b['ratio_p99']:.3f}", f"{b['gap_p99']:.1f} ms",
                     f"{c['cpu_ms_per_turn']:.2f} ms", f"{c['ratio_p99']:.3f}", f"{c['gap_p99']:.1f} ms"))
    chunks = values[OURS]["loaded"]["chunks_per_turn"]
    text = (f"{streams} streams at once ({rounds} rounds, median), the same number spread (Poisson arrivals at the "
            f"same mean rate: {streams} an ideal stream's time), or {sequential} one after another; the servers "
            f"measured in turns; "
            f"{chunks:.0f} model chunks a turn at {PACE_MS:.0f} ms; server CPU from its /proc counters.\n\n")
    text += table(("server", "CPU/turn, one at a time", "× LangGraph floor", f"CPU/turn, {streams} at once",
                   "× LangGraph floor", "CPU/chunk at once", "stream time ÷ ideal p99", "largest gap p99",
                   "CPU/turn, spread", "stream time ÷ ideal p99, spread", "largest gap p99, spread"), rows)
    values["ours_vs_floor_loaded"] = values[OURS]["loaded"]["cpu_ms_per_turn"] / floor["loaded"]["cpu_ms_per_turn"]
    values["ours_vs_floor_alone"] = values[OURS]["alone"]["cpu_ms_per_turn"] / floor["alone"]["cpu_ms_per_turn"]
    ours = values[OURS]
    per_stream_kb = (ours["peak_rss"] - ours["idle_rss"]) * 1024 / streams
    text += "\n\n" + table(("our server's memory", "MB"), [
        ("RSS idle (after the turns one at a time)", f"{ours['idle_rss']:.1f}"),
        (f"peak RSS with {streams} streams", f"{ours['peak_rss']:.1f}"),
        ("per stream", f"{per_stream_kb:.0f} KB")])
    values["per_stream_kb"] = per_stream_kb
    if baseline is not None:
        text += "\n\n" + _against_baseline(values, baseline, streams)
    return text, values


def _against_baseline(values: dict[str, Any], baseline: Path, streams: int) -> str:
    ours, base = values[OURS], values[BASELINE]
    alone = ours["alone"]["cpu_ms_per_turn"] / base["alone"]["cpu_ms_per_turn"]
    loaded = ours["loaded"]["cpu_ms_per_turn"] / base["loaded"]["cpu_ms_per_turn"]
    values["ours_vs_baseline"] = {"alone": alone, "loaded": loaded}
    return (f"baseline {baseline}: this checkout's CPU per turn is {alone:.3f}× the baseline's one at a time, "
            f"{loaded:.3f}× with {streams} at once")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sequential", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="also print the values as JSON")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with, in the same run")
    args = parser.parse_args()
    text, values = capacity(args.streams, args.rounds, args.sequential, args.baseline)
    print(text)
    if args.json:
        print(json.dumps(values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
