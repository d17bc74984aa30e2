"""A turn is atomic: cut anywhere (cancel, close, caller's timeout, deadline, model error), the session's
memory is exactly what it was before the turn, and the next turn runs on it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from contextlib import aclosing
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from bedrock.core.turn import Agent
from bedrock.core.build import build_agent
from bedrock.config import Settings
from bedrock.offline.rules import Reply
from bedrock.offline.endpoint import HttpError, OfflineBedrockEndpoint
from bedrock.wire.request import parse_request
from bedrock.core.rollback import TURN_KEY

TOOL_TURN = "What is 25 * 4?"  # human, ai (tool call), tool, ai
PLAIN_TURN = "My name is Zed"  # human, ai
ACTOR = "alice"
# A sweep from "before the first suspension" to "after the whole turn" (an unpaced tool turn takes ~10 ms).
TIMEOUTS = [1e-6, 1e-4, 3e-4, 6e-4, 1e-3, 1.5e-3, 2e-3, 3e-3, 4e-3, 5e-3, 7e-3, 1e-2, 1.5e-2, 2e-2, 3e-2]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[OfflineBedrockEndpoint]:
    ep = OfflineBedrockEndpoint(token_delay_ms=0.5).start()
    yield ep
    ep.stop()


BACKENDS = ["sqlite", "memory", "postgres"]  # every backend a server can share or keep (AgentCore Memory: moto, below)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    """The memory settings of a backend (PostgreSQL: a new database of this process's throwaway cluster)."""
    if request.param == "postgres":
        return {"memory_backend": "postgres", "database_url": request.getfixturevalue("postgres_url")}
    return {"memory_backend": request.param}


_AGENTS: list[Agent] = []


@pytest.fixture(autouse=True)
def close_agents() -> Any:
    """Each test's agents closed after it (their database connections with them)."""
    yield
    while _AGENTS:
        _AGENTS.pop().close()


def make_agent(endpoint: OfflineBedrockEndpoint, backend: dict[str, str] | str, tmp_path: Any,
               **settings: Any) -> Agent:
    memory = backend if isinstance(backend, dict) else {"memory_backend": backend}
    config = Settings(model_provider="bedrock", memory_path=str(tmp_path / "m.sqlite"), token_buffer_size=1,
                      **memory, **settings)
    agent = build_agent(config, endpoint.url)
    _AGENTS.append(agent)
    return agent


def request(prompt: str, session_id: str, **extra: Any) -> Any:
    return parse_request({"prompt": prompt, "session_id": session_id, "actor_id": ACTOR, "stream_tokens": True, **extra})


async def stored(agent: Agent, session_id: str) -> list[tuple[Any, ...]]:
    state = await agent.graph.aget_state({"configurable": {"thread_id": session_id, "actor_id": ACTOR}})
    return [(m.type, m.content, m.id, str(getattr(m, "tool_calls", ""))) for m in state.values.get("messages", [])]


async def events_of(agent: Agent, prompt: str, session_id: str) -> list[Any]:
    return [e async for e in agent.stream(request(prompt, session_id))]


async def prepare(agent: Agent, session_id: str, later: bool) -> list[tuple[Any, ...]]:
    """The session before the turn under test: empty (a first turn) or one whole turn."""
    if later:
        assert (await events_of(agent, "My name is Alice", session_id))[-1].type == "agent_end"
    return await stored(agent, session_id)


async def check_after(agent: Agent, session_id: str, before: list[tuple[Any, ...]], completed: bool, later: bool,
                      turn_length: int) -> None:
    """Memory holds the pre-turn history (or it plus the whole turn), and the next turn runs on it."""
    after = await stored(agent, session_id)
    if completed:
        assert after[: len(before)] == before and len(after) == len(before) + turn_length
    else:
        assert after == before
    nxt = await events_of(agent, "What's my name?", session_id)
    assert nxt[-1].type == "agent_end", nxt[-1].data
    # The name the session knows: Zed if the "My name is Zed" turn was kept, else Alice if set before.
    kept_zed = completed and turn_length == 2
    name = "Zed" if kept_zed else "Alice" if later else None
    if name:
        assert nxt[-1].data["output"] == f"Your name is {name}."
    else:
        assert nxt[-1].data["output"].startswith("I don't know")


def no_rollback_failures(caplog: pytest.LogCaptureFixture) -> None:
    """No ERROR from our code, other than a model failure the test itself scripted ("turn failed ...")."""
    bad = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("bedrock")
           and not r.getMessage().startswith("turn failed for session")]
    assert bad == []


