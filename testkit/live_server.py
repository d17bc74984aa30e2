"""LiveServer: a server process on a free 127.0.0.1 port — by default the real app (`python -m testkit.serve`)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from testkit.env import OFFLINE_ENV

ROOT = Path(__file__).resolve().parent.parent


class LiveServer:
    """Starts `command` (which prints `PORT=N` first) with the offline environment plus `env`, in its own
    temporary folder (its session memory and its log), and waits until it answers HTTP."""

    def __init__(self, env: dict[str, str] | None = None, command: Sequence[str] | None = None,
                 ready_timeout_s: float = 30.0) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="agent-server-"))
        full_env = {**os.environ, **OFFLINE_ENV, "AGENT_MEMORY_PATH": str(self.folder / "checkpoints.sqlite"),
                    **(env or {})}
        self.memory_path = full_env["AGENT_MEMORY_PATH"]
        # stderr to a file, not a pipe: a pipe nobody drains blocks a chatty server once it fills.
        self.log_path = self.folder / "server.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                list(command or [sys.executable, "-m", "testkit.serve"]), cwd=ROOT, env=full_env,
                stdout=subprocess.PIPE, stderr=log, text=True,
            )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("PORT="):
            self.process.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.log_path.read_text()}")
        self.port = int(line.strip().split("=", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready(ready_timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/ping", timeout=1.0)  # any answer (a bare app's 404 too) means serving
                return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        err = self.stop()
        raise RuntimeError(f"server on {self.url} never became ready: {err[-2000:]}")

    def stop(self) -> str:
        """Stop the server (SIGTERM, then SIGKILL after 20 s); return what it wrote to stderr."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate()
        return self.log_path.read_text()

    def wait_for_ping(self, status: str, timeout_s: float = 10.0) -> None:
        """Poll /ping until it reports `status` (HealthyBusy: every slot taken, or a run nobody follows)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if httpx.get(self.url + "/ping", timeout=5).json()["status"] == status:
                return
            time.sleep(0.01)
        raise AssertionError(f"/ping never said {status}")

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _status_mb(self, field: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def rss_mb(self) -> float:
        """Current resident memory (VmRSS) of the server process."""
        return self._status_mb("VmRSS")

    def peak_rss_mb(self) -> float:
        """Peak resident memory (VmHWM) of the server process."""
        return self._status_mb("VmHWM")

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
