"""A tool through MCP against the same tool in-process: latency and CPU per call, and per whole turn.

The tool is `add(a, b)`. In-process it is a LangChain tool; over MCP it is testkit's FastMCP server's, over
streamable HTTP (the server in a process of its own) and over stdio: reached by the runtime's MCP tools (a kept
session, bedrock/mcp/sessions.py), and, for comparison, by langchain-mcp-adapters' own tools (a session per call; for
stdio a process per call). Per call: the tool invoked alone. Per turn: the built-in agent (offline model in-process,
SQLite) with one tool call a turn, `calculator` in-process against `add` over MCP. CPU: this process's, plus the
server's (/proc: the HTTP server, the stdio servers alive or reaped). Ratios are against the in-process tool,
measured in the same run.

    python -m bench.mcp_bench [--calls 200] [--turns 100] [--stdio-calls 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

from langchain_core.tools import tool

from bench.common import percentile, table
from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.mcp import mcp_tools_for
from bedrock.wire.request import parse_request
from testkit.mcp_server import ROOT, McpServer


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stdio_servers_cpu_s() -> float:
    """The stdio servers this process started: those alive (/proc) and those ended and reaped."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    alive = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid() and b"stdio" in (stat.parent / "cmdline").read_bytes():
                alive += process_cpu_s(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return usage.ru_utime + usage.ru_stime + alive


async def per_call(name: str, call: Any, count: int, server_cpu: Any) -> dict[str, Any]:
    await call(0)  # warm: a first connection, a first import
    times, cpu0, server0 = [], time.process_time(), server_cpu()
    for i in range(count):
        started = time.perf_counter()
        await call(i)
        times.append((time.perf_counter() - started) * 1000)
    return {"name": name, "ms": statistics.median(times), "p90": percentile(times, 90),
            "cpu": (time.process_time() - cpu0) / count * 1000, "server": (server_cpu() - server0) / count * 1000}


def settings(folder: Path, servers: dict[str, Any] | None = None) -> Settings:
    return Settings(memory_path=str(folder / "m.sqlite"), mcp_servers=json.dumps(servers) if servers else "",
                    mcp_tool_prefix=True)


async def per_turn(name: str, agent: Any, prompt: str, count: int, server_cpu: Any) -> dict[str, Any]:
    async def one(i: int) -> None:
        session = f"s{abs(hash(name))}-{i}"
        result = await agent.invoke(parse_request({"prompt": prompt.replace("N", str(i)), "session_id": session}))
        assert "returned" in result["output"] or "is" in result["output"], result["output"]

    return await per_call(name, one, count, server_cpu)


async def main(calls: int, turns: int, stdio_calls: int) -> str:
    folder = Path(tempfile.mkdtemp(prefix="mcp-bench-"))
    stdio = {"transport": "stdio", "command": sys.executable, "args": ["-m", "testkit.mcp_server", "stdio", "--all"],
             "cwd": str(ROOT)}
    with McpServer(folder / "http") as server:
        pid = server.process.pid
        servers = {"h": {"transport": "streamable_http", "url": server.url}, "s": stdio}
        loaded = mcp_tools_for(settings(folder, servers))
        tools = {t.name: t for t in loaded.tools}
        from langchain_mcp_adapters.client import MultiServerMCPClient

        stock = {t.name: t for t in await MultiServerMCPClient(servers, tool_name_prefix=True).get_tools()}

        def calling(tool: Any) -> Any:
            return lambda i: tool.ainvoke({"a": i, "b": 1})

        rows = [await per_call("in-process tool", calling(add), calls, lambda: 0.0),
                await per_call("MCP, streamable HTTP, kept session", calling(tools["h_add"]), calls,
                               lambda: process_cpu_s(pid)),
                await per_call("MCP, streamable HTTP, a session a call (the adapters' default)",
                               calling(stock["h_add"]), calls, lambda: process_cpu_s(pid)),
                await per_call("MCP, stdio, kept process", calling(tools["s_add"]), calls, stdio_servers_cpu_s),
                await per_call("MCP, stdio, a process a call (the adapters' default)", calling(stock["s_add"]),
                               stdio_calls, stdio_servers_cpu_s)]
        assert loaded.sessions is not None
        await loaded.sessions.close_idle()
        local = build_agent(settings(folder / "local"))
        remote = build_agent(settings(folder / "remote", {"h": servers["h"]}))
        try:
            turn_rows = [await per_turn("turn, calculator in-process", local, 'calculator({"expression": "N + 1"})',
                                        turns, lambda: 0.0),
                         await per_turn("turn, add over MCP (HTTP)", remote, 'h_add({"a": N, "b": 1})', turns,
                                        lambda: process_cpu_s(pid))]
        finally:
            for agent in (local, remote):
                await agent.drain()  # the turns' pruning, before the store closes
                agent.close()
    return render(rows, "per call") + "\n\n" + render(turn_rows, "per turn")


def render(rows: list[dict[str, Any]], unit: str) -> str:
    base = rows[0]
    return table([f"{unit}", "median ms", "p90 ms", "× in-process", "client CPU ms", "server CPU ms",
                  "total CPU × in-process"],
                 [[r["name"], f"{r['ms']:.2f}", f"{r['p90']:.2f}", f"{r['ms'] / base['ms']:.1f}×", f"{r['cpu']:.2f}",
                   f"{r['server']:.2f}", f"{(r['cpu'] + r['server']) / (base['cpu'] + base['server']):.1f}×"]
                  for r in rows])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--stdio-calls", type=int, default=20)
    args = parser.parse_args()
    print(asyncio.run(main(args.calls, args.turns, args.stdio_calls)))
