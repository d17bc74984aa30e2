"""The elastic thread pool: grows to its bound under load, shrinks back when idle, never loses a job."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bedrock.server.executor import ElasticThreadPool


def wait_until(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


def test_it_grows_to_the_bound_then_retires_idle_threads():
    pool = ElasticThreadPool(max_workers=8, idle_s=0.2)
    release = threading.Event()
    futures = [pool.submit(release.wait, 10) for _ in range(20)]  # more jobs than threads
    wait_until(lambda: pool.threads == 8)
    release.set()
    assert all(f.result(10) is True for f in futures)  # the 12 queued jobs ran too
    wait_until(lambda: pool.threads == 0)  # back to nothing, not the peak
    assert pool.submit(lambda: 42).result(5) == 42  # and it grows again on demand
    pool.shutdown()


def test_idle_threads_are_reused_not_multiplied():
    pool = ElasticThreadPool(max_workers=50, idle_s=5)
    for _ in range(200):
        pool.submit(lambda: None).result(5)
    assert pool.threads == 1
    pool.shutdown()


def test_no_job_is_lost_while_threads_retire():
    pool = ElasticThreadPool(max_workers=4, idle_s=0.001)  # threads retire all the time
    results = [pool.submit(lambda i=i: i * 2) for i in range(2000)]
    assert [f.result(10) for f in results] == [i * 2 for i in range(2000)]
    pool.shutdown()


def test_errors_and_cancellation_and_shutdown():
    pool = ElasticThreadPool(max_workers=1, idle_s=5)
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(5)
    gate = threading.Event()
    first = pool.submit(gate.wait, 5)
    wait_until(first.running)
    queued = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    gate.set()
    assert first.result(5) is True
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)


def test_asyncio_takes_it_as_the_default_executor():
    async def main() -> int:
        asyncio.get_running_loop().set_default_executor(ElasticThreadPool(4, idle_s=1))
        return await asyncio.to_thread(lambda: 7)

    assert asyncio.run(main()) == 7  # and asyncio.run's shutdown_default_executor returns