TURNS = [(TOOL_TURN, 4), (PLAIN_TURN, 2)]


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("later", [False, True], ids=["first-turn", "later-turn"])
@pytest.mark.parametrize("prompt,turn_length", TURNS, ids=["tool", "plain"])
async def test_cut_at_every_event_leaves_the_pre_turn_history(endpoint, tmp_path, caplog, backend, later, prompt,
                                                               turn_length):
    agent = make_agent(endpoint, backend, tmp_path)
    whole = await events_of(agent, prompt, "probe")  # how many events a whole turn has
    assert whole[-1].type == "agent_end"
    for index in range(len(whole)):
        for how in ("cancel", "close"):
            session_id = f"s-{index}-{how}"
            before = await prepare(agent, session_id, later)
            reached = asyncio.Event()
            seen: list[str] = []

            async def consume() -> None:
                async with aclosing(agent.stream(request(prompt, session_id))) as events:
                    async for event in events:
                        seen.append(event.type)
                        if len(seen) - 1 == index:
                            if how == "close":
                                return  # aclosing closes the stream here, as a client that stops reading
                            reached.set()
                            await asyncio.Future()  # parked on this event until cancelled

            consumer = asyncio.ensure_future(consume())
            if how == "cancel":
                waiter = asyncio.ensure_future(reached.wait())
                await asyncio.wait((consumer, waiter), return_when=asyncio.FIRST_COMPLETED)
                consumer.cancel()
                waiter.cancel()
            try:
                await consumer
            except asyncio.CancelledError:
                pass
            completed = "agent_end" in seen
            await check_after(agent, session_id, before, completed, later, turn_length)
    no_rollback_failures(caplog)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("durability", ["exit", "async", "sync"])
@pytest.mark.parametrize("later", [False, True], ids=["first-turn", "later-turn"])
@pytest.mark.parametrize("prompt,turn_length", TURNS, ids=["tool", "plain"])
async def test_callers_timeout_at_any_moment_leaves_the_pre_turn_history(endpoint, tmp_path, caplog, backend,
                                                                         durability, later, prompt, turn_length):
    agent = make_agent(endpoint, backend, tmp_path, checkpoint_durability=durability)
    cut = 0
    for i, timeout in enumerate(TIMEOUTS):
        session_id = f"t-{i}"
        before = await prepare(agent, session_id, later)
        seen: list[str] = []
        try:
            async with asyncio.timeout(timeout):
                async for event in agent.stream(request(prompt, session_id)):
                    seen.append(event.type)
        except TimeoutError:
            cut += 1
        completed = "agent_end" in seen
        await check_after(agent, session_id, before, completed, later, turn_length)
    assert cut >= len(TIMEOUTS) // 2  # the sweep really lands inside turns
    no_rollback_failures(caplog)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("later", [False, True], ids=["first-turn", "later-turn"])
@pytest.mark.parametrize("prompt,turn_length", TURNS, ids=["tool", "plain"])
async def test_request_timeout_at_any_moment_ends_in_an_error_and_leaves_the_pre_turn_history(
    endpoint, tmp_path, caplog, backend, later, prompt, turn_length
):
    agent = make_agent(endpoint, backend, tmp_path)
    patient = agent.settings
    cut = 0
    for i, timeout in enumerate(TIMEOUTS[1:]):
        session_id = f"d-{i}"
        before = await prepare(agent, session_id, later)
        agent.settings = replace(patient, request_timeout_s=timeout)  # REQUEST_TIMEOUT_S for this turn only
        events = await events_of(agent, prompt, session_id)
        agent.settings = patient
        completed = events[-1].type == "agent_end"
        if not completed:
            cut += 1
            assert events[-1].type == "error" and events[-1].data["code"] == "timeout"
        await check_after(agent, session_id, before, completed, later, turn_length)
    assert cut >= len(TIMEOUTS) // 3
    no_rollback_failures(caplog)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("later", [False, True], ids=["first-turn", "later-turn"])
