"""Long-term memory's cost per turn: recall (a search of the actor's memories, and their lines in the model's
context) against the same turn with LONG_TERM_MEMORY off, measured in the same run, on each backend.

The built-in agent, the offline model in a process of its own (so this process's CPU is the runtime's alone: the
endpoint's work, the model's answers and the embeddings, is Bedrock's in production; it is shown apart), a plain
turn ("Tell me about the sea"). Rows per backend: memory off (the baseline); on, for an actor with no memories (one
read); on, for an actor with 20 (the search, and 5 recalled into the context). The in-process store searches by
meaning (one embedding request per turn); SQLite and PostgreSQL here search by recency: this Python's sqlite3 cannot
load sqlite-vec, and Debian 12's PostgreSQL has no pgvector (see the README's long-term memory table).

    python -m bench.recall_bench [--turns 100]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

from bench.common import table
from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.wire.request import parse_request

PROMPT = "Tell me about the sea"
FACTS = [f"remember that fact number {i} is about {topic}" for i, topic in enumerate(
    ["sailing", "the sea", "tea", "chess", "my dog Rex", "metric units", "Lisbon", "jazz", "cycling", "rain",
     "mountains", "coffee", "Python", "the moon", "gardens", "trains", "bread", "winter", "maps", "owls"])]


def serve_endpoint(urls: Any, stop: Any) -> None:
    from bedrock.offline.endpoint import OfflineBedrockEndpoint

    endpoint = OfflineBedrockEndpoint().start()
    urls.put(endpoint.url)
    stop.wait()
    endpoint.stop()


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def turns(settings: Settings, endpoint_url: str, endpoint_pid: int, count: int, memories: int,
                label: str) -> dict[str, Any]:
    agent = build_agent(settings, endpoint_url)
    try:
        actor = f"a{memories}"
        for fact in FACTS[:memories]:
            await agent.invoke(parse_request({"prompt": fact, "actor_id": actor}))
        await agent.invoke(parse_request({"prompt": PROMPT, "actor_id": actor}))  # warm
        times, cpu0, endpoint0 = [], time.process_time(), cpu_of(endpoint_pid)
        for _ in range(count):
            started = time.perf_counter()
            result = await agent.invoke(parse_request({"prompt": PROMPT, "actor_id": actor}))
            times.append((time.perf_counter() - started) * 1000)
            assert result["output"], result
        cpu = (time.process_time() - cpu0) / count * 1000
        return {"name": label, "ms": statistics.median(times), "cpu": cpu,
                "endpoint": (cpu_of(endpoint_pid) - endpoint0) / count * 1000}
    finally:
        await agent.drain()
        agent.close()


def backends() -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    from testkit.postgres import PostgresCluster, postgres_missing

    found: list[tuple[str, dict[str, Any]]] = [("in-process", {"memory_backend": "memory"}),
                                               ("SQLite", {"memory_backend": "sqlite"})]
    cluster = PostgresCluster() if postgres_missing() is None else None
    if cluster is not None:
        found.append(("PostgreSQL", {"memory_backend": "postgres", "database_url": cluster.create_database}))
    return found, cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100)
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    urls, stop = spawn.Queue(), spawn.Event()
    server = spawn.Process(target=serve_endpoint, args=(urls, stop), daemon=True)
    server.start()
    url = urls.get(timeout=60)
    found, cluster = backends()
    rows = []
    try:
        for name, memory in found:
            for label, on, memories in (("off", False, 0), ("on, no memories", True, 0), ("on, 20 memories", True, 20)):
                folder = Path(tempfile.mkdtemp(prefix="recall-bench-"))
                extra = {key: value() if callable(value) else value for key, value in memory.items()}
                settings = Settings(memory_path=str(folder / "m.sqlite"), long_term_memory=on, **extra)
                rows.append((name, asyncio.run(turns(settings, url, server.pid, args.turns, memories,
                                                     f"{name}, memory {label}"))))
    finally:
        stop.set()
        server.join(10)
        if cluster is not None:
            cluster.stop()
    base = {name: row for name, row in rows if row["name"].endswith("off")}
    print(table(["per turn", "median ms", "× off", "runtime CPU ms", "CPU × off", "endpoint CPU ms (Bedrock's)"],
                [[r["name"], f"{r['ms']:.2f}", f"{r['ms'] / base[name]['ms']:.2f}×", f"{r['cpu']:.2f}",
                  f"{r['cpu'] / base[name]['cpu']:.2f}×", f"{r['endpoint']:.2f}"] for name, r in rows]))


if __name__ == "__main__":
    main()
