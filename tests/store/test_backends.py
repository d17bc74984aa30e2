"""open_store(settings): the backend is chosen from the settings alone, and each brings its own parts — the
checkpointer, the owners beside it, its lock across processes — which the agent uses and closes."""

from __future__ import annotations

import importlib
import sqlite3
from typing import Any

import pytest

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.store import Store, open_store
from bedrock.store.backends import memory_backend


def test_backend_selection(tmp_path):
    from bedrock.store.sqlite import SqliteStore

    assert memory_backend(Settings()) == "sqlite"
    assert memory_backend(Settings(agentcore_memory_id="mem-1")) == "agentcore"
    assert memory_backend(Settings(memory_backend="memory", agentcore_memory_id="mem-1")) == "memory"
    store = open_store(Settings(memory_backend="agentcore", memory_path=str(tmp_path / "m.sqlite")))
    assert isinstance(store, SqliteStore)  # no memory id: logged, SQLite instead of a crash
    store.close()


# Each backend's store, owners and shared lock: (module, class names); no shared lock where no other process can
# reach the sessions.
PARTS = {
    "memory": ("bedrock.store.in_process", "InProcessStore", "InProcessOwners", None),
    "sqlite": ("bedrock.store.sqlite", "SqliteStore", "SqliteOwners", "FileLocks"),
    "postgres": ("bedrock.store.postgres", "PostgresStore", "PostgresOwners", "AdvisoryLocks"),
}


@pytest.fixture(params=sorted(PARTS))
def settings(request: pytest.FixtureRequest, tmp_path: Any) -> Settings:
    extra = {"database_url": request.getfixturevalue("postgres_url")} if request.param == "postgres" else {}
    return Settings(memory_backend=request.param, memory_path=str(tmp_path / "m.sqlite"), **extra)


def test_each_backend_brings_its_owners_and_its_lock_and_the_agent_uses_them(settings):
    module_name, store_name, owners_name, locks_name = PARTS[settings.memory_backend]
    module = importlib.import_module(module_name)
    agent = build_agent(settings)
    try:
        store = agent.store
        assert isinstance(store, getattr(module, store_name)) and store.backend == settings.memory_backend
        assert isinstance(store.owners, getattr(module, owners_name)) and agent.owners.store is store.owners
        if locks_name is None:
            assert store.shared_locks is None
        else:
            assert isinstance(store.shared_locks, getattr(module, locks_name))
        assert agent.locks.shared is store.shared_locks
        assert agent.graph.checkpointer is store.checkpointer and agent.long_term is store.long_term is not None
    finally:
        agent.close()


class RecordedLocks:
    """Shared locks that say when they are closed."""

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def try_acquire(self, session_id: str) -> bool:
        return True

    def release(self, session_id: str) -> None:
        pass

    def close(self) -> None:
        self.closed.append("locks")


class Recorded(Store):
    """A store whose parts say when they are closed."""

    def __init__(self, closed: list[str], locks: bool) -> None:
        super().__init__(object(), object(), RecordedLocks(closed) if locks else None)  # type: ignore[arg-type]
        self.closed = closed

    def close_checkpointer(self) -> None:
        self.closed.append("checkpointer")


@pytest.mark.parametrize("locks", [True, False])
def test_a_store_closes_its_locks_then_its_checkpointer(locks):
    closed: list[str] = []
    Recorded(closed, locks).close()
    assert closed == (["locks", "checkpointer"] if locks else ["checkpointer"])


def test_closing_the_agent_closes_its_store(tmp_path):
    agent = build_agent(Settings(memory_backend="sqlite", memory_path=str(tmp_path / "m.sqlite")))
    store = agent.store
    agent.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.checkpointer.conn.execute("SELECT 1")
    assert store.shared_locks.fd == -1


def test_the_store_sits_below_core_and_server():
    """Every store module imports, and none of them loads `bedrock.core` or `bedrock.server`."""
    import subprocess
    import sys

    from testkit.live_server import ROOT

    modules = ["agentcore", "backends", "base", "in_process", "locks", "postgres", "sqlite", "sqlite_tables", "threaded"]
    code = (f"import sys\nfor name in {modules!r}: __import__('bedrock.store.' + name)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('bedrock.core', 'bedrock.server'))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