@pytest.mark.parametrize("failure", ["first-call", "after-tool"])
async def test_a_model_error_leaves_the_pre_turn_history(tmp_path, caplog, backend, later, failure):
    endpoint = OfflineBedrockEndpoint().start()
    try:
        agent = make_agent(endpoint, backend, tmp_path, bedrock_max_attempts=1, bedrock_retry_mode="standard")
        before = await prepare(agent, "m", later)
        call = Reply("Let me compute.", {"id": "tooluse_1", "name": "calculator", "args": {"expression": "7 * 6"}}, 1, 1)
        script = [HttpError(400, "ValidationException")] if failure == "first-call" else [call, HttpError(500, "InternalServerException")]
        endpoint.then(*script)
        events = await events_of(agent, "What is 7 * 6?", "m")
        assert events[-1].type == "error" and events[-1].data["code"] in ("model_validation_error", "model_unavailable")
        assert caplog.records  # the failure itself is logged ("turn failed") …
        caplog.clear()
        await check_after(agent, "m", before, False, later, 4)
        no_rollback_failures(caplog)  # … but nothing about the rollback
    finally:
        endpoint.stop()


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("later", [False, True], ids=["first-turn", "later-turn"])
@pytest.mark.parametrize("prompt,turn_length", TURNS, ids=["tool", "plain"])
async def test_shutdown_grace_running_out_at_any_event_leaves_the_pre_turn_history(
    endpoint, tmp_path, caplog, backend, later, prompt, turn_length
):
    """SIGTERM's path inside a turn: the server sets `shutdown`; SHUTDOWN_GRACE_S (here 0) later the turn ends
    with `server_shutting_down`. Set at every event index of a whole turn."""
    agent = make_agent(endpoint, backend, tmp_path, shutdown_grace_s=0)
    whole = await events_of(agent, prompt, "probe")
    cut = 0
    for index in range(len(whole)):
        session_id = f"g-{index}"
        before = await prepare(agent, session_id, later)
        shutdown = asyncio.Event()
        events = []
        async for event in agent.stream(request(prompt, session_id), shutdown=shutdown):
            events.append(event)
            if len(events) - 1 == index:
                shutdown.set()
        completed = events[-1].type == "agent_end"
        if not completed:
            cut += 1
            assert events[-1].data["code"] == "server_shutting_down"
        await check_after(agent, session_id, before, completed, later, turn_length)
    assert cut >= len(whole) - 2  # set while waiting for the last event or later, the turn may still end whole
    no_rollback_failures(caplog)


async def test_rolled_back_checkpoints_are_marked_and_pruned(endpoint, tmp_path):
    agent = make_agent(endpoint, "sqlite", tmp_path, checkpoint_durability="sync")
    await prepare(agent, "p", later=True)
    # Cut once the tool has run (its checkpoints are written: durability sync), at an event, not after a time
    # (a 4 ms timeout could land after the turn had completed on a loaded machine, and rightly kept it).
    async with aclosing(agent.stream(request(TOOL_TURN, "p"))) as events:
        async for event in events:
            if event.type == "agent_step" and event.data["type"] == "tool":
                break
    config = {"configurable": {"thread_id": "p", "actor_id": ACTOR}}
    kept = [c async for c in agent.graph.checkpointer.alist(config)]
    assert len(kept) == 1  # SQLite keeps the latest only, also after a rollback
    assert kept[0].metadata.get(TURN_KEY) is None  # the restored pre-turn state, not the cut turn's


def test_agentcore_memory_under_moto_rolls_back_at_a_few_cut_points(monkeypatch, caplog):
    from bedrock.store.agentcore import AgentCoreStore

    with mock_aws():
        control = boto3.client("bedrock-agentcore-control", region_name="us-east-1")
        memory_id = control.create_memory(name="agent_memory", eventExpiryDuration=30)["memory"]["id"]
        boto3.setup_default_session()
        endpoint = OfflineBedrockEndpoint(token_delay_ms=0.5).start()
        try:
            agent = build_agent(Settings(model_provider="bedrock", memory_backend="agentcore",
                                         agentcore_memory_id=memory_id, token_buffer_size=1,
                                         long_term_memory=False),  # moto has no memory records: see test_memory_agentcore.py
                                endpoint.url)
            assert isinstance(agent.store, AgentCoreStore)  # not SQLite, which an unusable memory falls back to

            async def cuts() -> None:
                for later in (False, True):
                    for prompt, turn_length in TURNS:
                        for index in (2, 5, 8):  # a client that goes away after event `index`
                            session_id = f"ac-{int(later)}-{turn_length}-{index}"
                            before = await prepare(agent, session_id, later)
                            seen: list[str] = []
                            async with aclosing(agent.stream(request(prompt, session_id))) as events:
                                async for event in events:
                                    seen.append(event.type)
                                    if len(seen) > index:
                                        break
                            await check_after(agent, session_id, before, "agent_end" in seen, later, turn_length)
                        for timeout in (1e-3, 5e-3, 2e-2):  # the caller's own timeout
                            session_id = f"act-{int(later)}-{turn_length}-{int(timeout * 1e6)}"
                            before = await prepare(agent, session_id, later)
                            seen = []
                            try:
                                async with asyncio.timeout(timeout):
                                    async for event in agent.stream(request(prompt, session_id)):
                                        seen.append(event.type)
                            except TimeoutError:
                                pass
                            await check_after(agent, session_id, before, "agent_end" in seen, later, turn_length)
                        session_id = f"acs-{int(later)}-{turn_length}"  # the shutdown grace runs out mid-turn
                        before = await prepare(agent, session_id, later)
                        shutdown = asyncio.Event()
                        agent.settings = replace(agent.settings, shutdown_grace_s=0)
                        async for event in agent.stream(request(prompt, session_id), shutdown=shutdown):
                            if event.type == "agent_step":
                                shutdown.set()
                        agent.settings = replace(agent.settings, shutdown_grace_s=10)
                        assert event.type == "error" and event.data["code"] == "server_shutting_down"
                        await check_after(agent, session_id, before, False, later, turn_length)
                    session_id = f"acm-{int(later)}"  # a model error after the tool ran
                    before = await prepare(agent, session_id, later)
                    call = Reply("Let me compute.", {"id": "tooluse_1", "name": "calculator",
                                                     "args": {"expression": "7 * 6"}}, 1, 1)
                    endpoint.then(call, HttpError(400, "ValidationException"))
                    events = await events_of(agent, "What is 7 * 6?", session_id)
                    assert events[-1].data["code"] == "model_validation_error"
                    await check_after(agent, session_id, before, False, later, 4)

            asyncio.run(cuts())
        finally:
            endpoint.stop()
    no_rollback_failures(caplog)


