"""Each backend's long-term store: LangGraph's own, set up beside the sessions; MEMORY_TTL_DAYS expires memories
(SQLite, PostgreSQL), and the expiry sweeper ends with the store."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from bedrock.config import Settings
from bedrock.store import open_store
from bedrock.store.long_term import LongTermOptions


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Any) -> Settings:
    extra = {"database_url": request.getfixturevalue("postgres_url")} if request.param == "postgres" else {}
    return Settings(memory_backend=request.param, memory_path=str(tmp_path / "m.sqlite"), **extra)


def sweepers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if "sweep" in thread.name.lower()]


def test_memories_expire_after_memory_ttl_days_and_the_sweeper_ends_with_the_store(settings):
    before = set(sweepers())
    store = open_store(settings, LongTermOptions(ttl_days=0.2 / 86_400))  # 0.2 s
    try:
        memories = store.long_term
        assert memories is not None and memories.supports_ttl and memories.ttl_config
        assert set(sweepers()) - before  # its sweeper runs
        memories.put(("alice", "memories"), "k", {"text": "soon gone"})
        assert memories.get(("alice", "memories"), "k") is not None
        deadline = time.monotonic() + 10
        while memories.get(("alice", "memories"), "k", refresh_ttl=False) is not None:
            assert time.monotonic() < deadline, "the memory did not expire"
            memories.sweep_ttl()  # type: ignore[attr-defined]  # LangGraph's SQL stores': what the sweeper runs
            time.sleep(0.05)
    finally:
        store.close()
    assert set(sweepers()) <= before  # no sweeper left running


def test_without_a_ttl_memories_are_kept_and_no_sweeper_runs(settings):
    before = set(sweepers())
    store = open_store(settings, LongTermOptions())
    try:
        assert store.long_term is not None and not store.long_term.ttl_config
        assert set(sweepers()) == before
    finally:
        store.close()


def test_long_term_memory_off_opens_no_store(settings):
    store = open_store(settings)
    try:
        assert store.long_term is None
    finally:
        store.close()
