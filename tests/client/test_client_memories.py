"""AgentClient's `memories` and `forget` against a real served agent (offline model): over HTTP and through boto3's
InvokeAgentRuntime to the local stand-in, with LONG_TERM_MEMORY=off, and the arguments refused before sending."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from bedrock.client import AgentClient, AgentHTTPError
from tests.client.runtime_standin import RuntimeStandIn

ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/langgraph_agent-abc"
FACTS = {"I prefer metric units": "I prefer metric units", "Remember that my dog is Rex": "my dog is Rex"}


@pytest.fixture
def standin(server, serve) -> RuntimeStandIn:
    runtime = RuntimeStandIn(server.url)
    runtime.url = serve(runtime.app)  # type: ignore[attr-defined]
    return runtime


@pytest.fixture
def actor() -> str:
    """An actor no other test uses: the shared server keeps every actor's memories."""
    return f"actor-{uuid.uuid4().hex}"


def client_over(over: str, server: Any, standin: RuntimeStandIn) -> AgentClient:
    if over == "http":
        return AgentClient(base_url=server.url, timeout=60)
    return AgentClient(agent_runtime_arn=ARN, endpoint_url=standin.url, region="us-east-1", timeout=60)


def texts(page: dict[str, Any]) -> list[str]:
    return [memory["value"]["text"] for memory in page["memories"]]


async def tell(client: AgentClient, actor: str) -> None:
    """Two turns, each in a session of its own: memories outlive sessions."""
    for prompt in FACTS:
        result = await client.invoke({"prompt": prompt, "actor_id": actor})
        assert "remember" in result["output"], result


@pytest.mark.parametrize("over", ["http", "runtime ARN"])
async def test_memories_page_and_forget_one_then_all(server, standin, actor, over):
    async with client_over(over, server, standin) as client:
        await tell(client, actor)
        listed = await client.memories(actor_id=actor)
        assert listed["actor_id"] == actor and listed["next_offset"] is None
        assert sorted(texts(listed)) == sorted(FACTS.values())
        for memory in listed["memories"]:
            assert memory["namespace"] == [actor, "memories"] and memory["key"]
            assert memory["created_at"] and memory["updated_at"]

        first = await client.memories(limit=1, actor_id=actor)
        assert len(first["memories"]) == 1 and first["next_offset"] == 1
        second = await client.memories(limit=1, offset=first["next_offset"], actor_id=actor)
        assert second["next_offset"] is None
        assert first["memories"] + second["memories"] == listed["memories"]

        assert (await client.memories(actor_id=f"other-{actor}"))["memories"] == []  # another actor's are not his

        kept, gone = listed["memories"]
        assert await client.forget(gone["key"], actor_id=actor) == {"actor_id": actor, "forgotten": 1}
        assert (await client.memories(actor_id=actor))["memories"] == [kept]

        with pytest.raises(AgentHTTPError) as unknown:
            await client.forget(gone["key"], actor_id=actor)
        assert unknown.value.status == 404 and unknown.value.code == "memory_not_found"
        with pytest.raises(AgentHTTPError) as not_his:  # another actor cannot forget it either
            await client.forget(kept["key"], actor_id=f"other-{actor}")
        assert not_his.value.code == "memory_not_found"

        assert await client.forget(all=True, actor_id=actor) == {"actor_id": actor, "forgotten": 1}
        assert await client.memories(actor_id=actor) == {"actor_id": actor, "memories": [], "next_offset": None}
    if over == "runtime ARN":  # the calls of no session share one valid runtime session: one microVM, not many
        own = {call["session_id"] for call in standin.calls[len(FACTS):]}
        assert len(own) == 1 and 33 <= len(own.pop()) <= 256


async def test_forget_by_key_in_its_namespace(server, actor):
    async with AgentClient(base_url=server.url, timeout=60) as client:
        await client.invoke({"prompt": "I prefer metric units", "actor_id": actor})
        (memory,) = (await client.memories(actor_id=actor))["memories"]
        with pytest.raises(AgentHTTPError) as elsewhere:
            await client.forget(memory["key"], namespace=[actor, "elsewhere"], actor_id=actor)
        assert elsewhere.value.code == "memory_not_found"
        answer = await client.forget(memory["key"], namespace=memory["namespace"], actor_id=actor)
        assert answer["forgotten"] == 1 and (await client.memories(actor_id=actor))["memories"] == []


async def test_the_actor_defaults_to_the_servers(server):
    async with AgentClient(base_url=server.url, timeout=60) as client:
        assert (await client.memories())["actor_id"] == "default-user"


async def test_a_page_out_of_bounds_is_refused_by_the_server(server):
    async with AgentClient(base_url=server.url, timeout=60) as client:
        for limit in (0, 101):
            with pytest.raises(AgentHTTPError) as refused:
                await client.memories(limit=limit)
            assert refused.value.status == 400 and refused.value.code == "invalid_payload"


async def test_long_term_memory_off_is_a_409(make_server):
    live = make_server({"LONG_TERM_MEMORY": "off"})
    async with AgentClient(base_url=live.url, timeout=60) as client:
        for call in (client.memories(), client.forget("some-key"), client.forget(all=True)):
            with pytest.raises(AgentHTTPError) as off:
                await call
            assert off.value.status == 409 and off.value.code == "long_term_memory_off"


@pytest.mark.parametrize("args, kwargs", [
    ((), {}),  # neither
    (("k",), {"all": True}),  # both
    ((), {"all": True, "namespace": ["a", "memories"]}),  # a namespace beside all
    ((), {"namespace": ["a", "memories"]}),  # a namespace without its key
    (("k",), {"namespace": "memories"}),  # a string, not a sequence of labels
])
async def test_forget_refuses_bad_arguments_before_sending(args, kwargs):
    # Port 9 (discard) listens nowhere here: anything sent would be an AgentConnectionError, not a ValueError.
    async with AgentClient(base_url="http://127.0.0.1:9", retries=0) as client:
        with pytest.raises(ValueError):
            await client.forget(*args, **kwargs)
