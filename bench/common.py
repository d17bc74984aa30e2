"""Shared bench helpers: the real server in a subprocess (testkit's LiveServer), the offline endpoint in
another, percentiles, table printing."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from testkit.env import OFFLINE_ENV as TESTKIT_ENV
from testkit.live_server import LiveServer

ROOT = Path(__file__).resolve().parent.parent
# Benchmarks log warnings only: the servers' stderr is a file nobody reads unless a run fails.
OFFLINE_ENV = {**TESTKIT_ENV, "LOG_LEVEL": "WARNING"}


class Server(LiveServer):
    """The real app (or `command`) in a subprocess on a free loopback port, in the benchmarks' environment."""

    def __init__(self, env: dict[str, str] | None = None, command: list[str] | None = None,
                 cwd: Path = ROOT) -> None:
        super().__init__({"LOG_LEVEL": "WARNING", **(env or {})}, command, cwd=cwd)


class Endpoint:
    """The offline Bedrock endpoint in a process of its own, so the server's CPU is the server's alone."""

    def __init__(self, delay_ms: float) -> None:
        env = {**os.environ, **OFFLINE_ENV, "OFFLINE_TOKEN_DELAY_MS": str(int(delay_ms))}
        self.process = subprocess.Popen([sys.executable, "-m", "bedrock.offline.endpoint"], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("URL="):
            self.process.kill()
            raise RuntimeError("offline endpoint did not start")
        self.url = line.strip().split("=", 1)[1]

    def server_env(self) -> dict[str, str]:
        """Environment that points a server's ChatBedrockConverse here (the bedrock provider, endpoint swapped)."""
        return {"MODEL_PROVIDER": "bedrock", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.url}

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.wait(10)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
