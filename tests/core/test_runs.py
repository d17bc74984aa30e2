"""Runs in-process: a turn apart from its caller, followed and resumed byte for byte, cancelled, bounded."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any, AsyncIterator, Iterator

import pytest

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.wire.request import parse_request
from bedrock.core.runs import RunRegistry
from bedrock.errors import AgentError
from bedrock.offline.endpoint import OfflineBedrockEndpoint
from bedrock.server.app import build_app
from bedrock.server.runtime import Runtime
from bedrock.wire.events import AGENT_END, ERROR, EventSequence, SSEEvent

TOOL_TURN = "What is 25 * 4?"
LONG = "Tell me about the sea"


@pytest.fixture
def endpoint() -> Iterator[OfflineBedrockEndpoint]:
    ep = OfflineBedrockEndpoint(token_delay_ms=2).start()
    yield ep
    ep.stop()


def make_runtime(endpoint: OfflineBedrockEndpoint, **settings: Any) -> Runtime:
    config = Settings(model_provider="bedrock", memory_backend="memory", token_buffer_size=1, **settings)
    return build_app(config, agent=build_agent(config, endpoint.url)).state.runtime


async def history(runtime: Runtime, session_id: str) -> list[str]:
    state = await runtime.get_agent().graph.aget_state({"configurable": {"thread_id": session_id}})
    return [m.content if isinstance(m.content, str) else str(m.content) for m in state.values.get("messages", [])]


async def collect(events: AsyncIterator[SSEEvent]) -> list[str]:
    return [str(event) async for event in events]


async def test_a_follower_cut_at_any_event_and_resumed_gets_the_uninterrupted_bytes(endpoint, session_id):
    """For every cut point k of a tool-calling turn: k events, then a resume from the last id seen, joined,
    equal (same ids, same bytes) what a follower attached from the start received."""
    runtime = make_runtime(endpoint)
    k, total = 1, None
    while total is None or k <= total:
        started = runtime.stream({"prompt": TOOL_TURN, "session_id": session_id, "stream_tokens": True,
                                  "on_disconnect": "continue"})
        got = [await started.__anext__()]  # agent_start, with the run's id
        run_id = got[0].data["run_id"]
        whole = asyncio.ensure_future(collect(runtime.stream(
            {"action": "resume", "session_id": session_id, "run_id": run_id})))  # attached from the start
        while len(got) < k:
            got.append(await started.__anext__())
        await started.aclose()  # the client drops
        rest = await collect(runtime.stream({"action": "resume", "session_id": session_id, "run_id": run_id,
                                             "last_event_id": got[-1].id}))
        reference = await whole
        if k == len(reference):  # the client had the terminal event: a resume answers it again, never nothing
            assert rest == reference[-1:]
            rest = []
        assert [str(e) for e in got] + rest == reference, f"cut after {k} events"
        assert SSEEvent  # frames are SSEEvents: str() is their exact bytes
        total = len(reference)
        k += 1
    assert total > 10  # a tool call, its result and streamed tokens: many cut points
    assert (await history(runtime, session_id)).count(TOOL_TURN) == total  # every run was kept whole


async def test_a_finished_run_is_resumed_whole_and_followed_by_ten_at_once(endpoint, session_id):
    runtime = make_runtime(endpoint)
    first = runtime.stream({"prompt": TOOL_TURN, "session_id": session_id, "stream_tokens": True})
    start = await first.__anext__()
    resume = {"action": "resume", "session_id": session_id, "run_id": start.data["run_id"]}
    followers = await asyncio.gather(*(collect(runtime.stream(resume)) for _ in range(10)))
    owner = [str(start)] + await collect(first)
    assert all(f == owner for f in followers) and owner[-1].startswith("event: agent_end")
    assert await collect(runtime.stream(resume)) == owner  # after its end, from its start
    assert await collect(runtime.stream({**resume, "last_event_id": 5})) == owner[5:]
    status = await runtime.ainvoke({"action": "status", "session_id": session_id})
    assert status == {"session_id": session_id, "run_id": start.data["run_id"], "state": "completed",
                      "last_event_id": len(owner)}
    kept = await runtime.ainvoke({"action": "history", "session_id": session_id})
    assert [m["type"] for m in kept["messages"]] == ["human", "ai", "tool", "ai"] and kept["run"] is None


async def test_cancel_rolls_the_run_back_and_the_next_run_starts_at_once(session_id):
    paced = OfflineBedrockEndpoint(token_delay_ms=40).start()
    try:
        runtime = make_runtime(paced)
        await runtime.ainvoke({"prompt": "My name is Zed", "session_id": session_id})
        stream = runtime.stream({"prompt": LONG, "session_id": session_id, "stream_tokens": True})
        frames = [await stream.__anext__() for _ in range(4)]
        loop = asyncio.get_running_loop()
        asked = loop.time()
        answer = await runtime.ainvoke({"action": "cancel", "session_id": session_id})
        rest = [event async for event in stream]
        assert loop.time() - asked < 0.1
        assert answer == {"session_id": session_id, "run_id": frames[0].data["run_id"], "status": "cancelled"}
        assert rest[-1].type == ERROR and rest[-1].data["code"] == "cancelled" and rest[-1].id == frames[-1].id + len(rest)
        assert LONG not in await history(runtime, session_id)  # whole turns only
        started = loop.time()
        reply = await runtime.ainvoke({"prompt": "What's my name?", "session_id": session_id})
        assert reply["output"] == "Your name is Zed." and loop.time() - started < 1.0  # no SESSION_WAIT_S
        with pytest.raises(AgentError) as nothing:
            await runtime.ainvoke({"action": "cancel", "session_id": session_id})
        assert nothing.value.code == "no_active_run" and nothing.value.status == 404
    finally:
        paced.stop()


async def test_a_caller_that_stops_iterating_cancels_its_in_process_run_unless_told_to_continue(session_id):
    paced = OfflineBedrockEndpoint(token_delay_ms=20).start()
    try:
        runtime = make_runtime(paced)
        # (aclosing: a generator left by `break` is otherwise closed whenever the collector finds it)
        async with aclosing(runtime.stream({"prompt": LONG, "session_id": session_id, "stream_tokens": True})) as run:
            async for event in run:
                if event.id == 4:
                    break  # the default in-process: leaving cancels (and rolls back) before the block ends
        assert runtime.runs.find(session_id).state == "cancelled"
        assert LONG not in await history(runtime, session_id)
        async with aclosing(runtime.stream({"prompt": LONG, "session_id": session_id, "stream_tokens": True,
                                            "on_disconnect": "continue"})) as run:
            async for event in run:
                if event.id == 4:
                    break
        run = runtime.runs.find(session_id)
        assert run.state == "running" and await run.settled(10) and run.state == "completed"
        assert LONG in await history(runtime, session_id)
    finally:
        paced.stop()


@pytest.mark.parametrize("strategy", ["enqueue", "reject", "rollback"])
async def test_multitask_strategies_in_process(strategy, session_id):
    paced = OfflineBedrockEndpoint(token_delay_ms=10).start()
    try:
        runtime = make_runtime(paced)
        first = runtime.stream({"prompt": LONG, "session_id": session_id, "stream_tokens": True,
                                "on_disconnect": "continue"})
        await first.__anext__()
        second = {"prompt": "My name is Zed", "session_id": session_id, "multitask_strategy": strategy}
        if strategy == "reject":
            with pytest.raises(AgentError) as refused:
                await runtime.ainvoke(second)
            assert refused.value.code == "session_busy"
        else:
            assert (await runtime.ainvoke(second))["output"].startswith("Nice to meet you, Zed")
        ended = [event async for event in first]
        await runtime.runs.drain()
        humans = [m for m in await history(runtime, session_id) if m in (LONG, "My name is Zed")]
        expected = {"enqueue": ([LONG, "My name is Zed"], AGENT_END), "reject": ([LONG], AGENT_END),
                    "rollback": (["My name is Zed"], ERROR)}[strategy]
        assert (humans, ended[-1].type) == expected
        if strategy == "rollback":
            assert ended[-1].data["code"] == "cancelled"
    finally:
        paced.stop()


async def frames(n: int, size: int = 100) -> AsyncIterator[SSEEvent]:
    seq = EventSequence()
    for i in range(n - 1):
        yield seq.emit("agent_step", {"step": i, "content": "x" * size})
        await asyncio.sleep(0)
    yield seq.emit(AGENT_END, {"output": "done", "steps": n, "metrics": {}})


async def test_the_buffer_is_bounded_and_an_old_resume_is_refused():
    registry = RunRegistry(buffer_bytes=4096, retention_s=60, retain_bytes=1 << 20)
    run = registry.start("run-a", "s", "default-user", frames(200), "continue")
    await run.settled()
    assert sum(len(f) for f in run.frames) <= 4096 and run.first_id > 1 and run.last_id == 200
    kept = [str(f) async for f in run.follow(run.first_id - 1)]
    assert len(kept) == 200 - run.first_id + 1 and kept[-1].startswith("event: agent_end")
    runtime = Runtime(Settings(memory_backend="memory", run_buffer_bytes=4096))
    runtime.runs = registry
    with pytest.raises(AgentError) as gone:
        runtime.resume(runtime.validate({"action": "resume", "session_id": "s", "last_event_id": 3}))
    assert gone.value.code == "resume_unavailable" and gone.value.status == 410


async def test_a_slow_follower_loses_nothing_and_the_buffer_shrinks_once_it_has_read():
    registry = RunRegistry(buffer_bytes=4096, retention_s=60, retain_bytes=1 << 20)
    run = registry.start("run-b", "s", "actor", frames(200), "continue")
    slow = run.follow(0)
    first = await slow.__anext__()
    await run.settled()  # the run went on to its end while this follower held its first frame
    assert run.first_id == 2 and sum(len(f) for f in run.frames) > 4096  # held for the follower
    rest = [f async for f in slow]
    assert [first.id] + [f.id for f in rest] == list(range(1, 201)) and rest[-1].type == AGENT_END
    assert run.followers == 0 and sum(len(f) for f in run.frames) <= 4096  # released when it left


async def test_finished_runs_expire_by_age_and_by_the_bytes_they_keep_together():
    registry = RunRegistry(buffer_bytes=65536, retention_s=60, retain_bytes=1 << 20)
    runs = [await_run for await_run in [registry.start(f"run-{i}", f"s{i}", "actor", frames(3), "continue")
                                        for i in range(3)]]
    for run in runs:
        await run.settled()
    one = runs[0].kept_bytes()
    assert registry.retained == 3 * one and all(registry.find(f"s{i}") for i in range(3))
    registry.retain_bytes = 2 * one  # room for two: the oldest goes
    registry.expire()
    assert registry.find("s0") is None and registry.find("s1") is not None and registry.find("s2") is not None
    assert registry.retained == 2 * one
    assert registry.find("s1", "run-2") is None  # another session's run is not found through this one
    registry.retention_s = 0
    registry.expire()
    assert registry.find("s1") is None and registry.find("s2") is None and registry.retained == 0


@pytest.mark.parametrize("cut", ["timeout", "model error"])
async def test_a_run_nobody_follows_ends_on_its_own_and_leaves_whole_turns(tmp_path, session_id, cut):
    """Exits of a detached run (its client gone, on_disconnect: continue), on a later turn with a tool call, SQLite:
    REQUEST_TIMEOUT_S, or the model failing mid-turn — the run ends with its `error`, the turn is rolled back."""
    from bedrock.offline.endpoint import BreakStream

    paced = OfflineBedrockEndpoint(token_delay_ms=80).start()  # the tool turn's ~14 chunks outlast 0.6 s
    try:
        config = Settings(model_provider="bedrock", memory_path=str(tmp_path / "m.sqlite"), token_buffer_size=1,
                          bedrock_max_attempts=1)
        earlier = build_agent(config, paced.url)  # the first turn, on the same SQLite file, with no deadline
        await earlier.invoke(parse_request({"prompt": "My name is Zed", "session_id": session_id}))
        await earlier.drain()
        earlier.close()
        if cut == "timeout":
            config = Settings(**{**config.__dict__, "request_timeout_s": 0.6})
        runtime = build_app(config, agent=build_agent(config, paced.url)).state.runtime
        if cut == "model error":
            paced.then(BreakStream(after_tokens=3))
        async with aclosing(runtime.stream({"prompt": "What is 25 * 4?", "session_id": session_id,
                                            "stream_tokens": True, "on_disconnect": "continue"})) as events:
            async for event in events:
                if event.id == 3:
                    break  # the client leaves; the run goes on alone
        run = runtime.runs.find(session_id)
        assert await run.settled(10) and run.state == "failed"
        last = [e async for e in runtime.stream({"action": "resume", "session_id": session_id,
                                                 "last_event_id": run.last_id - 1})][-1]
        assert last.data["code"] == ("timeout" if cut == "timeout" else "model_stream_error")
        assert await history(runtime, session_id) == ["My name is Zed", "Nice to meet you, Zed! I'll remember your name."]
    finally:
        paced.stop()
