"""Shared bench helpers: a real server subprocess on a free loopback port, percentiles, table printing."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

import httpx

ROOT = Path(__file__).resolve().parent.parent
OFFLINE_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "MODEL_PROVIDER": "offline",
    "OFFLINE_TOKEN_DELAY_MS": "0",
    "LOG_LEVEL": "WARNING",
}


class Server:
    """`tests/serve.py` (the real app under uvicorn) in a subprocess, on 127.0.0.1 port 0."""

    def __init__(self, env: dict[str, str] | None = None, script: list[str] | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="bench-"))
        self.memory_path = str(self.folder / "checkpoints.sqlite")
        full = {**os.environ, **OFFLINE_ENV, "AGENT_MEMORY_PATH": self.memory_path, **(env or {})}
        with open(self.folder / "server.log", "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, *(script or [str(ROOT / "tests" / "serve.py")])], cwd=ROOT, env=full,
                stdout=subprocess.PIPE, stderr=log, text=True,
            )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("PORT="):
            raise RuntimeError(f"server did not start: {(self.folder / 'server.log').read_text()}")
        self.url = f"http://127.0.0.1:{line.strip().split('=', 1)[1]}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/ping", timeout=1)  # any answer (even 404 from a bare app) means ready
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("server never became ready")

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        """Peak resident memory (VmHWM) of the server process."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def rss_mb(self) -> float:
        """Current resident memory (VmRSS) of the server process."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Endpoint:
    """The offline Bedrock endpoint in a process of its own, so the server's CPU is the server's alone."""

    def __init__(self, delay_ms: float) -> None:
        env = {**os.environ, **OFFLINE_ENV, "OFFLINE_TOKEN_DELAY_MS": str(int(delay_ms))}
        self.process = subprocess.Popen([sys.executable, "-m", "bedrock.offline_endpoint"], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("URL="):
            self.process.kill()
            raise RuntimeError("offline endpoint did not start")
        self.url = line.strip().split("=", 1)[1]

    def server_env(self) -> dict[str, str]:
        """Environment that points a server's ChatBedrockConverse here (the bedrock provider, endpoint swapped)."""
        return {"MODEL_PROVIDER": "bedrock", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.url}

    def __enter__(self) -> "Endpoint":
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
