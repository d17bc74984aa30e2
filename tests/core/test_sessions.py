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
