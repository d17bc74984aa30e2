"""Two requests at the same instant, hundreds of times, in-process and over HTTP, on SQLite and in-process memory:
every request is answered, every stream ends with exactly one terminal event, no run stays `running`, the slots
all come back, and the session's history holds exactly the turns that completed.

Found on f6bfb2a: a run cancelled before its task started never ended (its slot lost for good, `status` stuck at
`running`, its followers never answered); two cancels at once ended streams with no terminal event; of several
`rollback` runs at once, all but the first ran one after another. RACE_TRIALS sets the trials of each kind
(default 200; CI runs the default).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import httpx
import pytest

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.server.app import build_app
from testkit.live_server import LiveServer
from tests.server.races import (InProcess, OverHTTP, Reply, answered, cancelled, check_stream, completed)
from testkit import loopback

pytestmark = pytest.mark.slow  # (pyproject.toml: `make test-quick` leaves it out)

TRIALS = int(os.environ.get("RACE_TRIALS", "200"))
AT_ONCE = 8  # trials run side by side (each on its own session): the races happen under load, not in a quiet loop
SLOTS = 16
PLAIN, TOOL = "Hi there", "What is 6 * 7?"
PLAIN_FRAMES = 4  # agent_start, the input step, the answer, agent_end


@pytest.fixture(params=["memory", "sqlite"])
async def in_process(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[InProcess]:
    settings = Settings(memory_backend=request.param, memory_path=str(tmp_path / "m.sqlite"),
                        max_concurrent_invocations=SLOTS, session_wait_s=10)
    runtime = build_app(settings, agent=build_agent(settings)).state.runtime
    yield InProcess(runtime)
    await runtime.runs.drain(10)
    await runtime.get_agent().drain(10)
    runtime.get_agent().close()


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def live(request: pytest.FixtureRequest) -> Any:
    server = LiveServer({"MEMORY_BACKEND": request.param, "MAX_CONCURRENT_INVOCATIONS": str(SLOTS),
                         "SESSION_WAIT_S": "10"})
    yield server
    server.stop()


@pytest.fixture
async def over_http(live: Any) -> AsyncIterator[OverHTTP]:
    limits = httpx.Limits(max_connections=4 * AT_ONCE, max_keepalive_connections=4 * AT_ONCE)
    async with loopback.AsyncClient(timeout=60, limits=limits) as client:
        yield OverHTTP(live.url, client)
    async with loopback.AsyncClient(timeout=10) as client:
        assert (await client.get(live.url + "/ping")).json()["status"] == "Healthy"
        # Every slot back: SLOTS runs at once are all taken (none refused with 503 server_busy).
        replies = await asyncio.gather(*(client.post(live.url + "/invocations", json={"prompt": PLAIN})
                                         for _ in range(SLOTS)))
        assert [reply.status_code for reply in replies] == [200] * SLOTS


# --- the trials ---------------------------------------------------------------------------------------------------

Trial = Callable[[Any, str, random.Random], Awaitable[list[str]]]


async def jitter(rng: random.Random) -> None:
    """A few loop turns: the second request lands at a different moment of the first one's life each trial."""
    for _ in range(rng.randrange(6)):
        await asyncio.sleep(0)


async def two_rollbacks(client: Any, session: str, rng: random.Random) -> list[str]:
    first = asyncio.ensure_future(client.run({"prompt": PLAIN, "session_id": session}))
    await jitter(rng)
    both = [client.run({"prompt": PLAIN, "session_id": session, "multitask_strategy": "rollback"}) for _ in "ab"]
    replies = await answered(first, *both)
    for reply in replies:
        check_stream(reply)
    later = replies[1:]
    assert any(completed(reply) for reply in later), later  # the last to look always runs
    if isinstance(client, InProcess):  # both looked in one loop pass: the second cancelled the first
        assert sum(completed(reply) for reply in later) == 1, later
    return [reply.run_id for reply in replies if reply.run_id]


async def run_and_cancel(client: Any, session: str, rng: random.Random) -> list[str]:
    run, stop = await answered(client.run({"prompt": rng.choice((PLAIN, TOOL)), "session_id": session}),
                               client.action({"action": "cancel", "session_id": session}))
    check_stream(run)
    assert stop.status in (200, 404), stop.body
    assert (stop.status == 200) == cancelled(run), (stop.body, run.frames)  # a cancel answered means it happened
    assert run.run_id or not completed(run), (run.status, run.body, run.frames)
    return [run.run_id] if run.run_id else []


