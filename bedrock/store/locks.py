"""SharedLocks: a lock per session that every process sharing the storage honours, and a session's lock key.

A SQLite file's processes use byte-range file locks (`bedrock/store/sqlite.py`, FileLocks), PostgreSQL's replicas
advisory locks (`bedrock/store/postgres.py`, AdvisoryLocks). Both are freed by the OS or the database server when
a process dies, so a killed replica never leaves a session locked. `bedrock/core/sessions.py` takes them after its
asyncio lock, polling until SESSION_WAIT_S.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable
from typing import Protocol


class SharedLocks(Protocol):
    """A lock per session that other processes honour."""

    def try_acquire(self, session_id: str) -> bool | Awaitable[bool]:
        """Take the session for this process if nobody holds it; never wait for it (a bool, or an awaitable
        one when it takes I/O)."""

    def release(self, session_id: str) -> None:
        """Give it back (without blocking the caller)."""

    def close(self) -> None:
        """Free everything; the process is done with the memory."""


def session_digest(session_id: str, size: int, *, signed: bool = False) -> int:
    """A session's lock key: `size` bytes of its BLAKE2b hash as an integer (a file offset, an advisory lock key)."""
    digest = hashlib.blake2b(session_id.encode("utf-8", "surrogatepass"), digest_size=size).digest()
    return int.from_bytes(digest, "big", signed=signed)