async def test_a_timeout_of_a_microsecond_always_raises(endpoint, tmp_path):
    """The guide's Handle Timeout: the caller's `asyncio.timeout` is never swallowed, wherever it lands."""
    agent = make_agent(endpoint, "memory", tmp_path)
    for i in range(100):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1e-6):
                async for _ in agent.stream(request(TOOL_TURN, f"u-{i % 3}")):
                    pass
    assert await stored(agent, "u-0") == []


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_a_cancel_while_a_turn_reads_its_session_gives_the_session_back(endpoint, tmp_path, backend, session_id):
    """With approvals (or durability sync/async) a turn reads the session's state under its lock before the graph
    runs: a caller's timeout landing there must free the session, not leave it locked until SESSION_WAIT_S."""
    agent = make_agent(endpoint, backend, tmp_path, approval_required_tools=("calculator",), session_wait_s=2,
                       checkpoint_durability="sync")
    for timeout in TIMEOUTS[:8]:
        try:
            async with asyncio.timeout(timeout):
                async with aclosing(agent.stream(request(TOOL_TURN, session_id))) as events:
                    async for _ in events:
                        pass
        except TimeoutError:
            pass
        after = await events_of(agent, "My name is Zed", session_id)
        assert after[-1].type == "agent_end", (timeout, after[-1].data)


@pytest.mark.parametrize("backend", ["sqlite", "memory", "postgres"], indirect=True)
@pytest.mark.parametrize("first", [True, False], ids=["first turn", "later turn"])
async def test_reads_show_whole_turns_when_a_process_died_mid_turn(endpoint, tmp_path, backend, first, session_id):
    """With CHECKPOINT_DURABILITY=sync a turn is written step by step; a process killed mid-turn leaves its first
    steps stored (a lone human message, a dangling tool call) until the session's next turn rolls them back.
    `history` (and the pending approvals) read past them, writing nothing."""
    from langchain_core.messages import HumanMessage

    agent = make_agent(endpoint, backend, tmp_path, checkpoint_durability="sync")
    if not first:
        await events_of(agent, PLAIN_TURN, session_id)
        await agent.drain()  # its prune has run (as it would have before a next turn took the session)
    before = await agent.history(session_id, ACTOR)
    # The turn as the agent runs it, stopped after its model call as a SIGKILL would stop it: no rollback.
    config = agent.run_config(request(TOOL_TURN, session_id), [], "run-killed")
    async for _ in agent.graph.astream({"messages": [HumanMessage(TOOL_TURN, id="run-killed")]}, config,
                                       stream_mode="updates", durability="sync"):
        break
    raw = await agent.graph.aget_state(config)
    assert raw.next == ("tools",) and raw.metadata[TURN_KEY] == "run-killed"  # the cut turn is stored
    saver = agent.graph.checkpointer
    count = len([c async for c in saver.alist({"configurable": {"thread_id": session_id, "checkpoint_ns": ""}})])
    assert await agent.history(session_id, ACTOR) == before
    assert await agent.pending_approvals(session_id, ACTOR) == []
    after = len([c async for c in saver.alist({"configurable": {"thread_id": session_id, "checkpoint_ns": ""}})])
    assert after == count  # read, not written
    events = await events_of(agent, "What's my name?", session_id)  # the next turn rolls it back and runs
    assert events[-1].type == "agent_end"
    kinds = [m["type"] for m in (await agent.history(session_id, ACTOR))["messages"]]
    assert kinds == ([] if first else ["human", "ai"]) + ["human", "ai"]


