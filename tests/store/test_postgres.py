"""The PostgreSQL store's setup across replicas (bedrock/store/postgres.py)."""

from __future__ import annotations

import threading
import time

import pytest

from bedrock.store.postgres import ThreadedPostgresSaver


@pytest.mark.parametrize("attempt", range(3))
def test_replicas_starting_together_on_a_new_database_all_set_it_up(postgres_url, attempt):
    """Four replicas open the same new database at one instant. One runs LangGraph's migrations (CREATE INDEX
    CONCURRENTLY among them) while the others wait for it: a replica waiting inside `pg_advisory_lock` is a
    transaction in progress, which that index waits for in turn — a deadlock PostgreSQL does not see, which hung
    a two-replica test until one replica died (80 s)."""
    start = threading.Barrier(4)
    opened: list[float] = []
    failures: list[BaseException] = []

    def replica() -> None:
        start.wait()
        began = time.monotonic()
        try:
            saver = ThreadedPostgresSaver.open(postgres_url, 2)
        except BaseException as error:  # noqa: BLE001 (reported below)
            failures.append(error)
            return
        opened.append(time.monotonic() - began)
        saver.close()

    threads = [threading.Thread(target=replica, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures and len(opened) == 4, (failures, opened)
    assert max(opened) < 30, opened
