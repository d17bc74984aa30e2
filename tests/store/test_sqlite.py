"""The SQLite backend's parts: the saver (WAL, inline calls, its own checkpoints of the WAL, pruning)."""

from __future__ import annotations

import asyncio

import pytest

from bedrock.store.sqlite import ThreadedSqliteSaver


def test_the_sqlite_saver_commits_to_the_wal_and_checkpoints_it_itself(tmp_path):
    saver = ThreadedSqliteSaver.open(tmp_path / "m.sqlite")
    try:
        pragma = lambda name: saver.conn.execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
        assert (pragma("journal_mode"), pragma("synchronous"), pragma("wal_autocheckpoint")) == ("wal", 1, 0)
    finally:
        saver.close()


async def test_sqlite_calls_run_inline_when_the_connection_is_free_and_on_its_thread_when_not(tmp_path):
    import threading

    saver = ThreadedSqliteSaver.open(tmp_path / "m.sqlite")
    try:
        def where() -> str:  # as the saver's own methods do, it uses the connection under its lock
            with saver.lock:
                return threading.current_thread().name

        assert await saver.call(where) == threading.current_thread().name  # inline: no thread hop
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with saver.lock:  # another thread's call in progress (a turn on another event loop)
                held.set()
                release.wait(5)

        holder = threading.Thread(target=hold)
        holder.start()
        held.wait(5)
        call = asyncio.ensure_future(saver.call(where))
        ticks = 0
        while not call.done():  # the loop keeps running while the call waits for the connection
            ticks += 1
            if ticks == 5:
                release.set()
            await asyncio.sleep(0.01)
        holder.join()
        assert ticks >= 5 and call.result().startswith("sqlite")  # it ran on the saver's thread
    finally:
        saver.close()


async def test_the_wal_is_checkpointed_on_the_saver_thread_every_so_many_calls(tmp_path, monkeypatch):
    monkeypatch.setattr(ThreadedSqliteSaver, "CHECKPOINT_EVERY", 5)
    saver = ThreadedSqliteSaver.open(tmp_path / "m.sqlite")
    wal = tmp_path / "m.sqlite-wal"
    try:
        def write(n: int) -> None:
            with saver.cursor() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS t (x BLOB)")
                cur.execute("INSERT INTO t VALUES (?)", (b"x" * 20_000 * n,))

        for n in range(4):
            await saver.call(write, n)
        before = saver.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()  # (busy, WAL frames, checkpointed)
        assert before[1] > 0 and wal.stat().st_size > 0
        saver.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for _ in range(5):  # the fifth call queues a checkpoint on the saver's thread
            await saver.call(write, 1)
        await saver.call_in_thread(lambda: None)  # after it, on that one thread
        frames, done = saver.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1:]
        assert frames == done  # everything in the WAL is in the database file
    finally:
        saver.close()
    assert not wal.exists() or wal.stat().st_size == 0  # closed with a truncating checkpoint


async def test_prune_keeps_each_threads_latest_checkpoint_or_deletes_the_thread(tmp_path):
    from langgraph.checkpoint.base import empty_checkpoint

    saver = ThreadedSqliteSaver.open(tmp_path / "m.sqlite")
    try:
        def config(thread_id: str) -> dict:
            return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}

        for thread_id in ("a", "b"):
            for step in range(3):
                await saver.aput(config(thread_id), empty_checkpoint(), {"step": step}, {})
        latest = await saver.aget_tuple(config("a"))
        await saver.aprune(["a"], strategy="keep_latest")
        kept = [c.config["configurable"]["checkpoint_id"] async for c in saver.alist(config("a"))]
        assert kept == [latest.config["configurable"]["checkpoint_id"]]
        assert len([c async for c in saver.alist(config("b"))]) == 3  # other threads untouched
        await saver.aprune(["b"], strategy="delete")
        assert [c async for c in saver.alist(config("b"))] == []
        with pytest.raises(ValueError, match="keep_oldest"):
            await saver.aprune(["a"], strategy="keep_oldest")
    finally:
        saver.close()