# A user's StateGraph (a subgraph writing progress, a question by interrupt(), a model call, a non-message field):
# its two turns — the one that asks, the one that answers — cut at every event, on the backends a server shares.
USER_GRAPH = Path(__file__).resolve().parent.parent / "graphs" / "progress.py"


def user_agent(backend: dict[str, str], tmp_path: Any) -> Agent:
    from bedrock.core.loader import GraphSource

    config = Settings(memory_path=str(tmp_path / "m.sqlite"), token_buffer_size=1, **backend)
    agent = build_agent(config, source=GraphSource(f"{USER_GRAPH}:graph", USER_GRAPH.parent))
    _AGENTS.append(agent)
    return agent


async def user_state(agent: Agent, session_id: str) -> tuple[Any, ...]:
    """What a session keeps: its messages (as the rollback suite compares them), its other values, and what it
    waits on (an interrupt's value and node; its id is LangGraph's, new when asked again)."""
    state = await agent.graph.aget_state({"configurable": {"thread_id": session_id, "actor_id": ACTOR}})
    values = dict(state.values)
    messages = [(m.type, m.content, m.id) for m in values.pop("messages", [])]
    pending = sorted((str(p["value"]), p["node"]) for p in await agent.pending_approvals(session_id, ACTOR))
    return messages, values, pending


def user_turn(session_id: str, question: dict[str, Any] | None) -> Any:
    answer = {"resume": {"interrupt_id": question["interrupt_id"], "value": "Paris"}} if question else {
        "prompt": "Plan my trip"}
    return parse_request({"session_id": session_id, "actor_id": ACTOR, "stream_tokens": True, **answer})


async def asked(agent: Agent, session_id: str) -> dict[str, Any]:
    events = [e async for e in agent.stream(user_turn(session_id, None))]
    return next(e.data for e in events if e.type == "interrupt")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
@pytest.mark.parametrize("answering", [False, True], ids=["asking-turn", "answering-turn"])
async def test_a_user_graph_cut_at_every_event_leaves_the_pre_turn_state(tmp_path, caplog, backend, answering):
    agent = user_agent(backend, tmp_path)
    probe_question = await asked(agent, "probe") if answering else None
    whole = [e async for e in agent.stream(user_turn("probe" if answering else "probe-2", probe_question))]
    assert whole[-1].type == "agent_end" and len(whole) >= 8
    for index in range(len(whole) - 1):  # the last event is agent_end: past it, the turn is kept
        session_id = f"u-{index}"
        question = await asked(agent, session_id) if answering else None
        before = await user_state(agent, session_id)
        async with aclosing(agent.stream(user_turn(session_id, question))) as events:
            seen = 0
            async for _ in events:
                if seen == index:
                    break  # the client leaves here: the stream is closed, the turn cut
                seen += 1
        await agent.drain()
        assert await user_state(agent, session_id) == before, f"cut after event {index}"
        # And the session goes on: the question (asked again if it was being answered) takes its answer.
        pending = (await agent.history(session_id, ACTOR))["pending"]
        follow = pending[0] if pending else await asked(agent, session_id)
        done = [e async for e in agent.stream(user_turn(session_id, follow))]
        assert done[-1].data["output"] == "City is Paris", done[-1].data
    no_rollback_failures(caplog)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_a_user_graph_s_answer_cut_by_the_caller_s_timeout_leaves_the_pre_turn_state(tmp_path, caplog,
                                                                                          backend):
    agent = user_agent(backend, tmp_path)
    cut = 0
    for i, timeout in enumerate([1e-4, 1e-3, 3e-3, 6e-3, 1e-2, 2e-2, 4e-2, 8e-2, 0.2]):
        session_id = f"t-{i}"
        question = await asked(agent, session_id)
        before = await user_state(agent, session_id)
        seen: list[str] = []
        try:
            async with asyncio.timeout(timeout):
                async for event in agent.stream(user_turn(session_id, question)):
                    seen.append(event.type)
        except TimeoutError:
            cut += 1
        await agent.drain()
        if "agent_end" not in seen:
            assert await user_state(agent, session_id) == before, f"timeout {timeout}"
    assert cut >= 3  # the sweep lands inside turns
    no_rollback_failures(caplog)
