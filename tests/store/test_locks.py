"""SharedLocks, the lock per session other processes honour: each backend's (SQLite's FileLocks, PostgreSQL's
AdvisoryLocks) keeps it to one holder, this process included."""

from __future__ import annotations

import asyncio

import pytest


@pytest.mark.parametrize("kind", ["file", "postgres"])
async def test_a_process_holding_a_session_does_not_take_it_twice(kind, tmp_path, request):
    """Turns on two event loops of one process each take the shared lock: the second must wait for the first (the
    OS's and PostgreSQL's locks would let the same process or connection in again, and one release free both)."""
    if kind == "file":
        from bedrock.store.sqlite import FileLocks

        shared = FileLocks(tmp_path / "m.locks")
    else:
        from bedrock.store.postgres import AdvisoryLocks

        shared = AdvisoryLocks(request.getfixturevalue("postgres_url"))

    async def attempt() -> bool:
        result = shared.try_acquire("s")
        return result if isinstance(result, bool) else await result

    assert await attempt() is True
    assert await attempt() is False
    shared.release("s")  # (PostgreSQL: queued on the lock thread; taken again once it has run)
    assert await asyncio.wait_for(_until(attempt), 5) is True
    shared.release("s")
    shared.close()


async def _until(attempt) -> bool:
    while not await attempt():
        await asyncio.sleep(0.01)
    return True
