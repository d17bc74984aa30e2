"""Per-session turn locks: two turns of one session never interleave; other sessions never wait.

Within a process an asyncio lock per session; across processes that share the session memory, a second lock
that every process honours (`SharedLocks`): a byte-range file lock for SQLite on one host (`FileLocks`),
an advisory lock for PostgreSQL (`bedrock/core/postgres.py`). Both are freed by the OS or the database server
when a process dies, so a killed replica never leaves a session locked.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import threading
import weakref
from pathlib import Path
from typing import Awaitable, Protocol

from bedrock.errors import SessionBusy

# Polling a lock another process holds: first after 5 ms, doubling up to 100 ms (a turn takes tens of ms or more).
FIRST_POLL_S = 0.005
LAST_POLL_S = 0.1


def session_digest(session_id: str, size: int, *, signed: bool = False) -> int:
    """A session's lock key: `size` bytes of its BLAKE2b hash as an integer (a file offset, an advisory lock key)."""
    digest = hashlib.blake2b(session_id.encode("utf-8", "surrogatepass"), digest_size=size).digest()
    return int.from_bytes(digest, "big", signed=signed)


class SharedLocks(Protocol):
    """A lock per session that other processes honour."""

    def try_acquire(self, session_id: str) -> bool | Awaitable[bool]:
        """Take the session for this process if nobody holds it; never wait for it (a bool, or an awaitable
        one when it takes I/O)."""

    def release(self, session_id: str) -> None:
        """Give it back (without blocking the caller)."""

    def close(self) -> None:
        """Free everything; the process is done with the memory."""


class FileLocks:
    """SessionLocks across processes sharing one SQLite file: POSIX byte-range locks on `<file>.locks`.

    One file and one descriptor per process, each session a byte at an offset from its hash (48 bits: two
    sessions share a byte once in ~10^14 pairs, and then only wait for each other). The kernel drops a process's
    locks when it exits, however it exits. Non-blocking calls, a few µs each: made inline on the event loop.
    Hand-written: filelock and portalocker lock whole files, one per key, and leave the files behind.
    POSIX locks belong to the process, not the descriptor, so this one descriptor is never closed early (closing
    any descriptor of the file would drop them all); within the process the asyncio locks keep turns apart.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        # POSIX locks are the process's, so a second lockf of a byte it holds succeeds: held bytes are tracked
        # here too (one release must not free a byte another turn of this process still counts on).
        self._held: set[int] = set()
        self._guard = threading.Lock()

    @staticmethod
    def _offset(session_id: str) -> int:
        return session_digest(session_id, 6)

    def try_acquire(self, session_id: str) -> bool:
        offset = self._offset(session_id)
        with self._guard:
            if offset in self._held:  # this process holds it already (a turn on another event loop): wait too
                return False
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
            except (BlockingIOError, PermissionError):
                return False
            self._held.add(offset)
            return True

    def release(self, session_id: str) -> None:
        offset = self._offset(session_id)
        with self._guard:
            self._held.discard(offset)
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, offset)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


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


def _give_back(shared: SharedLocks, session_id: str, attempt: "asyncio.Future[bool]") -> None:
    if not attempt.cancelled() and attempt.exception() is None and attempt.result():
        shared.release(session_id)
