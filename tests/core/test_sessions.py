"""Session locks: a bounded wait, and no cancellation ever dropped, whenever it lands."""

from __future__ import annotations

import asyncio

import pytest

from bedrock.core.sessions import SessionLocks
from bedrock.errors import SessionBusy


async def test_a_wait_past_the_bound_is_session_busy_and_other_sessions_never_wait():
    locks = SessionLocks(0.05)
    await locks.acquire("a")
    with pytest.raises(SessionBusy) as raised:
        await locks.acquire("a")
    assert raised.value.status == 409 and raised.value.retryable
    await locks.acquire("b")  # at once
    locks.release("a")
    locks.release("b")
    await locks.acquire("a")  # free again
    locks.release("a")


@pytest.mark.parametrize("rounds", [200])
async def test_a_cancel_landing_as_the_lock_is_handed_over_is_never_dropped(rounds):
    """The 3.11 `wait_for` race: the waiter is handed the lock in the same loop iteration as its cancel."""
    locks = SessionLocks(30)
    kept = []
    for i in range(rounds):
        await locks.acquire("s")
        waiter = asyncio.ensure_future(locks.acquire("s"))
        await asyncio.sleep(0)  # the waiter now waits for the lock
        locks.release("s")  # hands it over: the waiter's wake-up is scheduled …
        if i % 2:
            await asyncio.sleep(0)  # … (or has already run, on odd rounds)
        waiter.cancel()  # … and the cancel lands on it
        try:
            await waiter
            kept.append(i)  # it got the lock before the cancel could land: then it holds it, and gives it back
            locks.release("s")
        except asyncio.CancelledError:
            pass
        # Either way nothing leaked: the lock is free and nobody is left registered for it.
        await asyncio.wait_for(locks.acquire("s"), 1)
        locks.release("s")
    assert locks._locks[asyncio.get_running_loop()] == {}
    # On even rounds the cancel lands before the waiter ran: it must be delivered, not dropped (wait_for
    # returned the lock instead). On odd rounds the waiter had finished first: the cancel came too late.
    assert kept == list(range(1, rounds, 2))


async def test_a_callers_timeout_around_a_free_lock_is_not_swallowed():
    locks = SessionLocks(30)
    for _ in range(100):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1e-6):
                await locks.acquire("s")
                try:
                    await asyncio.sleep(1)  # the caller's timeout lands after the lock was taken
                finally:
                    locks.release("s")


HOLDER = """
import sys
from bedrock.store.sqlite import FileLocks
locks = FileLocks(sys.argv[1])
assert locks.try_acquire("s")
print("held", flush=True)
sys.stdin.readline()
locks.release("s")
print("released", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def other_process(tmp_path):
    """Another process that holds session "s" of `tmp_path/m.locks` until told to let go."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "m.locks")], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    yield child
    child.kill()
    child.wait()


async def test_a_session_another_process_holds_waits_then_is_busy_and_others_do_not_wait(tmp_path, other_process):
    from bedrock.store.sqlite import FileLocks

    locks = SessionLocks(0.2, FileLocks(tmp_path / "m.locks"))
    started = asyncio.get_running_loop().time()
    with pytest.raises(SessionBusy):
        await locks.acquire("s")
    assert asyncio.get_running_loop().time() - started >= 0.2
    await asyncio.wait_for(locks.acquire("t"), 0.1)  # another session: at once
    locks.release("t")
    # The other process lets go: the session is ours on the next poll, though we were already waiting.
    waiter = asyncio.ensure_future(locks.acquire("s", wait_s=10))
    await asyncio.sleep(0.02)
    other_process.stdin.write("\n")
    other_process.stdin.flush()
    await asyncio.wait_for(waiter, 5)
    locks.release("s")
    assert locks._locks[asyncio.get_running_loop()] == {}


async def test_a_process_that_dies_frees_its_sessions(tmp_path, other_process):
    from bedrock.store.sqlite import FileLocks

    ours = FileLocks(tmp_path / "m.locks")
    assert ours.try_acquire("s") is False
    other_process.kill()  # SIGKILL: it never releases; the kernel does
    other_process.wait()
    assert ours.try_acquire("s") is True
    ours.release("s")
    ours.close()


async def test_postgres_advisory_locks_exclude_other_connections_and_end_with_them(postgres_url):
    from bedrock.store.postgres import AdvisoryLocks

    first, second = AdvisoryLocks(postgres_url), AdvisoryLocks(postgres_url)
    try:
        assert await first.try_acquire("s") is True
        assert await second.try_acquire("s") is False
        assert await second.try_acquire("t") is True  # other sessions are free
        # session_wait_s=0 (multitask_strategy "reject") still takes a free session: one try at least.
        locks = SessionLocks(0, second)
        with pytest.raises(SessionBusy):
            await locks.acquire("s")
        await locks.acquire("u")
        locks.release("u")
        first.release("s")  # queued on its thread; the waiter below takes it once it has run
        waiting = SessionLocks(5, second)
        await asyncio.wait_for(waiting.acquire("s"), 5)
        waiting.release("s")
        assert await first.try_acquire("v") is True
        first.close()  # its connection ends: what it held is free (as when a replica dies)
        # Freed when the server has ended first's backend, a moment after the client closed (a loaded CI run's
        # next try came before it): the waiting acquire, as a turn of another replica would.
        await asyncio.wait_for(waiting.acquire("v"), 10)
        waiting.release("v")
    finally:
        first.close()
        second.close()
