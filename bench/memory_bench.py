"""Session memory cost: per-turn time and stored bytes at turns 1, 10 and 50 of one session.

The real agent (offline Bedrock endpoint, a calculator round trip every turn) with SQLite under each
checkpoint durability and history policy, and PostgreSQL (a throwaway local cluster from Debian's package, when
installed), against the in-process saver measured in the same run.
Times are medians over `--repeat` sessions (each mark: median of the turns around it).

    python -m bench.memory_bench [--turns 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

from bedrock.core.build import build_agent
from bedrock.config import Settings
from bedrock.offline.endpoint import OfflineBedrockEndpoint
from bedrock.wire.request import parse_request

MARKS = (1, 10, 50)
VARIANTS = [  # label, backend, durability, history
    ("in-process (baseline)", "memory", "exit", "all"),
    ("sqlite, exit, latest (default)", "sqlite", "exit", "latest"),
    ("sqlite, exit, all", "sqlite", "exit", "all"),
    ("sqlite, async, all", "sqlite", "async", "all"),
    ("sqlite, sync, all", "sqlite", "sync", "all"),
    ("postgres, exit, latest", "postgres", "exit", "latest"),
    ("postgres, exit, all", "postgres", "exit", "all"),
]


def stored_bytes_postgres(url: str) -> int:
    """The same on PostgreSQL: checkpoint and metadata as stored (jsonb), channel values and writes (bytea)."""
    import psycopg

    with psycopg.connect(url) as conn:
        return sum(conn.execute(sql).fetchone()[0] for sql in (
            "SELECT COALESCE(SUM(pg_column_size(checkpoint) + pg_column_size(metadata)), 0) FROM checkpoints",
            "SELECT COALESCE(SUM(LENGTH(blob)), 0) FROM checkpoint_blobs",
            "SELECT COALESCE(SUM(LENGTH(blob)), 0) FROM checkpoint_writes"))


def stored_bytes(path: Path) -> int:
    """Bytes of checkpoint data the session holds (file size would mostly measure WAL and free pages)."""
    with sqlite3.connect(path) as conn:
        checkpoints = conn.execute("SELECT COALESCE(SUM(LENGTH(checkpoint) + LENGTH(metadata)), 0) FROM checkpoints")
        writes = conn.execute("SELECT COALESCE(SUM(LENGTH(value)), 0) FROM writes")
        return checkpoints.fetchone()[0] + writes.fetchone()[0]


async def session(settings: Settings, endpoint_url: str, turns: int, path: Path) -> tuple[list[float], dict[int, int]]:
    postgres = settings.memory_backend == "postgres"
    agent = build_agent(settings, endpoint_url)
    times, sizes = [], {}
    for turn in range(1, turns + 1):
        request = parse_request({"prompt": f"What is {turn} * 3?", "session_id": "bench"})
        started = time.perf_counter()
        await agent.invoke(request)
        times.append((time.perf_counter() - started) * 1000)
        # A stat between turns, outside the timed part, with nothing else on this loop: blocking it costs nothing.
        if turn in MARKS and (postgres or path.exists()):  # noqa: ASYNC240
            await agent.drain()  # the turn's prune runs after agent_end, holding the session
            sizes[turn] = stored_bytes_postgres(settings.database_url) if postgres else stored_bytes(path)
    await agent.drain()
    agent.close()
    return times, sizes


def around(times: list[float], mark: int) -> float:
    return statistics.median(times[max(0, mark - 3): mark + 2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="10 turns, one session")
    args = parser.parse_args()
    if args.smoke:
        args.turns, args.repeat = 10, 1
    marks = [m for m in MARKS if m <= args.turns]
    endpoint = OfflineBedrockEndpoint().start()
    table: dict[str, tuple[dict[int, float], dict[int, int]]] = {}
    from testkit.postgres import PostgresCluster, postgres_missing

    missing = postgres_missing()
    cluster = PostgresCluster() if missing is None else None
    variants = [v for v in VARIANTS if v[1] != "postgres" or cluster is not None]
    for label, backend, durability, history in variants:
        per_mark: dict[int, list[float]] = {m: [] for m in marks}
        sizes: dict[int, int] = {}
        for _ in range(args.repeat):
            path = Path(tempfile.mkdtemp(prefix="membench-")) / "m.sqlite"
            settings = Settings(memory_backend=backend, memory_path=str(path),
                                database_url=cluster.create_database() if backend == "postgres" else "",
                                checkpoint_durability=durability, checkpoint_history=history)
            times, sizes = asyncio.run(session(settings, endpoint.url, args.turns, path))
            for m in marks:
                per_mark[m].append(around(times, m))
        table[label] = ({m: statistics.median(v) for m, v in per_mark.items()}, sizes)
    endpoint.stop()
    if cluster is not None:
        cluster.stop()
    base = table[VARIANTS[0][0]][0]
    print("| memory | " + " | ".join(f"turn {m}: ms/turn (× baseline) | turn {m}: bytes" for m in marks) + " |")
    print("|---|" + "---|" * (2 * len(marks)))
    for label, *_ in variants:
        times, sizes = table[label]
        cells = []
        for m in marks:
            cells.append(f"{times[m]:.1f} ({times[m] / base[m]:.2f}×)")
            cells.append(f"{sizes[m]:,}" if m in sizes else "—")
        print(f"| {label} | " + " | ".join(cells) + " |")
    if cluster is None:
        print(f"\nPostgreSQL rows left out: {missing}.")


if __name__ == "__main__":
    main()
