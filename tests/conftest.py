"""Shared fixtures: offline settings, dummy AWS credentials, live servers on 127.0.0.1:0."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import tempfile

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent

# No real AWS anywhere in tests: dummy credentials, no instance metadata lookups, the offline model.
TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "MODEL_PROVIDER": "offline",
    "OFFLINE_TOKEN_DELAY_MS": "0",
}
os.environ.update(TEST_ENV)
# Each test process (and each xdist worker) keeps its session memory in its own temporary folder.
os.environ["AGENT_MEMORY_PATH"] = str(Path(tempfile.mkdtemp(prefix="agent-memory-")) / "checkpoints.sqlite")


@pytest.fixture
def session_id() -> str:
    """A session id no other test uses."""
    return f"test-{uuid.uuid4().hex}"


class LiveServer:
    """`python tests/serve.py` in a subprocess: the real app under uvicorn on a free loopback port."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        memory = str(Path(tempfile.mkdtemp(prefix="agent-memory-")) / "checkpoints.sqlite")
        full_env = {**os.environ, **TEST_ENV, "AGENT_MEMORY_PATH": memory, **(env or {})}
        self.memory_path = full_env["AGENT_MEMORY_PATH"]
        # stderr to a file, not a pipe: a pipe nobody drains blocks a chatty server once it fills.
        self.log_path = Path(memory).parent / "server.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "tests" / "serve.py")],
                cwd=ROOT,
                env=full_env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("PORT="):
            self.process.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.log_path.read_text()}")
        self.port = int(line.strip().split("=", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ping", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        err = self.stop()
        raise RuntimeError(f"server on {self.url} never became ready: {err[-2000:]}")

    def stop(self) -> str:
        """Stop the server; return what it wrote to stderr."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate()
        return self.log_path.read_text()


@pytest.fixture(scope="session")
def server() -> Iterator[LiveServer]:
    """One shared live server with default (offline, unpaced) settings."""
    live = LiveServer()
    yield live
    live.stop()


@pytest.fixture
def make_server() -> Iterator[type[LiveServer]]:
    """Start servers with custom environment; all are stopped after the test."""
    started: list[LiveServer] = []

    def start(env: dict[str, str] | None = None) -> LiveServer:
        live = LiveServer(env)
        started.append(live)
        return live

    yield start  # type: ignore[misc]
    for live in started:
        live.stop()
