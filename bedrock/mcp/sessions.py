"""MCP sessions kept open between calls: per server and event loop, a few idle ones, each used by one call at a time.

A call takes an idle session (or opens one: initialize, for stdio the server's process) and gives it back when
its answer came. The adapters' default opens a session per call: four HTTP requests and a new connection for each
call, a new process for each stdio call (~0.55 s here); reused, a call is one request (bench/mcp_bench.py).

What a session per call gave stays true:
- a call cut short (cancelled, timed out, its turn rolled back) closes its session: a stdio server's process is
  ended, an HTTP session deleted (the server cancels what runs in it); no other call shares it;
- a server restarted between two calls: an idle session it no longer knows (HTTP 404, "Session terminated") or
  that cannot reach it is closed, and the call is sent once more on a new session — never a call the server may
  have run (only these refusals, which come before it runs anything);
- a session whose server dies mid-call is seen at once (`broken`: calls.py's watched transport).

A session lives in a task of its own (`_Held._hold`): the adapters' `create_session` is a chain of anyio context
managers, which must be left in the task that entered them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

import anyio
import httpx
from mcp import ClientSession
from mcp.shared.exceptions import McpError
from mcp.types import CallToolResult, ToolListChangedNotification

from bedrock.mcp.calls import BROKEN, tell_broken, cause

logger = logging.getLogger(__name__)

MAX_IDLE = 4  # idle sessions kept per server and loop (a stdio one is a process: ~40 MB of a Python server's RSS)
# Calls at once on one stdio server (each its own session, so its own process): 200 turns at once must not start 200
# servers. Beyond it a call waits for one to end, within MCP_TOOL_TIMEOUT_S. An HTTP server takes what it takes.
MAX_STDIO_CALLS = 8
# A stdio session idle this long answers a ping before a call goes on it: its process may have died meanwhile, and
# then a call on it fails as one lost mid-way would ("Connection closed"), which is never sent again.
PROBE_AFTER_S = 0.05
PING_TIMEOUT_S = 2.0
CLOSE_WAIT_S = 5.0  # a session's close (stdio: the mcp SDK gives its process 2 s, then ends it) waited for at most


class _Held:
    """One open session, held by its own task until closed."""

    def __init__(self, broken: asyncio.Future[BaseException]) -> None:
        self.broken = broken  # given the error that broke one of its HTTP responses mid-body (calls.py)
        self.session: ClientSession | None = None
        self.closed = False
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.idle_since = time.monotonic()

    @classmethod
    async def open(cls, connection: dict[str, Any]) -> _Held:

        held = cls(asyncio.get_running_loop().create_future())
        ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
        reset = BROKEN.set(held.broken)
        try:
            held._task = asyncio.ensure_future(held._hold(connection, ready))  # copies the context: BROKEN
        finally:
            BROKEN.reset(reset)
        try:
            either: set[asyncio.Future[Any]] = {ready, held.broken}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not ready.done():  # its HTTP request failed: the SDK's initialize would wait for ever
                raise held.broken.result()
            held.session = ready.result()
        except BaseException:
            if not ready.cancel() and not ready.cancelled():
                ready.exception()  # retrieved: the error raised here is what the caller gets
            await held.close()
            raise
        return held

    async def _hold(self, connection: dict[str, Any], ready: asyncio.Future[ClientSession]) -> None:
        from langchain_mcp_adapters.sessions import create_session

        try:
            async with create_session(connection) as session:  # type: ignore[arg-type]  # the adapters' map
                await session.initialize()
                if ready.done():  # its opener gave up meanwhile (cancelled): leave at once
                    return
                ready.set_result(session)
                await self._closing.wait()
        except Exception as error:  # opening failed (given to the opener), or the session broke while held
            if not ready.done():
                ready.set_exception(error)
            else:
                logger.debug("an MCP session ended: %s", type(error).__name__)
            tell_broken(self.broken, error)  # a call on it now would never be answered
        finally:
            self.closed = True
            if not ready.done():
                ready.cancel()

    async def close(self) -> None:
        """Leave the session (stdio: its process ends; HTTP: DELETE), waited for at most CLOSE_WAIT_S."""
        self.closed = True
        self._closing.set()
        task = self._task
        if task is None or task.done():
            return
        if self.session is None:  # still opening (a server slow to answer initialize): nothing to leave politely
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=CLOSE_WAIT_S)
        if not done:
            task.cancel()


def _refused_before_running(error: BaseException) -> bool:
    """An idle session the server no longer has (restarted: HTTP 404, which the mcp SDK reports as "Session
    terminated"), or whose server cannot be reached, or whose stdio process is gone: the call was never run."""
    error = cause(error)
    if isinstance(error, McpError):
        return "session terminated" in error.error.message.lower()
    return isinstance(error, httpx.ConnectError | anyio.ClosedResourceError | anyio.BrokenResourceError)


class SessionPool:
    """One server's idle sessions on one event loop."""

    def __init__(self, server: str, connection: dict[str, Any]) -> None:
        self.server = server
        self.connection = {**connection, "session_kwargs": {**connection.get("session_kwargs", {}),
                                                            "message_handler": self._notice}}
        self.list_changed = False
        self.slots = asyncio.Semaphore(MAX_STDIO_CALLS) if connection.get("transport") == "stdio" else None
        self.idle: list[_Held] = []
        self.opened = 0  # sessions opened so far (the tests and the bench read it)

    async def call(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        if self.slots is None:
            return await self._call_once_more(name, arguments)
        async with self.slots:
            return await self._call_once_more(name, arguments)

    async def _call_once_more(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        """On an idle session, or a new one; once more on a new one if the idle one was refused before running."""
        held = self._take()
        if held is not None and self.slots is not None and not await self._answers_ping(held):
            held = None  # a stdio server that died while idle: a call on it could not tell "never sent" from "lost"
        if held is not None:
            try:
                return await self._call(held, name, arguments)
            except Exception as error:
                if not _refused_before_running(error):
                    raise
                logger.info("an idle MCP session was gone (%s): calling %s on a new one", type(error).__name__, name)
        return await self._call(await self._open(), name, arguments)

    async def _notice(self, message: Any) -> None:
        """A server's message outside any call's answer: its tool list changed, said once (the tools are bound into
        the graph when it is built, so a new list is offered after a restart)."""
        root = getattr(message, "root", None)
        if isinstance(root, ToolListChangedNotification) and not self.list_changed:
            self.list_changed = True
            logger.warning("MCP server %r changed its tools (notifications/tools/list_changed): the agent offers the "
                           "tools it listed at startup; restart it to offer the new list", self.server)

    async def _answers_ping(self, held: _Held) -> bool:
        """A stdio session idle PROBE_AFTER_S or more answers a ping (~0.3 ms), else is closed."""
        if time.monotonic() - held.idle_since < PROBE_AFTER_S:
            return True
        assert held.session is not None
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                await held.session.send_ping()
            return True
        except Exception:
            _close_later(held)
            return False

    def _take(self) -> _Held | None:
        while self.idle:
            held = self.idle.pop()
            if not held.closed and not held.broken.done():
                return held
            _close_later(held)
        return None

    async def _open(self) -> _Held:
        held = await _Held.open(self.connection)
        self.opened += 1
        return held

    async def _call(self, held: _Held, name: str, arguments: dict[str, Any]) -> CallToolResult:
        assert held.session is not None
        call = asyncio.ensure_future(held.session.call_tool(name, arguments))
        try:
            either: set[asyncio.Future[Any]] = {call, held.broken}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled (the turn, its timeout): the call ends with its session
            call.cancel()
            await _shielded_close(held)
            raise
        if not call.done():  # its server died mid-answer
            call.cancel()
            await _shielded_close(held)
            raise held.broken.result()
        try:
            result = call.result()
        except BaseException:
            await _shielded_close(held)
            raise
        self._give_back(held)
        return result

    def _give_back(self, held: _Held) -> None:
        if held.closed or held.broken.done() or len(self.idle) >= MAX_IDLE:
            _close_later(held)
        else:
            held.idle_since = time.monotonic()
            self.idle.append(held)

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        await asyncio.gather(*(held.close() for held in idle))


_CLOSING: set[asyncio.Task[None]] = set()  # closes nobody waits for, kept from the garbage collector meanwhile


def _close_later(held: _Held) -> None:
    task = asyncio.ensure_future(held.close())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


async def _shielded_close(held: _Held) -> None:
    """Close; a second cancellation stops only the wait (the close goes on in its own task)."""
    await asyncio.shield(asyncio.ensure_future(held.close()))


class SessionPools:
    """Every server's pool, per event loop (a session belongs to the loop that opened it)."""

    def __init__(self, connections: dict[str, dict[str, Any]]) -> None:
        self.connections = connections
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, SessionPool]] = (
            weakref.WeakKeyDictionary())

    async def call(self, server: str, name: str, arguments: dict[str, Any]) -> CallToolResult:
        return await self.pool(server).call(name, arguments)

    def pool(self, server: str) -> SessionPool:
        pools = self._pools.setdefault(asyncio.get_running_loop(), {})
        if server not in pools:
            pools[server] = SessionPool(server, self.connections[server])
        return pools[server]

    async def close_idle(self) -> None:
        """Close this loop's idle sessions (at shutdown: stdio servers' processes end with them)."""
        pools = self._pools.pop(asyncio.get_running_loop(), {})
        await asyncio.gather(*(pool.close() for pool in pools.values()))
