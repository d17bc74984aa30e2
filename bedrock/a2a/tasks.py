"""RetainedTaskStore: a2a-sdk's in-memory task store (tasks kept per owner: its owner resolver names the caller's
actor, context.py), whose finished tasks are forgotten RUN_RETENTION_S after they end, or sooner, oldest first, once
they hold more than RUN_RETAIN_BYTES together, as finished runs are (bedrock/core/runs.py): a long-lived process does
not keep every task it ever served, and a caller sending 1 MB messages (each kept in its task's history) cannot make
it hold 600 s of them. A task still running, or waiting for input, is kept.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from a2a.server.context import ServerCallContext
from a2a.server.owner_resolver import resolve_user_scope
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import Task, TaskState

from bedrock.a2a.context import ActorUser

FINISHED = frozenset({TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_CANCELED, TaskState.TASK_STATE_FAILED,
                      TaskState.TASK_STATE_REJECTED})


class RetainedTaskStore(InMemoryTaskStore):
    """Tasks per owner, in memory; a finished one deleted once `retention_s` has passed since it ended, or once the
    finished ones hold more than `retain_bytes` (their protobuf size), the oldest first."""

    def __init__(self, retention_s: float, retain_bytes: int = 16_777_216,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(owner_resolver=resolve_user_scope)
        self.retention_s, self.retain_bytes = retention_s, retain_bytes
        self._clock = clock
        # (owner, task id) → when it ended and its size; in the order they ended
        self._finished: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()
        self._bytes = 0  # the finished tasks' sizes, together

    async def save(self, task: Task, context: ServerCallContext) -> None:
        await super().save(task, context)
        key = (resolve_user_scope(context), task.id)
        now = self._clock()
        previous = self._finished.get(key)
        if task.status.state in FINISHED:
            size = task.ByteSize()  # protobuf's own count, without serialising
            ended = previous[0] if previous is not None else now  # (an existing key keeps its place: its age)
            self._finished[key] = (ended, size)
            self._bytes += size - (previous[1] if previous is not None else 0)
        elif previous is not None:
            del self._finished[key]
            self._bytes -= previous[1]
        await self._expire(now, key)

    async def _expire(self, now: float, keep: tuple[str, str]) -> None:
        while self._finished:
            key, (ended, size) = next(iter(self._finished.items()))
            if (now - ended <= self.retention_s and self._bytes <= self.retain_bytes) or key == keep:
                return
            del self._finished[key]
            self._bytes -= size
            owner, task_id = key
            await self.delete(task_id, ServerCallContext(user=ActorUser(owner or None)))
