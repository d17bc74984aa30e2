"""A user's graph and the store: every turn gets its actor's memories (`store` argument, `get_store()`, in subgraphs
too), kept with the turn; what it names of another actor's stays its own actor's. A graph compiled with a store of its
own is refused while the runtime gives one, and keeps it with LONG_TERM_MEMORY=off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.core.loader import GraphLoadError, GraphSource
from bedrock.core.turn import Agent
from bedrock.wire.request import parse_request

GRAPHS = Path(__file__).resolve().parents[1] / "graphs"
_AGENTS: list[Agent] = []


@pytest.fixture(autouse=True)
def close_agents() -> Any:
    yield
    while _AGENTS:
        _AGENTS.pop().close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "postgres":
        return {"memory_backend": "postgres", "database_url": request.getfixturevalue("postgres_url")}
    return {"memory_backend": request.param}


def agent_for(spec: str, tmp_path: Path, **settings: Any) -> Agent:
    config = Settings(model_provider="offline", memory_path=str(tmp_path / "m.sqlite"), **settings)
    agent = build_agent(config, source=GraphSource(spec, GRAPHS))
    _AGENTS.append(agent)
    return agent


async def say(agent: Agent, prompt: str, actor: str, session: str) -> str:
    result = await agent.invoke(parse_request({"prompt": prompt, "actor_id": actor, "session_id": session}))
    return result["output"]


async def test_a_user_graph_s_store_is_its_actor_s_alone(tmp_path, backend):
    agent = agent_for("notes.py:graph", tmp_path, **backend)
    await say(agent, "note: likes sailing", "alice", "a-1")
    await say(agent, "note: allergic to nuts", "alice", "a-2")
    await say(agent, "note: likes chess", "bob", "b-1")
    assert await say(agent, "what do I like?", "alice", "a-3") == "notes: allergic to nuts; likes sailing"
    assert await say(agent, "what do I like?", "bob", "b-2") == "notes: likes chess"
    # alice's graph names bob's namespaces, both ways LangGraph's docs write them: it reads none of bob's notes, and
    # what it writes is kept under alice.
    assert await say(agent, "steal: bob", "alice", "a-4") == "seen of bob: 0"
    assert await say(agent, "what do I like?", "bob", "b-3") == "notes: likes chess"
    assert agent.memories is not None
    bobs = (await agent.memories.page("bob", 100, 0))["memories"]
    assert [m["value"]["data"] for m in bobs] == ["likes chess"]
    alices = {tuple(m["namespace"]) for m in (await agent.memories.page("alice", 100, 0))["memories"]}
    assert alices == {("alice", "memories", "alice"), ("alice", "bob", "memories"), ("alice", "memories", "bob")}


async def test_a_graph_compiled_with_its_own_store_is_refused_unless_memory_is_off(tmp_path):
    module = tmp_path / "own_store.py"
    module.write_text(
        "from langgraph.graph import START, MessagesState, StateGraph\n"
        "from langgraph.store.memory import InMemoryStore\n"
        "def node(state): return {}\n"
        "builder = StateGraph(MessagesState)\nbuilder.add_node('node', node)\nbuilder.add_edge(START, 'node')\n"
        "graph = builder.compile(store=InMemoryStore())\n")
    with pytest.raises(GraphLoadError, match="compiled with a store of its own"):
        build_agent(Settings(model_provider="offline", memory_path=str(tmp_path / "m.sqlite")),
                    source=GraphSource("own_store.py:graph", tmp_path))
    agent = build_agent(
        Settings(model_provider="offline", memory_path=str(tmp_path / "m.sqlite"), long_term_memory=False),
        source=GraphSource("own_store.py:graph", tmp_path))
    _AGENTS.append(agent)
    assert agent.memories is None and agent.graph.store is not None  # its own, untouched


async def test_a_create_agent_s_tools_and_middleware_reach_the_actor_s_store(tmp_path, backend):
    agent = agent_for("profile_agent.py:graph", tmp_path, **backend)

    async def ask(prompt: str, actor: str, session: str, user_id: str) -> str:
        payload = {"prompt": prompt, "actor_id": actor, "session_id": session, "context": {"user_id": user_id}}
        return (await agent.invoke(parse_request(payload)))["output"]

    saved = await ask('save_user_info({"user_info": {"name": "Alice", "language": "pt"}})', "alice", "a-1", "alice")
    assert "Successfully saved user info." in saved
    assert "'name': 'Alice'" in await ask("get_user_info()", "alice", "a-2", "alice")
    # The middleware read the store too (the offline model repeats the system prompt it was given).
    assert "Context I was given: You help Alice." in await ask("hello", "alice", "a-3", "alice")
    # bob names alice as his user id: the store he gets is his own, where no "alice" profile is kept
    assert "Unknown user" in await ask("get_user_info()", "bob", "b-1", "alice")
    assert "Context I was given: You help someone new." in await ask("hello", "bob", "b-2", "alice")
