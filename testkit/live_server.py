"""LiveServer: a server process on a free 127.0.0.1 port — by default the real app (`python -m testkit.serve`)."""

from __future__ import annotations

import atexit
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from testkit.env import OFFLINE_ENV
from testkit import loopback

ROOT = Path(__file__).resolve().parent.parent

# What a fresh server process imports before it serves: ~2.9 s of CPU here (quiet), and the tests start ~130
# servers, a third of the suite's CPU. A forked server (`fork=True`) comes from multiprocessing's forkserver, one
# per test process, that has imported these once; it then runs testkit.serve from the same files, building the app
# from its own environment as a fresh process does. Not bedrock.agent_runtime: importing it builds the app.
PRELOAD = ["bedrock.server.main", "bedrock.server.app", "bedrock.core.build", "bedrock.offline.endpoint",
           "bedrock.core.turn", "aiobotocore.session", "aiohttp"]


class ForkedProcess:
    """The subprocess.Popen calls tests make on a server, for one forked by multiprocessing."""

    def __init__(self, process: Any) -> None:
        self._process = process
        self.pid: int = process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired("forked server", timeout or 0)
        return self._process.exitcode

    def communicate(self, timeout: float | None = None) -> tuple[None, None]:
        self.wait(timeout)
        return None, None

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _forkserver() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


class LiveServer:
    """Starts `command` (which prints `PORT=N` first) with the offline environment plus `env`, in its own
    temporary folder (its session memory and its log), and waits until it answers HTTP. Without a command, the app
    is forked from a preloaded parent when `fork` (default: `fork_by_default`, which the tests' conftest sets).
    A spawned server runs in `cwd` (default: this checkout; a benchmark's baseline passes another). The folder is
    removed when this process exits, not at `stop()`: a test restarts a server on the same memory."""

    fork_by_default = False  # benchmarks measure real processes
    started: list[LiveServer] = []  # every one this process started, oldest first (a failed test shows their logs)

    def __init__(self, env: dict[str, str] | None = None, command: Sequence[str] | None = None,
                 ready_timeout_s: float = 30.0, fork: bool | None = None, cwd: Path = ROOT) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="agent-server-"))
        atexit.register(shutil.rmtree, self.folder, ignore_errors=True)
        # BIND_HOST: where testkit.serve listens, and where any other command must (127.0.0.1, in a container too).
        full_env = {**os.environ, **OFFLINE_ENV, "BIND_HOST": "127.0.0.1",
                    "AGENT_MEMORY_PATH": str(self.folder / "checkpoints.sqlite"), **(env or {})}
        self.memory_path = full_env["AGENT_MEMORY_PATH"]
        # stderr to a file, not a pipe: a pipe nobody drains blocks a chatty server once it fills.
        self.log_path = self.folder / "server.log"
        self.log_path.touch()
        LiveServer.started.append(self)
        forked = self.fork_by_default if fork is None else fork
        if forked and command is None and cwd == ROOT:
            self.port = self._fork(full_env, ready_timeout_s)
        else:
            self.port = self._spawn(full_env, command, cwd)
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready(ready_timeout_s)

    def _spawn(self, env: dict[str, str], command: Sequence[str] | None, cwd: Path) -> int:
        with open(self.log_path, "w") as log:
            self.process: subprocess.Popen[str] | ForkedProcess = subprocess.Popen(
                list(command or [sys.executable, "-m", "testkit.serve"]), cwd=cwd, env=env,
                stdout=subprocess.PIPE, stderr=log, text=True,
            )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("PORT="):
            self.process.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.log_path.read_text()}")
        return int(line.strip().split("=", 1)[1])

    def _fork(self, env: dict[str, str], timeout_s: float) -> int:
        from testkit.serve import run_forked

        context = _forkserver()
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(target=run_forked, args=(env, str(ROOT), str(self.log_path), writer), daemon=False)
        process.start()
        writer.close()
        self.process = ForkedProcess(process)
        if not reader.poll(timeout_s):
            self.process.kill()
            raise RuntimeError(f"forked server did not start: {self.log_path.read_text()}")
        return int(reader.recv())

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                loopback.get(f"{self.url}/ping", timeout=1.0)  # any answer (a bare app's 404 too) means serving
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
            if loopback.get(self.url + "/ping", timeout=5).json()["status"] == status:
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
