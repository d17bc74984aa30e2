"""Random interleavings of everything a client can ask, from two actors on a few sessions, with approvals on:
runs (each multitask strategy, read whole or left early), cancels, resumes, status, history and answers to
approvals, many in flight at once. A seeded generator (PROPERTY_STEPS steps, default 2,500; PROPERTY_SEED picks
the interleaving) so a failure replays exactly. After every step and at the end:

- every request is answered (within ANSWER_WITHIN_S), every frame and reply is strict JSON;
- a stream read to its end has exactly one terminal event, last, ids contiguous;
- a session is its first running turn's actor's: the other actor never runs a turn on it, never reads or stops it;
- once all has settled: no run is `running`, every slot is free, and each session's history holds exactly the
  prompts whose runs completed, as whole turns (every tool call answered, or pending as an approval).
"""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.server.app import build_app
from tests.server.races import InProcess, Reply, answered, check_stream
from tests.server.test_races import PLAIN, TOOL, whole_turns

pytestmark = pytest.mark.slow  # (pyproject.toml: `make test-quick` leaves it out)

STEPS = int(os.environ.get("PROPERTY_STEPS", "2500"))
SEED = int(os.environ.get("PROPERTY_SEED", "20261202"))
IN_FLIGHT = 6
ACTORS = ("alice", "bob")


class Model:
    """What the test knows: each session's owner (once a turn of it ran), and every run it saw start."""

    def __init__(self) -> None:
        self.owner: dict[str, str] = {}
        self.prompt_runs: dict[str, set[str]] = {}  # session → ids of runs that sent a prompt
        self.runs: dict[str, set[str]] = {}  # session → every run id seen

    def saw(self, session: str, actor: str, reply: Reply, prompt: bool) -> None:
        if reply.status != 200 or not reply.run_id:
            return
        owner = self.owner.setdefault(session, actor)
        assert owner == actor, f"{actor} ran a turn on {owner}'s session {session}"
        self.runs.setdefault(session, set()).add(reply.run_id)
        if prompt:
            self.prompt_runs.setdefault(session, set()).add(reply.run_id)

    def refused_if_not_owner(self, session: str, actor: str, reply: Reply) -> None:
        owner = self.owner.get(session)
        if owner is not None and owner != actor:
            refused = reply.status == 403 or (reply.status == 200 and reply.terminal
                                               and reply.terminal[0][1].get("code") == "session_forbidden")
            assert refused, (actor, session, reply)


async def step(client: InProcess, model: Model, rng: random.Random, sessions: list[str]) -> None:
    session, actor = rng.choice(sessions), rng.choice(ACTORS)
    op = rng.choices(["run", "cancel", "resume", "status", "history", "answer"], [6, 2, 2, 1, 1, 2])[0]
    base = {"session_id": session, "actor_id": actor}
    if op == "run":
        strategy = rng.choice(("enqueue", "enqueue", "reject", "rollback"))
        read = rng.choice((None, None, rng.randint(1, 6)))
        reply = (await answered(client.run({**base, "prompt": rng.choice((PLAIN, TOOL, TOOL)),
                                            "multitask_strategy": strategy, "stream_tokens": rng.random() < 0.5},
                                           read=read)))[0]
        check_stream(reply, whole=read is None)
        model.refused_if_not_owner(session, actor, reply)
        model.saw(session, actor, reply, prompt=True)
        return
    if op == "answer":
        history = (await answered(client.action({**base, "action": "history"})))[0]
        pending = history.body["pending"] if history.status == 200 else []
        interrupt = pending[0]["interrupt_id"] if pending and rng.random() < 0.8 else "approval-" + "0" * 24
        reply = (await answered(client.run({**base, "resume": {"interrupt_id": interrupt,
                                                               "approved": rng.random() < 0.7}})))[0]
        check_stream(reply)
        model.refused_if_not_owner(session, actor, reply)
        model.saw(session, actor, reply, prompt=False)
        return
    payload = {**base, "action": op}
    known = sorted(model.runs.get(session, ()))
    if op in ("resume", "status") and known and rng.random() < 0.7:
        payload["run_id"] = rng.choice(known)
    reply = (await answered(client.action(payload)))[0]
    assert reply.status in (200, 403, 404, 409, 410), reply
    if op == "resume":
        check_stream(reply)
    model.refused_if_not_owner(session, actor, reply)


async def settled(client: InProcess, model: Model, sessions: list[str]) -> None:
    runtime = client.runtime
    await runtime.runs.drain(30)
    await runtime.get_agent().drain(30)
    assert not runtime.runs.running() and client.slots_free()
    for session in sessions:
        owner = model.owner.get(session)
        if owner is None:
            continue
        completed = 0
        for run_id in model.runs.get(session, ()):
            status = await client.action({"action": "status", "session_id": session, "actor_id": owner,
                                          "run_id": run_id})
            if status.status == 404:  # expired from the registry (RUN_RETAIN_BYTES): not counted
                continue
            assert status.body["state"] != "running", status.body
            completed += status.body["state"] == "completed" and run_id in model.prompt_runs.get(session, ())
        history = (await client.action({"action": "history", "session_id": session, "actor_id": owner})).body
        humans = [m for m in history["messages"] if m["type"] == "human"]
        assert len(humans) == completed, (session, completed, history["messages"])
        pending = frozenset(p["tool_call_id"] for p in history["pending"])  # approvals waited for: unanswered
        assert history["run"] is None and whole_turns(history["messages"], pending), history


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_random_interleavings_keep_every_invariant(backend, tmp_path):
    settings = Settings(memory_backend=backend, memory_path=str(tmp_path / "m.sqlite"), max_concurrent_invocations=4,
                        session_wait_s=2, approval_required_tools=("calculator",))
    runtime = build_app(settings, agent=build_agent(settings)).state.runtime
    client, model = InProcess(runtime), Model()
    rng = random.Random(SEED + (backend == "sqlite"))
    sessions = [f"prop-{backend}-{i}" for i in range(3)]
    in_flight: set[asyncio.Task[None]] = set()
    try:
        for _ in range(STEPS):
            in_flight.add(asyncio.ensure_future(step(client, model, random.Random(rng.random()), sessions)))
            if len(in_flight) >= IN_FLIGHT or rng.random() < 0.2:
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
        for task in await asyncio.gather(*in_flight, return_exceptions=True):
            if isinstance(task, BaseException):
                raise task
        await settled(client, model, sessions)
    finally:
        for task in in_flight:
            task.cancel()
        await runtime.runs.drain(10)
        runtime.get_agent().close()