async def two_cancels(client: Any, session: str, rng: random.Random) -> list[str]:
    seen = await client.run({"prompt": rng.choice((PLAIN, TOOL)), "session_id": session}, read=rng.randint(1, 3))
    run_id = seen.run_id
    await jitter(rng)
    stops = await answered(*(client.action({"action": "cancel", "session_id": session}) for _ in "ab"))
    statuses = sorted(stop.status for stop in stops)
    assert set(statuses) <= {200, 404}, [stop.body for stop in stops]
    if isinstance(client, InProcess):  # one loop pass: both see the run, both answer `cancelled` (idempotent)
        assert statuses[0] == statuses[1], statuses
    whole = await answered(client.action({"action": "resume", "session_id": session, "run_id": run_id}))
    check_stream(whole[0])
    assert (200 in statuses) == cancelled(whole[0]), (statuses, whole[0].frames)
    return [run_id] if run_id else []


async def cancel_at_an_event(client: Any, session: str, rng: random.Random) -> list[str]:
    prompt = rng.choice((PLAIN, TOOL))
    seen = await client.run({"prompt": prompt, "session_id": session, "stream_tokens": True},
                            read=rng.randint(1, 12 if prompt == TOOL else 8))
    run_id = seen.run_id
    stop = (await answered(client.action({"action": "cancel", "session_id": session, "run_id": run_id})))[0]
    whole = (await answered(client.action({"action": "resume", "session_id": session, "run_id": run_id})))[0]
    check_stream(whole)
    assert (stop.status == 200) == cancelled(whole), (stop.body, whole.frames)
    return [run_id] if run_id else []


async def cancel_while_ending(client: Any, session: str, rng: random.Random) -> list[str]:
    seen = await client.run({"prompt": PLAIN, "session_id": session}, read=PLAIN_FRAMES - 1)
    run_id = seen.run_id
    await jitter(rng)
    stop = (await answered(client.action({"action": "cancel", "session_id": session})))[0]
    whole = (await answered(client.action({"action": "resume", "session_id": session, "run_id": run_id})))[0]
    check_stream(whole)
    assert stop.status in (200, 404) and (stop.status == 200) == cancelled(whole), (stop.body, whole.frames)
    return [run_id] if run_id else []


async def shutdown_with_a_run_pending(client: InProcess, session: str, rng: random.Random) -> list[str]:
    """The lifespan's stop (what SIGTERM starts) lands while a run is registered but its task has not run yet."""
    runtime = client.runtime
    request = runtime.validate({"prompt": rng.choice((PLAIN, TOOL)), "session_id": session, "stream": True})
    run = await runtime.start_run(runtime.get_agent(), request, on_disconnect="continue", slots=runtime.slots,
                                  shutdown=runtime.shutdown_event())
    runtime.shutdown_event().set()
    whole = (await answered(client.follow(run.follow(0))))[0]
    check_stream(whole)
    return [whole.run_id] if whole.run_id else []


KINDS: dict[str, Trial] = {
    "two rollbacks": two_rollbacks,
    "run + cancel": run_and_cancel,
    "two cancels": two_cancels,
    "cancel at an event": cancel_at_an_event,
    "cancel while ending": cancel_while_ending,
}


async def trials(client: Any, kind: Trial, tag: str, seed: int) -> None:
    """TRIALS trials of `kind`, AT_ONCE side by side, each on a new session; then every session is checked."""
    rng = random.Random(seed)
    sessions: dict[str, list[str]] = {}

    async def one(i: int) -> None:
        session = f"race-{tag}-{kind.__name__.replace('_', '-')}-{seed}-{i}"
        sessions[session] = await kind(client, session, random.Random(rng.random()))

    for start in range(0, TRIALS, AT_ONCE):
        await asyncio.gather(*(one(i) for i in range(start, min(start + AT_ONCE, TRIALS))))
    for session, run_ids in sessions.items():
        await settled_and_whole(client, session, run_ids)


