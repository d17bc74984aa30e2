"""RuntimeExecutor: a2a-sdk's AgentExecutor for the app's Runtime — each message of a task becomes a run.

    execute   the task (new: its Task first, with the message in its history), the message as our payload
              (inputs.py: a prompt, or the answer to what the task waits on), `Runtime.validate` with the caller's
              verified actor as /invocations does, then `Runtime.dispatch(request, "a2a")`: the agent, the session's
              owner (another actor's context is refused: rejected, nothing runs), multitask_strategy, a slot, the
              run. The run's events become the task's updates (updates.py) until its last.
    cancel    tasks/cancel: the task's run cancelled, and `cancel` returns once it is rolled back and the task says
              canceled (the run's own `cancelled` event, mapped). A task that waits for input runs nothing: it is
              canceled at once, and its session keeps the pending interrupt (the context's next message answers it,
              or, with the built-in agent, declines it by saying something else).

The run is followed by the executor's task — a2a-sdk's, which outlives any connection (a dropped stream leaves it
running; tasks/resubscribe joins it again) — as its owner, with the "a2a" origin's `on_disconnect: cancel`: whatever
ends that task (a2a-sdk's own cancel, the A2A server closing) cancels the run and waits until it is rolled back.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from dataclasses import dataclass, field

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types import Task, TaskState, TaskStatus

from bedrock.a2a.context import actor_of
from bedrock.a2a.inputs import payload_for, pending_of
from bedrock.a2a.updates import TurnUpdates
from bedrock.core.trace_context import incoming_trace
from bedrock.core.runs import Run
from bedrock.errors import AgentError
from bedrock.server.runtime import Followed, Runtime

logger = logging.getLogger(__name__)


@dataclass
class Execution:
    """One message's execution: its task, and its run once dispatched."""

    task: asyncio.Task[None] | None
    run: Run | None = None
    cancelling: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


class RuntimeExecutor(AgentExecutor):
    """Runs each message of a task through `runtime`; cancels the run of a task being cancelled."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._executions: dict[str, Execution] = {}  # by task id: a task runs one message at a time (a2a-sdk's lock)

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task_id, context_id = context.task_id, context.context_id
        assert task_id and context_id, "a2a-sdk names the task and its context before executing"
        # What the task waits on, read before any update: a status's message moves to the task's history then.
        pending = pending_of(context.current_task)
        if context.current_task is None:
            history = [context.message] if context.message is not None else []
            await event_queue.enqueue_event(Task(id=task_id, context_id=context_id, history=history,
                                                 status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED)))
        execution = self._executions[task_id] = Execution(asyncio.current_task())
        try:
            await self._execute(context, TurnUpdates(TaskUpdater(event_queue, task_id, context_id)), pending,
                                execution)
        finally:
            if self._executions.get(task_id) is execution:
                del self._executions[task_id]
            execution.done.set()

    async def _execute(self, context: RequestContext, updates: TurnUpdates, pending: list[dict[str, object]],
                       execution: Execution) -> None:
        try:
            payload = payload_for(context.message, str(context.context_id), pending, context.metadata)
            request = self.runtime.validate(payload, None, actor_of(context.call_context), prefers_events=True)
            with incoming_trace(context.call_context.state.get("headers")):  # the caller's trace: the turn's parent
                outcome = await self.runtime.dispatch(request, "a2a")
        except AgentError as refused:
            await updates.refused(refused)
            return
        except asyncio.CancelledError:
            # Cancelled on its way in by `cancel`, before any run began: nothing to roll back.
            if not execution.cancelling:
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # ours, and handled here: the task goes on to say so
            await updates.updater.cancel()
            return
        # A run (a prompt, or an interrupt's answer) — followed at once: no await until the follower is held, so
        # a cancellation of this task always finds it (and, as its owner, closing it cancels the run).
        assert isinstance(outcome, Followed)
        async with aclosing(outcome.follower) as follower:
            execution.run = follower.run
            if execution.cancelling:
                follower.run.cancel()
            async for event in follower:
                if await updates.apply(event):
                    return
        await updates.refused(AgentError("internal_error", "The run ended without its last event."))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        execution = self._executions.get(context.task_id or "")
        if execution is None:  # waiting for input: nothing runs
            await TaskUpdater(event_queue, context.task_id or "", context.context_id or "").cancel()
            return
        execution.cancelling = True
        if execution.run is not None:
            execution.run.cancel()  # rolled back, then its `cancelled` event: the task says canceled
        elif execution.task is not None:
            execution.task.cancel()  # still on its way in (the agent's build, the session's turn to come)
        bound = self.runtime.settings.session_wait_s + self.runtime.settings.shutdown_grace_s
        try:
            await asyncio.wait_for(execution.done.wait(), bound or None)
        except TimeoutError:
            logger.warning("the run of A2A task %s was not rolled back within %g s of its cancel", context.task_id,
                           bound)
