"""bench/mcp_bench.py runs (smoke-sized) and prints both tables, every row measured."""

from __future__ import annotations

import subprocess
import sys

from testkit.mcp_server import ROOT


def test_the_mcp_bench_prints_per_call_and_per_turn_rows():
    done = subprocess.run([sys.executable, "-m", "bench.mcp_bench", "--calls", "5", "--turns", "3", "--stdio-calls",
                           "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    names = [row.split("|")[1].strip() for row in rows]
    assert names == ["per call", "in-process tool", "MCP, streamable HTTP, kept session",
                     "MCP, streamable HTTP, a session a call (the adapters' default)", "MCP, stdio, kept process",
                     "MCP, stdio, a process a call (the adapters' default)", "per turn", "turn, calculator in-process",
                     "turn, add over MCP (HTTP)"]
    for row in rows:
        if not row.startswith("| per "):
            median_ms = float(row.split("|")[2])
            assert median_ms > 0
