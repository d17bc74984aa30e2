"""LoopClients: an aiobotocore `bedrock-runtime` client for each event loop that calls the model, closed with it.

Why aiobotocore: botocore is blocking, so a streamed answer needed a thread per model call, and every chunk
crossed from that thread to the event loop (a futex wake-up and two context switches per chunk: 30% of the
server's CPU under paced load, in the kernel). aiobotocore is botocore's own request pipeline — SigV4,
retries (standard and adaptive), the event-stream parser, its exceptions — with aiohttp underneath.

Why one client per loop: an aiohttp connection pool belongs to the loop it was made on. The server has one
loop for its life; `invoke_agent` runs each call on a new one (`asyncio.run`), as a user's script may. A loop's
client is closed on that loop when it shuts down: each client is held open by an async generator, and
`asyncio.run` (and uvicorn, which uses it) finalises every async generator of the loop before closing it
(`loop.shutdown_asyncgens()`), which runs the generator's `finally`. No "Unclosed client session" at exit.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

# aiohttp and aiobotocore cost ~170 ms to import here: this module is imported by the agent's build, never on the
# way to a cold start's first `/ping` (tests/test_cold_start.py).
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

T = TypeVar("T")


class LoopClients:
    """`await clients.get()`: the running loop's client, made on first use there (~2 ms once warmed).

    `options` are `create_client`'s keyword arguments (region, endpoint, keys); `prepare(client)` is called on
    each new client (e.g. to register event handlers).
    """

    def __init__(self, session: AioSession, options: dict[str, Any],
                 prepare: Callable[[Any], None] | None = None) -> None:
        self.session = session
        self.options = options
        self.prepare = prepare
        # loop → the generator holding its client open, and the client. Emptied by `_hold` when the loop shuts its
        # async generators down; weak keys for a loop closed without doing so (its client then goes unclosed).
        self._keepers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._making: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[Any]] = \
            weakref.WeakKeyDictionary()

    async def get(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is not None:
            return client
        making = self._making.get(loop)
        if making is None:
            # A task of its own, with an empty context (see `detached`), that no caller's cancel reaches: a caller
            # cancelled mid-way (a run rolled back during its first model call) used to drop a client already
            # made, whose generator was then finalised later and, closing, took the *next* client out of the
            # cache with it: every turn of the loop then failed ('NoneType' object has no attribute 'get').
            making = self._making[loop] = loop.create_task(self._make(loop), context=contextvars.Context())
            making.add_done_callback(_retrieved)
        return await asyncio.shield(making)

    async def _make(self, loop: asyncio.AbstractEventLoop) -> Any:
        try:
            keeper = self._hold(loop)
            client = await keeper.__anext__()
            self._keepers[loop] = keeper
            self._clients[loop] = client
            return client
        finally:
            del self._making[loop]

    async def _hold(self, loop: asyncio.AbstractEventLoop) -> AsyncIterator[Any]:
        client = None
        try:
            async with self.session.create_client("bedrock-runtime", **self.options) as client:
                if self.prepare is not None:
                    self.prepare(client)
                yield client  # until the loop shuts its async generators down
        finally:
            # The loop's entries go with its client: the client refers to the loop, so a weak key alone would
            # keep every loop `asyncio.run` ever made alive. Only this generator's own client's entries.
            if client is not None and self._clients.get(loop) is client:
                self._clients.pop(loop, None)
                self._keepers.pop(loop, None)


def _retrieved(task: asyncio.Future[Any]) -> None:
    """A failed making whose callers all left: its exception is theirs to raise, not the loop's to log."""
    if not task.cancelled():
        task.exception()


async def detached(call: Callable[[], Awaitable[T]]) -> T:
    """Await `call()` in a task of its own with an empty context (called in that task: a cancel landing before the
    task starts leaves no coroutine never awaited).

    What an aiohttp call leaves on the loop — a pooled connection's read callback, the read-timeout timer it
    re-arms on every chunk (a new TimerHandle, cancelled at the next chunk, still in the loop's heap until its
    120 s are up), the connector's cleanup timer — runs in, and keeps, the context it was made in. Made in a turn's
    task, that context holds the turn's LangChain config and through it the graph run and its messages: measured,
    13 of 60 finished turns' graph runs were still alive, and a pooled connection kept the turn that opened it.
    """
    async def run() -> T:
        return await call()

    # A cancel of the caller cancels this task too (the await of a task passes cancellation on).
    return await asyncio.get_running_loop().create_task(run(), context=contextvars.Context())


def warm(session: AioSession, service: str = "bedrock-runtime") -> None:
    """Load the service model and endpoint rules into `session`, off any serving loop: a first client on a loop
    then costs ~2 ms instead of ~45 ms (measured, bedrock-runtime)."""
    async def make_one() -> None:
        async with session.create_client(service, region_name="us-east-1", aws_access_key_id="warm",
                                         aws_secret_access_key="warm"):
            pass

    # A thread of its own: the caller may be inside a running loop (a test, `ainvoke_agent`'s first build).
    thread = threading.Thread(target=asyncio.run, args=(make_one(),), name="bedrock-client-warm")
    thread.start()
    thread.join()


def aio_config(config: Any) -> AioConfig:
    """botocore's Config, as aiobotocore's: the same retries, timeouts and pool size (aiohttp's connector limit)."""
    options = {name: getattr(config, name) for name in
               ("retries", "connect_timeout", "read_timeout", "max_pool_connections", "user_agent_extra")
               if getattr(config, name, None) is not None}
    return AioConfig(**options)
