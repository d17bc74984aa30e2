"""RetainedTaskStore: a2a-sdk's in-memory task store (tasks kept per owner: its owner resolver names the caller's
actor, context.py), whose finished tasks are forgotten RUN_RETENTION_S after they end, as finished runs are
(bedrock/core/runs.py): a long-lived process does not keep every task it ever served. A task still running, or
waiting for input, is kept.
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
    """Tasks per owner, in memory; a finished one deleted once `retention_s` has passed since it ended."""

    def __init__(self, retention_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(owner_resolver=resolve_user_scope)
        self.retention_s = retention_s
        self._clock = clock
        self._finished: OrderedDict[tuple[str, str], float] = OrderedDict()  # (owner, task id) → when it ended

    async def save(self, task: Task, context: ServerCallContext) -> None:
        await super().save(task, context)
        key = (resolve_user_scope(context), task.id)
        now = self._clock()
        if task.status.state in FINISHED:
            if key not in self._finished:
                self._finished[key] = now
        else:
            self._finished.pop(key, None)
        await self._expire(now, key)

    async def _expire(self, now: float, keep: tuple[str, str]) -> None:
        while self._finished:
            key, ended = next(iter(self._finished.items()))
            if now - ended <= self.retention_s or key == keep:
                return
            del self._finished[key]
            owner, task_id = key
            await self.delete(task_id, ServerCallContext(user=ActorUser(owner or None)))
