"""Any LangGraph graph, as its author wrote it: its nodes' names, its tokens, its writer's values, its questions —
and everything the runtime does around a turn (memory, rollback, restarts) the same as for the built-in agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.core.loader import GraphSource
from bedrock.core.turn import Agent
from bedrock.errors import AgentError, PayloadError
from bedrock.wire.request import parse_request

GRAPHS = Path(__file__).resolve().parent.parent / "graphs"
_AGENTS: list[Agent] = []


@pytest.fixture(autouse=True)
def close_agents() -> Any:
    yield
    while _AGENTS:
        _AGENTS.pop().close()


def agent_for(spec: str, tmp_path: Path, **settings: Any) -> Agent:
    config = Settings(memory_backend=settings.pop("memory_backend", "sqlite"), memory_path=str(tmp_path / "m.sqlite"),
                      token_buffer_size=1, **settings)
    agent = build_agent(config, source=GraphSource(f"{GRAPHS / spec}", GRAPHS))
    _AGENTS.append(agent)
    return agent


async def turn(agent: Agent, session_id: str, **payload: Any) -> list[Any]:
    request = parse_request({"session_id": session_id, "stream_tokens": True, **payload})
    agent.inputs.check(request)
    return [event async for event in agent.stream(request)]


def of(events: list[Any], kind: str) -> list[dict[str, Any]]:
    return [event.data for event in events if event.type == kind]


def strict(events: list[Any]) -> None:
    """Every frame is strict JSON (what a browser's JSON.parse reads)."""
    for event in events:
        data = str(event).split("\ndata: ", 1)[1].split("\n", 1)[0]
        json.loads(data, parse_constant=lambda name: pytest.fail(f"{name} in {data}"))


async def test_a_string_question_is_answered_with_exactly_the_value(tmp_path, session_id):
    agent = agent_for("interrupts.py:string", tmp_path)
    asked = await turn(agent, session_id, prompt="hi")
    [question] = of(asked, "interrupt")
    assert question["value"] == "Which city?" and question["node"] == "ask" and question["namespace"] == []
    assert asked[-1].data["status"] == "interrupted" and asked[-1].data["interrupts"] == [question]
    answered = await turn(agent, session_id, resume={"interrupt_id": question["interrupt_id"],
                                                     "value": {"name": "Paris", "n": [1, None]}},
                          include_state=True)
    assert answered[-1].data["status"] == "completed"
    assert answered[-1].data["state"]["answers"] == [{"name": "Paris", "n": [1, None]}]
    assert (await agent.history(session_id, "default-user"))["pending"] == []
    strict(asked + answered)


async def test_a_dict_question_keeps_its_value(tmp_path, session_id):
    agent = agent_for("interrupts.py:mapping", tmp_path)
    [question] = of(await turn(agent, session_id, prompt="hi"), "interrupt")
    assert question["value"] == {"question": "How many?", "choices": [1, 2, 3]}
    history = await agent.history(session_id, "default-user")
    assert history["pending"] == [{k: v for k, v in question.items() if k != "run_id"}]
    done = await turn(agent, session_id, resume={"interrupt_id": question["interrupt_id"], "value": 2},
                      include_state=True)
    assert done[-1].data["state"]["answers"] == [2]


async def test_two_questions_at_once_are_two_events_answered_together(tmp_path, session_id):
    agent = agent_for("interrupts.py:both", tmp_path)
    asked = await turn(agent, session_id, prompt="hi")
    questions = {q["value"]: q for q in of(asked, "interrupt")}
    assert set(questions) == {"First?", "Second?"}
    assert {q["node"] for q in questions.values()} == {"first", "second"}
    with pytest.raises(AgentError) as one_wrong:
        await agent.answers_for(session_id, "default-user", {"approval-nope": 1})
    assert one_wrong.value.code == "interrupt_mismatch"
    done = await turn(agent, session_id, include_state=True, resume={"values": {
        questions["First?"]["interrupt_id"]: "one", questions["Second?"]["interrupt_id"]: "two"}})
    assert sorted(map(tuple, done[-1].data["state"]["answers"])) == [("first", "one"), ("second", "two")]


async def test_stale_ids_and_prompts_while_a_question_waits_are_refused(tmp_path, session_id):
    agent = agent_for("interrupts.py:string", tmp_path)
    with pytest.raises(AgentError) as nothing:
        await agent.answers_for(session_id, "default-user", {"abc": 1})
    assert (nothing.value.code, nothing.value.status) == ("nothing_to_resume", 409)
    [question] = of(await turn(agent, session_id, prompt="hi"), "interrupt")
    with pytest.raises(AgentError) as stale:
        await agent.answers_for(session_id, "default-user", {"0" * 32: "Paris"})
    assert (stale.value.code, stale.value.status) == ("interrupt_mismatch", 409)
    refused = await turn(agent, session_id, prompt="never mind")
    assert refused[-1].type == "error" and refused[-1].data["code"] == "interrupt_pending"
    await turn(agent, session_id, resume={"interrupt_id": question["interrupt_id"], "value": "Oslo"})
    with pytest.raises(AgentError) as answered:  # answered already: the id is stale now
        await agent.answers_for(session_id, "default-user", {question["interrupt_id"]: "again"})
    assert answered.value.code == "nothing_to_resume"


async def test_a_question_pending_across_a_restart_is_answered_after_it(tmp_path, session_id):
    first = agent_for("interrupts.py:string", tmp_path)
    [question] = of(await turn(first, session_id, prompt="hi"), "interrupt")
    first.close()
    _AGENTS.remove(first)
    second = agent_for("interrupts.py:string", tmp_path)
    assert [p["interrupt_id"] for p in (await second.history(session_id, "default-user"))["pending"]] == [
        question["interrupt_id"]]
    done = await turn(second, session_id, resume={"interrupt_id": question["interrupt_id"], "value": "Rome"},
                      include_state=True)
    assert done[-1].data["state"]["answers"] == ["Rome"]


async def test_a_stategraph_s_progress_tokens_question_and_answer(tmp_path, session_id):
    agent = agent_for("progress.py:graph", tmp_path)
    asked = await turn(agent, session_id, prompt="Plan my trip")
    assert [c["value"] for c in of(asked, "custom")] == [{"progress": 10}, {"progress": 60}, {"progress": 100}]
    assert {(c["node"], tuple(c["namespace"])) for c in of(asked, "custom")} == {("dig", ("research",))}
    updates = [s for s in of(asked, "agent_step") if s["type"] == "update"]
    assert {"node": "dig", "namespace": ["research"], "values": {"progress": 100}}.items() <= updates[0].items()
    humans = [s for s in of(asked, "agent_step") if s["type"] == "human"]
    assert len(humans) == 1, "the subgraph's output repeats the turn's message: shown once"
    [question] = of(asked, "interrupt")
    done = await turn(agent, session_id, resume={"interrupt_id": question["interrupt_id"], "value": "Paris"})
    tokens = of(done, "llm_token")
    assert len(tokens) >= 5 and {t["node"] for t in tokens} == {"answer"}
    assert done.index(next(e for e in done if e.type == "llm_token")) < len(done) - 1
    assert done[-1].data["output"] == "City is Paris"
    history = await agent.history(session_id, "default-user")
    assert [(m["node"], m["type"]) for m in history["messages"]] == [("input", "human"), ("answer", "ai"),
                                                                      ("answer", "ai")]
    strict(asked + done)


async def test_a_create_agent_with_human_in_the_loop_approves_edits_and_rejects(tmp_path):
    import sys

    agent = agent_for("hitl.py:graph", tmp_path)
    refunds = sys.modules["agent_graph_hitl"].REFUNDS  # the module the loader imported
    looked = await turn(agent, "s-lookup", prompt='lookup_order({"order_id": "A1"})')
    assert looked[-1].data["status"] == "completed" and "2 books, shipped" in looked[-1].data["output"]
    assert [s["node"] for s in of(looked, "agent_step")][1:] == ["model", "tools", "model"]
    assert len(of(looked, "llm_token")) >= 5
    for decision, expected in [({"type": "approve"}, ("A1", 5.0)),
                               ({"type": "edit", "edited_action": {"name": "refund",
                                                                   "args": {"order_id": "A1", "amount": 2.5}}},
                                ("A1", 2.5)),
                               ({"type": "reject", "message": "not today"}, None)]:
        session_id = f"s-{decision['type']}"
        asked = await turn(agent, session_id, prompt='refund({"order_id": "A1", "amount": 5})')
        [question] = of(asked, "interrupt")
        assert question["value"]["action_requests"][0]["name"] == "refund"
        before = list(refunds)
        done = await turn(agent, session_id, resume={"interrupt_id": question["interrupt_id"],
                                                     "value": {"decisions": [decision]}})
        assert done[-1].data["status"] == "completed", done[-1].data
        assert refunds == before + ([expected] if expected else [])
    history = await agent.history("s-approve", "default-user")
    assert {m["node"] for m in history["messages"]} == {"input", "model", "tools"}


async def test_memory_across_turns_of_a_user_graph(tmp_path, session_id):
    agent = agent_for("hitl.py:graph", tmp_path)
    await turn(agent, session_id, prompt="My name is Ada")
    again = await turn(agent, session_id, prompt="What's my name?")
    assert again[-1].data["output"] == "Your name is Ada."


async def test_values_json_cannot_hold_become_typed_placeholders_within_the_bound(tmp_path, session_id):
    (tmp_path / "odd.py").write_text(
        "import datetime\n"
        "from langgraph.graph import START, StateGraph\n"
        "from typing import Any, TypedDict\n"  # typing's TypedDict, which pydantic cannot read on 3.11: still served
        "class S(TypedDict, total=False):\n    blob: Any\n    tags: Any\n    ratio: float\n    when: Any\n"
        "    big: Any\n"
        "def odd(state: S):\n"
        "    return {'blob': b'\\x00\\x01', 'tags': {'a'}, 'ratio': float('nan'),\n"
        "            'when': datetime.datetime(2026, 1, 2, 3, 4, 5)}\n"
        "def big(state: S):\n    return {'big': 'x' * 5000}\n"
        "b = StateGraph(S)\nb.add_node('odd', odd)\nb.add_node('big', big)\nb.add_edge(START, 'odd')\n"
        "b.add_edge('odd', 'big')\n")
    config = Settings(memory_backend="memory", max_event_bytes=1024)
    agent = build_agent(config, source=GraphSource(f"{tmp_path / 'odd.py'}:b", tmp_path))
    _AGENTS.append(agent)
    events = await turn(agent, session_id, input={"ratio": 1.5}, include_state=True)
    assert events[-1].type == "agent_end", events[-1].data
    odd, big = [s for s in of(events, "agent_step") if s["type"] == "update"]
    assert odd["values"] == {"blob": {"__type__": "bytes", "length": 2}, "tags": ["a"], "ratio": None,
                             "when": "2026-01-02T03:04:05"}
    assert big["values"] == {"__type__": "too_large", "bytes": len(json.dumps({"big": "x" * 5000}, separators=(",", ":")))}
    assert events[-1].data["state"]["__type__"] == "too_large"
    strict(events)


async def test_input_and_context_are_checked_against_the_graph(tmp_path):
    (tmp_path / "typed.py").write_text(
        "from dataclasses import dataclass\n"
        "from langgraph.graph import START, StateGraph\n"
        "from langgraph.runtime import Runtime\n"
        "from typing_extensions import TypedDict\n"
        "class S(TypedDict, total=False):\n    topic: str\n    count: int\n    seen: str\n"
        "@dataclass\nclass Ctx:\n    user: str\n"
        "def node(state: S, runtime: Runtime[Ctx]):\n    return {'seen': f\"{runtime.context.user}:{state['topic']}\"}\n"
        "b = StateGraph(S, context_schema=Ctx)\nb.add_node('n', node)\nb.add_edge(START, 'n')\n")
    agent = build_agent(Settings(memory_backend="memory"), source=GraphSource(f"{tmp_path / 'typed.py'}:b", tmp_path))
    _AGENTS.append(agent)
    done = await turn(agent, "s1", input={"topic": "tea"}, context={"user": "ada"}, include_state=True)
    assert done[-1].data["state"]["seen"] == "ada:tea"
    for payload, field in [({"input": {"topic": 3}}, "input.topic"), ({"input": {"nope": 1}}, "input.nope"),
                           ({"prompt": "hi"}, "prompt"), ({"input": {}, "context": {"user": 1}}, "context.user"),
                           ({"input": {}, "preferences": {"tone": "dry"}}, "preferences")]:
        with pytest.raises(PayloadError) as refused:
            agent.inputs.check(parse_request({"session_id": "s2", **payload}))
        assert [d["field"] for d in refused.value.details] == [field]


async def test_a_graph_without_a_context_schema_refuses_context(tmp_path, session_id):
    agent = agent_for("interrupts.py:string", tmp_path)
    with pytest.raises(PayloadError, match="no context_schema"):
        agent.inputs.check(parse_request({"session_id": session_id, "prompt": "hi", "context": {"a": 1}}))


async def test_a_cancelled_answer_leaves_the_pre_turn_history_and_asks_again(tmp_path, session_id):
    agent = agent_for("progress.py:graph", tmp_path)
    [question] = of(await turn(agent, session_id, prompt="Plan"), "interrupt")
    before = await agent.history(session_id, "default-user")
    request = parse_request({"session_id": session_id, "stream_tokens": True,
                             "resume": {"interrupt_id": question["interrupt_id"], "value": "Paris"}})
    events = agent.stream(request)
    async for event in events:
        if event.type == "llm_token":
            break
    await events.aclose()  # the client left mid-answer: the turn is rolled back
    await agent.drain()
    after = await agent.history(session_id, "default-user")
    assert after["messages"] == before["messages"]
    [again] = after["pending"]  # the same question, at the same node (LangGraph names it anew)
    assert (again["value"], again["node"]) == ("Which city?", "ask")
    done = await turn(agent, session_id, resume={"interrupt_id": again["interrupt_id"], "value": "Paris"})
    assert done[-1].data["output"] == "City is Paris"


async def test_a_user_graph_s_run_re_attached_after_any_cut_sees_every_event_once(tmp_path, session_id):
    """A run goes on without its reader (on_disconnect: continue); a reader that re-attaches from the last event id
    it has gets the rest, so every event arrives exactly once, in order."""
    from bedrock.server.app import build_app

    agent = agent_for("progress.py:graph", tmp_path)
    runtime = build_app(agent.settings, agent=agent).state.runtime
    for cut in (1, 3, 6):
        session = f"{session_id}-{cut}"
        request = runtime.validate({"prompt": "Plan", "session_id": session, "stream": True, "stream_tokens": True})
        run = await runtime.start_run(agent, request, on_disconnect="continue", slots=runtime.slots,
                                      shutdown=runtime.shutdown_event())
        first, follower = [], run.follow(0, owner=True)
        async for frame in follower:
            first.append(frame)
            if len(first) == cut:
                break
        await follower.aclose()  # the reader went away; the run did not
        resumed = runtime.validate({"action": "resume", "session_id": session, "last_event_id": first[-1].id})
        rest = [frame async for frame in runtime.resume(resumed)[1]]
        ids = [frame.id for frame in first + rest]
        assert ids == list(range(1, len(ids) + 1)) and rest[-1].type == "agent_end"
        assert [f.data["value"] for f in first + rest if f.type == "custom"] == [
            {"progress": 10}, {"progress": 60}, {"progress": 100}]
