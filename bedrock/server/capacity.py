"""Invocation slots: at most MAX_CONCURRENT_INVOCATIONS runs at once; the rest get 503 `server_busy`.

A run holds its slot from its start to its end, whether or not anybody still follows it."""

from __future__ import annotations

import threading



class InvocationSlots:
    """A counter taken on uvicorn's loop and given back wherever a run ends: on that loop for HTTP runs, on a
    caller's own loop (possibly another thread's: `invoke_agent` runs each call on a new one) in-process; hence
    the lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        """True when every slot is taken (what `/ping` reports as HealthyBusy)."""
        return self.active >= self.limit

    def try_acquire(self) -> bool:
        """Take a slot if one is free."""
        with self._lock:
            if self.active >= self.limit:
                return False
            self.active += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.active -= 1
