"""Shared fixtures: offline settings, dummy AWS credentials, live servers on 127.0.0.1:0."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from bedrock.offline.background import BackgroundServer

from testkit.env import OFFLINE_ENV as TEST_ENV
from testkit.live_server import LiveServer

# No real AWS anywhere in tests: dummy credentials, no instance metadata lookups, the offline model.
os.environ.update(TEST_ENV)
# Each test process (and each xdist worker) keeps its session memory in its own temporary folder.
_MEMORY_FOLDER = tempfile.mkdtemp(prefix="agent-memory-")
atexit.register(shutil.rmtree, _MEMORY_FOLDER, ignore_errors=True)
os.environ["AGENT_MEMORY_PATH"] = str(Path(_MEMORY_FOLDER) / "checkpoints.sqlite")
# Servers are forked from a parent that imported the runtime once (testkit/live_server.py: ~0.2 s of CPU a server
# instead of ~3 s). The tests that are about a process's start (cold start, `python -m bedrock.agent_runtime`, the
# CLIs) start their own.
LiveServer.fork_by_default = True
SERVERS_BEFORE = pytest.StashKey[int]()
LOG_TAIL_CHARS = 4000


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[SERVERS_BEFORE] = len(LiveServer.started)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report ends with the logs of the servers it started: a server that stopped on its own (a
    failed build, say) is otherwise only a connection refused."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        for live in LiveServer.started[item.stash.get(SERVERS_BEFORE, len(LiveServer.started)):]:
            log = live.log_path.read_text(errors="replace") if live.log_path.exists() else ""
            exited = live.process.poll() if hasattr(live, "process") else None
            report.sections.append((f"server {live.folder.name} (exit code {exited})", log[-LOG_TAIL_CHARS:]))
    return report


@pytest.fixture
def session_id() -> str:
    """A session id no other test uses."""
    return f"test-{uuid.uuid4().hex}"


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


@pytest.fixture
def serve() -> Iterator[Any]:
    """Serve an ASGI app on 127.0.0.1:0 in a thread; returns its URL."""
    servers: list[BackgroundServer] = []

    def start(app: Any) -> str:
        server = BackgroundServer(app, timeout_graceful_shutdown=1)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Any]:
    """One throwaway PostgreSQL server per test process (Debian's package). Without PostgreSQL installed the tests
    that need it are skipped and say why — unless REQUIRE_POSTGRES=1 (`.ci/run`), where they fail instead."""
    from testkit.postgres import PostgresCluster, postgres_missing

    missing = postgres_missing()
    if missing:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here (REQUIRE_POSTGRES=1): {missing}")
        pytest.skip(f"PostgreSQL is not installed: {missing}")
    cluster = PostgresCluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: Any) -> str:
    """A new, empty database for this test."""
    return postgres_cluster.create_database()
