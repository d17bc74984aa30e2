"""Invocation slots: at most MAX_CONCURRENT_INVOCATIONS turns at once; the rest get 503 `server_busy`."""

from __future__ import annotations

import threading

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class InvocationSlots:
    """A counter shared by the SDK's worker-loop thread and uvicorn's loop, hence the lock."""

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


class SlotResponse(Response):
    """Sends `inner`, then gives its slot back — however the response ends (done, error, disconnect)."""

    def __init__(self, inner: Response, slots: InvocationSlots) -> None:
        super().__init__(status_code=inner.status_code)
        self.raw_headers = inner.raw_headers  # the headers sent are the inner response's
        self.inner = inner
        self.slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            self.slots.release()
