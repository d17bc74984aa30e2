"""The PostgreSQL store's setup across replicas (bedrock/store/postgres.py)."""

from __future__ import annotations

import threading
import time

import pytest

from bedrock.store.postgres import SETUP_LOCK, PostgresOwners, PostgresStore, ThreadedPostgresSaver


@pytest.mark.parametrize("attempt", range(3))
@pytest.mark.parametrize("opened_as", ["saver", "store"])
def test_replicas_starting_together_on_a_new_database_all_set_it_up(postgres_url, attempt, opened_as):
    """Four replicas open the same new database at one instant. One runs LangGraph's migrations (CREATE INDEX
    CONCURRENTLY among them) while the others wait for it: a replica waiting inside `pg_advisory_lock` is a
    transaction in progress, which that index waits for in turn — a deadlock PostgreSQL does not see, which hung
    a two-replica test until one replica died (80 s). The whole store too: its `session_owners` table was created
    after the lock was let go, and two `CREATE TABLE IF NOT EXISTS` at once can fail (a unique violation in
    PostgreSQL's catalog), so a replica's build failed and the server stopped (found by a test whose second replica
    refused connections)."""
    opener = {"saver": ThreadedPostgresSaver.open, "store": PostgresStore.open}[opened_as]
    start = threading.Barrier(4)
    opened: list[float] = []
    failures: list[BaseException] = []

    def replica() -> None:
        start.wait()
        began = time.monotonic()
        try:
            opened_one = opener(postgres_url, 2)
        except BaseException as error:  # noqa: BLE001 (reported below)
            failures.append(error)
            return
        opened.append(time.monotonic() - began)
        opened_one.close()

    threads = [threading.Thread(target=replica, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures and len(opened) == 4, (failures, opened)
    assert max(opened) < 30, opened


def test_the_stores_own_table_is_created_under_the_setup_lock(postgres_url, monkeypatch):
    """Replicas at one instant rarely collide in the test above, so the rule itself is checked: `session_owners`
    is created while SETUP_LOCK is held. (Four `CREATE TABLE IF NOT EXISTS` of it at one instant failed in 30 of 30
    tries on a new database; after the lock was let go, two replicas' builds could do just that.)"""
    held: list[int] = []
    create_table = PostgresOwners.create_table

    def watched(saver: ThreadedPostgresSaver) -> None:
        with saver.pool.connection() as conn:
            row = conn.execute("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted "
                               "AND classid = %s AND objid = %s AND objsubid = 1",
                               (SETUP_LOCK >> 32, SETUP_LOCK & 0xFFFF_FFFF)).fetchone()
        held.append(row["n"])
        create_table(saver)

    monkeypatch.setattr(PostgresOwners, "create_table", staticmethod(watched))
    store = PostgresStore.open(postgres_url, 2)
    store.close()
    assert held == [1]
