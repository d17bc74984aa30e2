"""Long-term memory on AgentCore Memory, end to end through the built-in agent, against the local stand-in of its data
plane (testkit/agentcore_memory.py: moto has no memory records): the sessions, their owners and the memories all in
one memory. A stated preference crosses the actor's sessions and no one else's, kept turns reach the memory's
strategies (what they extract is recalled too), and `forget` removes what it names."""

from __future__ import annotations

from typing import Iterator

import pytest

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.core.turn import Agent
from bedrock.store.agentcore import AgentCoreStore
from bedrock.wire.request import parse_request
from testkit.agentcore_memory import AgentCoreMemoryStandIn


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Agent]:
    standin = AgentCoreMemoryStandIn()
    standin.start()
    try:
        memory_id = standin.create_memory()
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", standin.url)
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", "us-east-1")):
            monkeypatch.setenv(name, value)
        built = build_agent(Settings(model_provider="offline", memory_backend="agentcore",
                                     agentcore_memory_id=memory_id))
        assert isinstance(built.store, AgentCoreStore)  # not the SQLite it falls back to
        yield built
        built.close()
    finally:
        standin.stop()


async def say(agent: Agent, prompt: str, actor: str, session: str) -> str:
    result = await agent.invoke(parse_request({"prompt": prompt, "actor_id": actor, "session_id": session}))
    await agent.drain()  # the kept turn's conversation sent to the memory
    return result["output"]


async def test_a_preference_crosses_sessions_on_agentcore_memory(agent):
    assert (await say(agent, "Remember that my dog is called Rex", "alice", "a-1")).startswith("Got it")
    recalled = await say(agent, "What do you remember about me?", "alice", "a-2")
    assert "my dog is called Rex" in recalled
    assert (await say(agent, "What do you remember about me?", "bob", "b-1")).startswith("I don't remember")
    assert agent.memories is not None
    listed = (await agent.memories.page("alice", 100, 0))["memories"]
    texts = {m["value"]["text"] for m in listed}
    assert "my dog is called Rex" in texts
    # The kept turns' conversation reached the strategies: the stand-in's extracted "remember that …" as a record of
    # its own, which the actor sees and forgets like any other.
    assert any(m["namespace"][1] == "preferences" for m in listed), listed
    assert await agent.memories.forget("alice", None) == len(listed)
    assert (await say(agent, "What do you remember about me?", "alice", "a-3")).startswith("I don't remember")
