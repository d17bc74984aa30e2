"""Per-session turn locks: two turns of one session never interleave; other sessions never wait."""

from __future__ import annotations

import asyncio
import weakref

from bedrock.errors import SessionBusy


class SessionLocks:
    """One asyncio.Lock per (event loop, session), dropped when nobody holds or waits for it."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
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
        try:
            # asyncio.timeout, not asyncio.wait_for: on 3.11, wait_for runs the acquire as its own task and,
            # when that task finishes in the same loop iteration as an outer cancel, returns its result and
            # drops the cancel (a caller's `asyncio.timeout(1e-6)` then ran the whole turn). timeout cancels
            # this task itself; Lock.acquire, cancelled after being handed the lock, passes it on.
            async with asyncio.timeout(wait_s):
                await lock.acquire()
        except BaseException as exc:
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
        lock.release()
        self._forget(locks, session_id)

    @staticmethod
    def _forget(locks: dict[str, tuple[asyncio.Lock, int]], session_id: str) -> None:
        lock, users = locks[session_id]
        if users == 1:
            del locks[session_id]
        else:
            locks[session_id] = (lock, users - 1)
