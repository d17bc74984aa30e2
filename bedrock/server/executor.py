"""A thread pool that shrinks: the event loop's default executor (sync tools, AgentCore Memory's boto3 calls — the
model's streams run on the loop itself, through aiobotocore).

Written here because the standard ThreadPoolExecutor never retires a thread: after a burst of 100 slow
streams it kept 106 threads for the life of the process, each with its stack and malloc arena touched
(bench/soak.py). Here threads start on demand up to `max_workers`, as there, and exit after `idle_s`
without work.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class ElasticThreadPool(ThreadPoolExecutor):
    """`submit` runs each call on an idle thread, or a new one while fewer than `max_workers` exist.

    A ThreadPoolExecutor by type only (asyncio's `set_default_executor` accepts nothing else): `submit` and
    `shutdown` are its own, and the base class never starts a thread. Jobs, idle threads and thread count
    change under one lock, so "is a thread free for this job?" has an exact answer (the standard pool's
    idle semaphore over-counts, harmless only because its threads never leave).
    """

    def __init__(self, max_workers: int, idle_s: float = 30.0, thread_name_prefix: str = "worker") -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self.max_workers = max_workers
        self.idle_s = idle_s
        self.prefix = thread_name_prefix
        self._ready = threading.Condition(threading.Lock())
        self._pending: deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = deque()
        self._waiting = 0  # threads waiting for a job
        self._workers: set[threading.Thread] = set()
        self._started = 0
        self._closed = False

    @property
    def threads(self) -> int:
        """Threads alive now."""
        return len(self._workers)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._pending.append((future, fn, args, kwargs))
            if self._waiting >= len(self._pending):
                self._ready.notify()  # a waiting thread takes it
            elif len(self._workers) < self.max_workers:
                self._started += 1
                thread = threading.Thread(target=self._work, name=f"{self.prefix}_{self._started}", daemon=True)
                self._workers.add(thread)
                thread.start()
            # else: every thread is busy and there are max_workers of them; the first one free takes it
        return future

    def _next(self) -> tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None:
        """The next job, or None when this thread should end (idle for `idle_s`, or shut down)."""
        with self._ready:
            self._waiting += 1
            try:
                while not self._pending:
                    if self._closed or not self._ready.wait(self.idle_s) and not self._pending:
                        self._workers.discard(threading.current_thread())
                        return None
                return self._pending.popleft()
            finally:
                self._waiting -= 1

    def _work(self) -> None:
        while (job := self._next()) is not None:
            future, fn, args, kwargs = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as error:  # handed to whoever awaits the future
                    future.set_exception(error)
            del job, future, fn, args, kwargs  # drop references before idling

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._ready:
            self._closed = True
            if cancel_futures:
                while self._pending:
                    self._pending.popleft()[0].cancel()
            self._ready.notify_all()
            workers = list(self._workers)
        if wait:
            for thread in workers:
                thread.join()
