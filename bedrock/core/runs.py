"""Runs: a turn that lives apart from the connection that started it, and the registry of a process's runs.

On AgentCore a client's disconnect never reaches the container, and a dropped stream loses the rest of the turn
for that client though the turn goes on. So a turn runs as its own task (a `Run`), its frames recorded in a
bounded buffer; any number of followers replay them from an event id and then follow live. A run is cancelled
by a later request (`cancel`), by the policy of its own request when that request's client leaves
(`on_disconnect`), or by a newer run of its session (`multitask_strategy: rollback`). ARCHITECTURE.md draws it.

    Run.start(events)           the producer task: iterates the turn's events, records each frame
    run.follow(after)           a Follower: the frames after `after`, then live ones, to the terminal event
    run.cancel()                the turn is cancelled (and rolled back); followers get one `error` `cancelled`

A run's life, whatever happens when (ARCHITECTURE.md, "A run's life"):

    created ──(its task starts)──► producing ──► ended: completed | failed | cancelled
       └──── cancel() before its task ran: never produces; ended: cancelled

Every path records exactly one terminal frame and calls the `on_end` callbacks (which give back the run's slot)
exactly once: `_finish` is the one way to `ended`, and the task's done-callback catches a task that ended
without producing (cancelled before it ran: asyncio then never runs its coroutine's body, so no `finally` of it).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from bedrock.errors import AgentError
from bedrock.wire.events import ERROR, TERMINAL_EVENTS, EventStream, SSEEvent, encode_frame, revive, utc_timestamp

logger = logging.getLogger(__name__)

RUNNING, COMPLETED, FAILED, CANCELLED = "running", "completed", "failed", "cancelled"
_STR_OVERHEAD = 49  # sys.getsizeof("") on CPython: what a kept frame costs beyond its text
_RUN_OVERHEAD = 2048  # a kept run's own objects (Run, deque, dicts, registry entries), about: measured ~2 KiB


def new_run_id() -> str:
    return f"run-{uuid.uuid4().hex}"


class Run:
    """One turn's frames, recorded as they are produced, for whoever follows it now or later.

    What is kept for later resumes is at most `buffer_bytes` of frames (the oldest dropped first; a resume from
    before them gets `resume_unavailable`), but a frame an attached follower has yet to read is never dropped:
    a slow client slows nobody and loses nothing (the SSE stall bound ends one that stops reading). Frame ids
    are the turn's own (1, 2, 3 …, contiguous), so a resumed follower receives exactly the bytes, with exactly
    the ids, that an uninterrupted one did. Once the run has ended and nobody reads it live, its frames are kept
    as their text alone (about a quarter of the memory: the parsed `data` goes) and revived when resumed.
    """

    def __init__(self, run_id: str, session_id: str, actor_id: str, *, buffer_bytes: int,
                 on_disconnect: str = "continue") -> None:
        self.run_id, self.session_id, self.actor_id = run_id, session_id, actor_id
        self.on_disconnect = on_disconnect
        self.buffer_bytes = buffer_bytes
        self.state = RUNNING
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.frames: deque[SSEEvent | str] = deque()
        self.first_id = 1  # the id of frames[0] (once frames are dropped, higher)
        self.last_id = 0
        self._size = 0
        self._trim_at = buffer_bytes  # the size at which to look again at what may be dropped
        self._waiter: asyncio.Future[None] | None = None  # resolved at the next frame (or the end)
        self._task: asyncio.Task[None] | None = None
        self._started = False  # the producer task has begun (before that, cancel() needs no task.cancel())
        self._cancel_requested = False
        self.followers = 0
        self.retained = 0  # what the registry counts for it once it has ended
        self._attached: set[Follower] = set()
        self.on_followers: Callable[[Run], None] | None = None  # told when the follower count changes
        self.on_end: list[Callable[[Run], None]] = []

    # --- producing --------------------------------------------------------------------------------------

    def start(self, events: EventStream) -> Run:
        """Run the turn (`events`) as a task of its own, recording every frame."""
        self._task = asyncio.get_running_loop().create_task(self._produce(events), name=self.run_id)
        self._task.add_done_callback(self._task_done)
        return self

    async def _produce(self, events: EventStream) -> None:
        self._started = True
        try:
            if self._cancel_requested:  # cancelled before it ran: the turn never started, nothing to undo
                await events.aclose()
                self._end_with("cancelled")
                return
            async with aclosing(events):
                async for frame in events:
                    self._record(frame)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            # Ours alone (one cancel() is one task.cancel()): the turn has been rolled back (its generator's
            # `finally`). Someone else's too (the loop closing): the followers still get their terminal frame.
            ours = self._cancel_requested and (task is None or task.uncancel() == 0)
            self._end_with("cancelled")
            if not ours:
                raise
        except Exception:  # the turn reports its own failures as `error` events; this would be a bug
            logger.exception("run %s failed outside its turn", self.run_id)
            self._end_with("internal_error")
        finally:
            if self.state == RUNNING:  # the turn's events ended without a terminal one
                self._end_with("internal_error")

    def _end_with(self, code: str) -> None:
        """Record the terminal `error` frame `code`, numbered after the last one (if the run has not ended)."""
        if self.state == RUNNING:
            self._record(encode_frame(ERROR, AgentError(code).event_data(utc_timestamp()), self.last_id + 1))

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """The producer task is done: a run that has not ended (its task cancelled before its body ran) ends now."""
        if self.state == RUNNING:
            self._end_with("cancelled")

    def _record(self, frame: SSEEvent) -> None:
        """Keep the frame (dropping the oldest past `buffer_bytes`) and wake the followers."""
        if self.state != RUNNING:
            return
        self.frames.append(frame)
        self.last_id = frame.id or self.last_id + 1
        self._size += len(frame)
        if self._size > self._trim_at:
            self._trim()
        if frame.type in TERMINAL_EVENTS:
            cancelled = isinstance(frame.data, dict) and frame.data.get("code") == "cancelled"
            self._finish(COMPLETED if frame.type != ERROR else CANCELLED if cancelled else FAILED)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def kept_bytes(self) -> int:
        """What keeping the run costs, about: its frames' text, a string's overhead each, and its own objects."""
        return self._size + _STR_OVERHEAD * len(self.frames) + _RUN_OVERHEAD

    def _compact(self) -> None:
        """Once nobody reads the frames live, keep only their text (see `revive`): the parsed data goes. Not
        before, or followers still reading would each parse every frame again."""
        self.frames = deque(str(frame) for frame in self.frames)

    def _trim(self) -> None:
        """Drop the oldest frames past `buffer_bytes` that no attached follower still has to read."""
        frames = self.frames
        attached = self._attached
        unread = min(follower.next_id for follower in attached) if attached else self.last_id + 1
        while self._size > self.buffer_bytes and len(frames) > 1 and self.first_id < unread:
            self._size -= len(frames.popleft())
            self.first_id += 1
        # Held back by a follower: look again only after another eighth of the budget, not at every frame.
        self._trim_at = max(self.buffer_bytes, self._size + self.buffer_bytes // 8)

    def _finish(self, state: str) -> None:
        if self.state != RUNNING:
            return
        self.state = state
        self.finished_at = time.time()
        if not self._attached:
            self._compact()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        for callback in self.on_end:
            try:
                callback(self)
            except Exception:
                logger.exception("an end callback of run %s failed", self.run_id)

    async def _next(self) -> None:
        """Wait for the next frame, or the end."""
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._waiter)  # a follower's cancel must not resolve it for the others

    # --- controlling -----------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.state != RUNNING

    def cancel(self) -> bool:
        """Cancel the turn (it rolls back; followers get `error` `cancelled`). False if it had already ended.

        Idempotent: a second cancel (two clients pressing Stop at once) adds nothing, so the producer can tell
        its own cancellation (one) from the loop's. Before the producer has started, nothing is cancelled: it
        sees the request when it starts and ends at once (asyncio would otherwise never run its body)."""
        if self.finished or self._task is None or self._task.done():
            return False
        if not self._cancel_requested:
            self._cancel_requested = True
            if self._started:
                self._task.cancel()
        return True

    async def settled(self, timeout_s: float | None = None) -> bool:
        """Wait until the producer has ended (the turn kept or rolled back); False on timeout."""
        task = self._task
        if task is None or task.done():
            return True
        done, _ = await asyncio.wait([task], timeout=timeout_s)  # never cancels the task, only our wait
        return bool(done)

    # --- following -------------------------------------------------------------------------------------

    def follow(self, after: int = 0, *, owner: bool = False) -> Follower:
        """A follower of the frames with ids above `after`; `owner` is the request that started the run."""
        return Follower(self, after, owner)

    def _attach(self, follower: Follower, attached: bool) -> None:
        if attached:
            self._attached.add(follower)
        else:
            self._attached.discard(follower)
            if self._size > self.buffer_bytes:
                self._trim()  # what it held back may go now
            if self.finished and not self._attached:
                self._compact()
        self.followers = len(self._attached)
        if self.on_followers is not None:
            self.on_followers(self)

    def status(self) -> dict[str, Any]:
        """The run as the `status` action reports it."""
        return {"session_id": self.session_id, "run_id": self.run_id, "state": self.state,
                "last_event_id": self.last_id}


class Follower:
    """Iterates a run's frames after an id, then follows it live to its terminal event; `aclose()` to leave.

    A class around an async generator: the follower count must be right from the moment it exists (an async
    generator that was never started runs no `finally` when closed), while `async for` iterates the generator
    itself (`__aiter__`), whose `__anext__` costs less per frame than a coroutine method's.
    """

    def __init__(self, run: Run, after: int, owner: bool) -> None:
        self.run, self.owner = run, owner
        self.next_id = after + 1
        self.done = False
        self.closed = False
        self._frames = self._iterate()
        run._attach(self, True)

    def __aiter__(self) -> AsyncIterator[SSEEvent]:
        return self._frames

    def __anext__(self) -> Any:
        return self._frames.__anext__()

    async def _iterate(self) -> AsyncGenerator[SSEEvent, None]:
        run = self.run
        try:
            while True:
                if self.next_id <= run.last_id:
                    if self.next_id < run.first_id:  # resumed from before what the buffer keeps (see `_trim`)
                        self.done = True
                        unavailable = AgentError("resume_unavailable", "This follower fell behind the frames kept "
                                                 "for the run (RUN_BUFFER_BYTES); resume from a later event id.")
                        yield encode_frame(ERROR, unavailable.event_data(utc_timestamp()), run.last_id + 1)
                        return
                    frame = run.frames[self.next_id - run.first_id]
                    if frame.__class__ is not SSEEvent:  # kept as its text once the run ended
                        frame = revive(frame)
                    self.next_id += 1
                    if frame.type in TERMINAL_EVENTS:
                        self.done = True
                        yield frame
                        return
                    yield frame
                elif run.finished:
                    return
                else:
                    await run._next()
        finally:
            self._leave()

    def _leave(self) -> None:
        if not self.closed:
            self.closed = True
            self.run._attach(self, False)

    async def aclose(self) -> None:
        """Leave the run. The request that started it, leaving before its end, cancels it if it asked to."""
        await self._frames.aclose()
        self._leave()  # (a generator never started ran no `finally`)
        run = self.run
        if self.owner and not self.done and run.on_disconnect == "cancel" and run.cancel():
            # Until the turn is rolled back, whoever closed us must not see the session as free.
            await asyncio.shield(asyncio.ensure_future(run.settled()))


class RunRegistry:
    """A process's runs by id and by session: the active run of each session, finished runs kept
    `retention_s` for `resume` and `status`, the oldest dropped first while they hold more than `retain_bytes`
    together (a hard bound on what finished runs keep, whatever the traffic: without it, clients that leave every
    run early would have a process keep up to RUN_BUFFER_BYTES per run for RUN_RETENTION_S)."""

    def __init__(self, *, buffer_bytes: int, retention_s: float, retain_bytes: int) -> None:
        self.buffer_bytes, self.retention_s, self.retain_bytes = buffer_bytes, retention_s, retain_bytes
        self.retained = 0  # bytes the finished runs keep (their frames' text, and each string's own overhead)
        self._runs: dict[str, Run] = {}
        self._latest: dict[str, Run] = {}  # session → its newest run
        self._active: dict[str, dict[str, Run]] = {}  # session → its runs not yet ended, oldest first
        self._finished: OrderedDict[str, Run] = OrderedDict()  # oldest first
        self.on_followers: Callable[[Run], None] | None = None
        self.on_end: Callable[[Run], None] | None = None

    def start(self, run_id: str, session_id: str, actor_id: str, events: EventStream,
              on_disconnect: str) -> Run:
        self.expire()
        run = Run(run_id, session_id, actor_id, buffer_bytes=self.buffer_bytes, on_disconnect=on_disconnect)
        run.on_followers = self.on_followers
        run.on_end.append(self._ended)
        if self.on_end is not None:
            run.on_end.append(self.on_end)
        self._runs[run_id] = self._latest[session_id] = run
        self._active.setdefault(session_id, {})[run_id] = run
        return run.start(events)

    def _ended(self, run: Run) -> None:
        active = self._active.get(run.session_id)
        if active is not None:
            active.pop(run.run_id, None)
            if not active:
                del self._active[run.session_id]
        self._finished[run.run_id] = run
        run.retained = run.kept_bytes()  # counted as it was at its end (later trims only make it smaller)
        self.retained += run.retained
        self.expire()

    def active(self, session_id: str) -> Run | None:
        """The session's newest run that has not ended (the one `status` and `history` report)."""
        active = self._active.get(session_id)
        return next(reversed(active.values())) if active else None

    def active_runs(self, session_id: str) -> list[Run]:
        """Every run of the session that has not ended, oldest first (with `enqueue`, one runs, the rest wait)."""
        return list(self._active.get(session_id, {}).values())

    def find(self, session_id: str, run_id: str | None = None) -> Run | None:
        """The session's run `run_id`, or its newest run; None if unknown, expired, or another session's."""
        self.expire()
        run = self._runs.get(run_id) if run_id else self._latest.get(session_id)
        return run if run is not None and run.session_id == session_id else None

    def running(self) -> list[Run]:
        return [run for run in self._runs.values() if not run.finished]

    def expire(self) -> None:
        """Drop finished runs past `retention_s`, and the oldest while they keep more than `retain_bytes`."""
        finished, now = self._finished, time.time()
        while finished:
            run = next(iter(finished.values()))
            if self.retained <= self.retain_bytes and (run.finished_at or now) + self.retention_s > now:
                break
            finished.popitem(last=False)
            self.retained -= run.retained
            self._runs.pop(run.run_id, None)
            if self._latest.get(run.session_id) is run:
                del self._latest[run.session_id]

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait for the running runs to end (on shutdown, after their deadline moved to the grace period)."""
        tasks = [run._task for run in self.running() if run._task is not None
                 and run._task.get_loop() is asyncio.get_running_loop()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
