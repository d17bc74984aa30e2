"""`make bench`: every benchmark, bounded (< 5 minutes), printed and written to bench/RESULTS.md.

    python -m bench.run_all            # full sizes → bench/RESULTS.md
    python -m bench.run_all --smoke    # tiny sizes, checks the benches run; writes nothing, asserts no times

Each table compares against a baseline measured in the same run: this machine is shared and noisy, so
ratios are the result; absolute numbers drift.
"""

from __future__ import annotations

import asyncio
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


from bench import capacity, framework, streams, token_cost

BENCH = Path(__file__).resolve().parent


def script(name: str, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", f"bench.{name.removesuffix('.py')}", *args], cwd=BENCH.parent,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"{name} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip()


def goal(met: bool, text: str) -> str:
    return f"- {'met' if met else '**missed**'}: {text}"


def main() -> int:
    smoke = "--smoke" in sys.argv
    started = time.monotonic()
    sections: list[str] = []
    goals: list[str] = []

    text, values = framework.framework(200 if smoke else 20_000, 1 if smoke else 5)
    sections.append("## 1. SSE framework: the same frames, three servers\n\n" + text)
    goals.append(goal(values["ours"] / values["raw"] >= 0.9, f"our app ≥ 0.9× raw Starlette events/s "
                      f"({values['ours'] / values['raw']:.2f}×)"))

    text, values = asyncio.run(token_cost.per_token(1 if smoke else 7))
    sections.append("## 2. Our per-token cost (zero-latency model, in-process)\n\n" + text)
    goals.append(goal(values["added_us"] <= 5, f"≤ 5 µs added per token, one event per token "
                      f"({values['added_us']:+.1f} µs; defaults {values['added_batched_us']:+.1f} µs)"))
    off_per_token = values["off_turn_us"] / token_cost.LONG_REPLY_TOKENS
    goals.append(goal(off_per_token <= 0.5, f"telemetry off costs ≤ 0.5 µs a token ({off_per_token:.4f} µs: "
                      f"{values['off_turn_us']:.1f} µs a turn, nothing per token); on (SDK, spans dropped): "
                      f"{values['traced_us']:+.1f} µs a token"))

    text, values = framework.batching(1 if smoke else 5)
    sections.append("## 3. TokenBuffer over HTTP (2000-token answer, zero-latency model)\n\n" + text)
    goals.append(goal(values["10"] / values["1"] >= 1.7, f"batched ≥ 1.7× unbatched tokens/s "
                      f"(10: {values['10'] / values['1']:.2f}×, default 4: {values['4'] / values['1']:.2f}×)"))

    text, values = asyncio.run(streams.isolation(5 if smoke else 200, 5 if smoke else 30))
    sections.append("## 4. Isolation: many slow streams open (model paced at 250 ms a chunk)\n\n" + text)
    goals.append(goal(max(values["ping_busy"], values["token_busy"]) < 50,
                      f"/ping and a new stream's first token p99 < 50 ms with 200 streams open "
                      f"({values['ping_busy']:.1f} ms, {values['token_busy']:.1f} ms)"))

    text, values = capacity.capacity(5 if smoke else 100, 1 if smoke else 7, 2 if smoke else 20)
    sections.append("## 5 and 7. Server CPU per streamed turn against its floors; paced load (50 tokens/s per "
                    "stream); server memory (bench/capacity.py)\n\n" + text)
    ours, floor = values[capacity.OURS], values[capacity.LANGGRAPH_FLOOR]
    goals.append(goal(ours["loaded"]["cpu_ms_per_turn"] <= 8 or values["ours_vs_floor_loaded"] <= 1.25,
                      f"server CPU per streamed turn, 100 paced streams: ≤ 8 ms or ≤ 1.25× the LangGraph + model + "
                      f"SSE floor ({ours['loaded']['cpu_ms_per_turn']:.2f} ms, {values['ours_vs_floor_loaded']:.2f}× "
                      f"its {floor['loaded']['cpu_ms_per_turn']:.2f} ms)"))
    goals.append(goal(values["ours_vs_floor_alone"] <= 1.2,
                      f"one turn at a time: ≤ 1.2× that floor ({ours['alone']['cpu_ms_per_turn']:.1f} ms, "
                      f"{values['ours_vs_floor_alone']:.2f}×)"))
    goals.append(goal(ours["loaded"]["ratio_p99"] <= 1.1 and ours["loaded"]["gap_p99"] <= 60,
                      f"100 paced streams: p99 stream time ≤ 1.1× ideal ({ours['loaded']['ratio_p99']:.3f}×), "
                      f"largest gap p99 ≤ 60 ms ({ours['loaded']['gap_p99']:.0f} ms)"))

    text, values = asyncio.run(token_cost.bedrock_path(2 if smoke else 30))
    text2, _ = asyncio.run(token_cost.wire_stream(1 if smoke else 5))
    sections.append("## 6. The Bedrock wire path\n\n" + text + "\n\n" + text2)

    sections.append("## Runs: recording frames for resume, and a turn run apart from its reader "
                    "(bench/runs_bench.py)\n\n" + script("runs_bench.py", *(["--smoke"] if smoke else [])))
    sections.append("## Session memory (bench/memory_bench.py)\n\n" +
                    script("memory_bench.py", *(["--turns", "10", "--repeat", "1"] if smoke else [])))
    sections.append("## Owned sessions and verified tokens (bench/auth_bench.py)\n\n" +
                    script("auth_bench.py", *(["--turns", "5", "--checks", "200"] if smoke else [])))
    sections.append("## Soak: memory after many turns and never-reading clients (bench/soak.py)\n\n" +
                    script("soak.py", *(["--turns", "100", "--rounds", "2", "--stuck", "5", "--idle-wait", "0"]
                                        if smoke else [])))
    sections.append("## Load (bench/load.py)\n\n" +
                    script("load.py", *(["--sessions", "5", "--turns", "2"] if smoke else [])))
    mcp_smoke = ["--calls", "20", "--turns", "10", "--stdio-calls", "3"]
    sections.append("## MCP tools against the same tool in-process (bench/mcp_bench.py)\n\n" +
                    script("mcp_bench.py", *(mcp_smoke if smoke else [])))
    sections.append("## Long-term memory: recall per turn (bench/recall_bench.py)\n\n" +
                    script("recall_bench.py", *(["--turns", "3"] if smoke else [])))
    sections.append("## The same run over each wire: WebSocket against SSE (bench/wire_bench.py)\n\n" +
                    script("wire_bench.py", *(["--smoke"] if smoke else [])))
    text, values = peer_section(smoke)
    sections.append("## 8. Side by side with LangGraph's own Agent Server (bench/peer.py)\n\n" + text)
    goals += peer_goals(values)
    sections.append("## Cold start (bench/cold_start.py)\n\n" +
                    script("cold_start.py", *(["--smoke"] if smoke else [])))
    sections.append("## Interpreters (bench/interpreters.py)\n\n" + interpreters(smoke))

    header = (f"# Benchmark results\n\n`make bench`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
              f"{platform.machine()}, Python {platform.python_version()}, "
              f"{len(__import__('os').sched_getaffinity(0))} cores; took {time.monotonic() - started:.0f} s.\n"
              "Ratios compare against a baseline measured in the same run.\n\n## Goals\n\n" + "\n".join(goals))
    report = header + "\n\n" + "\n\n".join(sections) + "\n"
    print(report)
    if not smoke:
        results = BENCH / "RESULTS.md"
        # What was written by hand below the measured sections (how to read them, earlier rounds) is kept.
        kept = results.read_text().partition(KEPT_FROM)[2] if results.exists() else ""
        results.write_text(report + (f"\n{KEPT_FROM}{kept}" if kept else ""))
    return 0


KEPT_FROM = "## Reading the results"
CURVE = BENCH / "capacity_curve.png"


def interpreters(smoke: bool) -> str:
    """The runtime on this .venv's Python and on each other one `make` set up (.venv/py3.12, .venv/py3.13)."""
    others = sorted(str(python) for python in BENCH.parent.glob(".venv/py*/bin/python"))
    if not others:
        return "(no other Python here: `make bench` sets up .venv/py3.12 and .venv/py3.13 where they are installed)"
    sizes = ["--runs", "1", "--turns", "2", "--streams", "5", "--rounds", "1"] if smoke else []
    return script("interpreters.py", *sizes, sys.executable, *others)


def peer_section(smoke: bool) -> tuple[str, dict[str, Any]]:
    """bench/peer.py's table and values; its capacity curve drawn to bench/capacity_curve.png (smoke: a temporary
    file, so the drawing is still checked)."""
    with tempfile.TemporaryDirectory(prefix="bench-curve-") as folder:
        plot = Path(folder) / "curve.png" if smoke else CURVE
        out = script("peer.py", "--json", "--plot", str(plot), *(["--smoke"] if smoke else []))
        if not plot.stat().st_size:
            raise SystemExit("bench/peer.py drew an empty capacity curve")
    text, _, raw = out.rpartition("\n")
    return text + ("" if smoke else "\n\n![capacity curve](capacity_curve.png)"), json.loads(raw)


def peer_goals(values: dict[str, Any]) -> list[str]:
    ours, peer = "ours", "langgraph-api"
    burst, spread = values["burst"], values["spread"]
    cpu = burst[ours]["cpu_ms_per_turn"] / burst[peer]["cpu_ms_per_turn"]
    goals = [goal(cpu <= 0.33, f"server CPU per streamed turn ≤ 0.33× langgraph-api's, {values['streams']} at once "
                               f"({cpu:.2f}×: {burst[ours]['cpu_ms_per_turn']:.1f} ms against "
                               f"{burst[peer]['cpu_ms_per_turn']:.1f} ms)")]
    for name, shape in (("at once", burst), ("spread (Poisson)", spread)):
        mine, theirs = shape[ours], shape[peer]
        goals.append(goal(mine["ratio_p99"] <= min(1.1, theirs["ratio_p99"]) and mine["gap_p99"] <= 60,
                          f"{values['streams']} streams {name}: p99 stream time ≤ 1.1× ideal and ≤ the peer's "
                          f"({mine['ratio_p99']:.3f}×, the peer {theirs['ratio_p99']:.3f}×), largest gap p99 "
                          f"≤ 60 ms ({mine['gap_p99']:.0f} ms, the peer {theirs['gap_p99']:.0f} ms)"))
    return goals


if __name__ == "__main__":
    sys.exit(main())
