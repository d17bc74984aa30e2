"""Per-session turn locks: two turns of one session never interleave; other sessions never wait.

Within a process an asyncio lock per session; across processes that share the session memory, a second lock
that every process honours: the store's `SharedLocks` (`bedrock/store/locks.py`), a byte-range file lock for
SQLite on one host, an advisory lock for PostgreSQL. Both are freed by the OS or the database server when a process
dies, so a killed replica never leaves a session locked.
"""

from __future__ import annotations

import asyncio
import weakref

from bedrock.errors import SessionBusy
from bedrock.store.locks import SharedLocks

# Polling a lock another process holds: first after 5 ms, doubling up to 100 ms (a turn takes tens of ms or more).
FIRST_POLL_S = 0.005
LAST_POLL_S = 0.1


class SessionLocks:
    """One asyncio.Lock per (event loop, session), dropped when nobody holds or waits for it; then, with
    `shared`, the session's lock across processes."""

    def __init__(self, wait_s: float, shared: SharedLocks | None = None) -> None:
        self.wait_s = wait_s
        self.shared = shared
        # Keyed by loop too: asyncio locks belong to one loop, and in-process callers may bring their own.
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, tuple[asyncio.Lock, int]]] = (
            weakref.WeakKeyDictionary()
        )

    async def acquire(self, session_id: str, wait_s: float | None = None) -> None:
        """Take the session for one turn; raise SessionBusy after waiting `wait_s` (default: the lock's own).
        Pair with `release`."""
        wait_s = self.wait_s if wait_s is None else wait_s
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        lock, users = locks.get(session_id, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        locks[session_id] = (lock, users + 1)
        held = False
        try:
            # asyncio.timeout, not asyncio.wait_for: on 3.11, wait_for runs the acquire as its own task and,
            # when that task finishes in the same loop iteration as an outer cancel, returns its result and
            # drops the cancel (a caller's `asyncio.timeout(1e-6)` then ran the whole turn). timeout cancels
            # this task itself; Lock.acquire, cancelled after being handed the lock, passes it on.
            deadline = asyncio.get_running_loop().time() + wait_s
            async with asyncio.timeout(wait_s):
                await lock.acquire()
                held = True  # no await since the acquire returned: nothing can land in between
            if self.shared is not None:  # by the same deadline: SESSION_WAIT_S bounds both
                await self._acquire_shared(session_id, deadline)
        except BaseException as exc:
            if held:
                lock.release()
            self._forget(locks, session_id)
            if isinstance(exc, TimeoutError):
                raise SessionBusy(
                    f"Another turn of this session is still running after {wait_s:g} s; retry when it ends."
                ) from None
            raise

    def release(self, session_id: str) -> None:
        """Give the session back (from the loop that took it, possibly from a callback)."""
        locks = self._locks[asyncio.get_running_loop()]
        lock, _ = locks[session_id]
        if self.shared is not None:
            self.shared.release(session_id)  # first: a waiter here must not find this process still holding it
        lock.release()
        self._forget(locks, session_id)

    async def _acquire_shared(self, session_id: str, deadline: float) -> None:
        """Try the shared lock until this process holds it; TimeoutError once `deadline` has passed (after one try
        at least: `session_wait_s=0` still takes a free session). A try cancelled mid-call still finishes on its
        thread; if it took the lock, the lock is given back."""
        shared = self.shared
        assert shared is not None
        loop = asyncio.get_running_loop()
        delay = FIRST_POLL_S
        while True:
            attempt = shared.try_acquire(session_id)
            if not isinstance(attempt, bool):
                future = asyncio.ensure_future(attempt)
                try:
                    attempt = await asyncio.shield(future)
                except asyncio.CancelledError:
                    future.add_done_callback(lambda done: _give_back(shared, session_id, done))
                    raise
            if attempt:
                return
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, LAST_POLL_S)

    @staticmethod
    def _forget(locks: dict[str, tuple[asyncio.Lock, int]], session_id: str) -> None:
        lock, users = locks[session_id]
        if users == 1:
            del locks[session_id]
        else:
            locks[session_id] = (lock, users - 1)


def _give_back(shared: SharedLocks, session_id: str, attempt: asyncio.Future[bool]) -> None:
    if not attempt.cancelled() and attempt.exception() is None and attempt.result():
        shared.release(session_id)
