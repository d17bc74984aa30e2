"""Per-session turn locks: two turns of one session never interleave; other sessions never wait."""

from __future__ import annotations

import asyncio
import weakref
from contextlib import asynccontextmanager
from typing import AsyncIterator

from bedrock.errors import AgentError


class SessionBusy(AgentError):
    """Another turn of this session held it longer than the wait bound."""


class SessionLocks:
    """One asyncio.Lock per (event loop, session), dropped when nobody holds or waits for it."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        # Keyed by loop too: asyncio locks belong to one loop, and in-process callers may bring their own.
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, tuple[asyncio.Lock, int]]] = (
            weakref.WeakKeyDictionary()
        )

    @asynccontextmanager
    async def hold(self, session_id: str) -> AsyncIterator[None]:
        """Hold the session for one turn; raise SessionBusy after waiting `wait_s`."""
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        lock, users = locks.get(session_id, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        locks[session_id] = (lock, users + 1)
        try:
            try:
                await asyncio.wait_for(lock.acquire(), self.wait_s)
            except asyncio.TimeoutError:
                raise SessionBusy(
                    "session_busy",
                    f"Another turn of this session is still running after {self.wait_s:g} s; retry when it ends.",
                    "SessionBusy",
                    True,
                    409,
                ) from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = locks[session_id]
            if users == 1:
                del locks[session_id]
            else:
                locks[session_id] = (lock, users - 1)