async def settled_and_whole(client: Any, session: str, run_ids: list[str]) -> None:
    """No run of the session still `running` once its turns have settled; the history holds exactly the turns
    that completed, each whole (every tool call answered), and no run in progress."""
    deadline = time.monotonic() + 20
    states = {}
    for run_id in run_ids:
        while True:
            status = await client.action({"action": "status", "session_id": session, "run_id": run_id})
            assert status.status == 200, status.body
            if status.body["state"] != "running" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        states[run_id] = status.body["state"]
    assert "running" not in states.values(), states
    history = (await client.action({"action": "history", "session_id": session})).body
    humans = [m for m in history["messages"] if m["type"] == "human"]
    assert len(humans) == list(states.values()).count("completed"), (states, history["messages"])
    assert history["run"] is None and whole_turns(history["messages"]), history["messages"]


def whole_turns(messages: list[dict[str, Any]], pending: frozenset[str] = frozenset()) -> bool:
    """Every turn is a human message, then the model's, with each tool call followed by its result — but for the
    calls in `pending` (approvals still waited for), which end the history unanswered."""
    calls: set[str] = set()
    for message in messages:
        if message["type"] == "human" and calls:
            return False
        calls.update(call["id"] for call in message.get("tool_calls", ()))
        if message["type"] == "tool":
            calls.discard(message["tool_call_id"])
    return calls == set(pending) and (not messages or messages[-1]["type"] == "ai")


@pytest.mark.parametrize("kind", list(KINDS))
async def test_races_in_process(in_process, kind):
    await trials(in_process, KINDS[kind], "p", 1)
    assert in_process.slots_free()
    assert not in_process.runtime.runs.running()


async def test_shutdown_with_a_run_pending_in_process(in_process):
    await trials(in_process, shutdown_with_a_run_pending, "s", 2)
    assert in_process.slots_free() and not in_process.runtime.runs.running()


@pytest.mark.parametrize("kind", list(KINDS))
async def test_races_over_http(over_http, kind):
    await trials(over_http, KINDS[kind], "h", 3)


def test_sigterm_with_a_run_pending_over_http(tmp_path):
    """SIGTERM to a real server process just after a run was started and while another waits for its session:
    each stream ends with one terminal event (the turn's own end, or `server_shutting_down`), and the process
    exits. (Each trial starts a process: 5 of them, against the in-process trials' 200 of the same path.)"""
    for trial in range(5):
        live = LiveServer({"MEMORY_BACKEND": "sqlite", "OFFLINE_TOKEN_DELAY_MS": "20", "SHUTDOWN_GRACE_S": "1"})
        try:
            asyncio.run(_sigterm_trial(live, f"sigterm-{trial}", trial))
        finally:
            live.stop()


async def _sigterm_trial(live: LiveServer, session: str, trial: int) -> None:
    async with loopback.AsyncClient(timeout=60) as client:
        http = OverHTTP(live.url, client)
        first = asyncio.ensure_future(http.run({"prompt": "Tell me about the sea", "session_id": session}))
        running = await _newest_run(http, session, None)
        second = asyncio.ensure_future(http.run({"prompt": PLAIN, "session_id": session}))  # waits for the session
        await _newest_run(http, session, running)  # registered, its turn waiting: the run pending at SIGTERM
        for _ in range(trial % 5):
            await asyncio.sleep(0)
        live.process.terminate()
        replies: list[Reply] = await answered(first, second)
    for reply in replies:
        if reply.status == 200:
            assert len(reply.terminal) == 1 and reply.frames[-1] == reply.terminal[0], reply.frames
            assert reply.terminal[0][0] == "agent_end" or reply.terminal[0][1]["code"] == "server_shutting_down"
        else:
            assert reply.status == 503, reply.body


async def _newest_run(http: OverHTTP, session: str, other_than: str | None) -> str:
    """The session's newest run once it is not `other_than` (polled: the server registers it when it reads the
    request, which is what the trial must wait for — a request not yet read at SIGTERM is never answered)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = await http.action({"action": "status", "session_id": session})
        if status.status == 200 and status.body["run_id"] != other_than:
            return status.body["run_id"]
        await asyncio.sleep(0.005)
    raise AssertionError(f"no new run of {session} registered")
