"""ThreadedCalls: a sync LangGraph saver's async methods on threads of the saver's own (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (BaseCheckpointSaver, ChannelVersions, Checkpoint, CheckpointMetadata,
                                       CheckpointTuple)

T = TypeVar("T")

# A mixin, first in a saver's bases, before the sync saver whose `get_tuple`, `list`, `put`… it calls: checked as
# that saver, but a plain class at run time (the method resolution order stays the savers' own).
if TYPE_CHECKING:
    _Saver = BaseCheckpointSaver[str]
else:
    _Saver = object


class ThreadedCalls(_Saver):
    """A sync LangGraph saver's async methods, run on the saver's own worker threads.

    Why not the libraries' async savers (AsyncSqliteSaver, AsyncPostgresSaver): they bind to the event loop they
    were created on (aiosqlite's thread, psycopg's async pool). This package serves from uvicorn's loop but also
    runs turns from callers' own loops (`invoke_agent` makes a new one per call), so one loop-agnostic saver
    serves them all. Its calls run on threads of its own, not the loop's default executor: on the shared pool 100
    turns' waiting calls each held a thread (the pool grew by the peak and never shrank: 25 → 109 threads over
    four rounds of stuck clients, bench/soak.py).
    """

    _executor: ThreadPoolExecutor | None = None
    _calls = 0
    _threads = 1
    _thread_name = "saver"

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)`, a call that uses the saver's connections: on the saver's own threads."""
        return await self.call_in_thread(fn, *args, **kwargs)

    async def call_in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool(), partial(fn, *args, **kwargs))

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix=self._thread_name)
        return self._executor

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self.call(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        items = await self.call(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit)))
        for item in items:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self.call(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await self.call(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await self.call(self.delete_thread, thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self.call(self.prune, thread_ids, strategy=strategy)

    def _stop_threads(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
