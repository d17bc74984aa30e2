"""The built-in agent's recall, by meaning, offline on the production path (ChatBedrockConverse, BedrockEmbeddings,
botocore, the local endpoint's Titan embeddings): of 20 facts an actor told it, the MEMORY_RECALL_LIMIT=3 it recalls
for a prompt hold the one that shares the prompt's words."""

from __future__ import annotations

from typing import Any

import pytest

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.wire.request import parse_request

FACTS = [
    "my sister Anna lives in Lisbon", "I am allergic to peanuts", "my favourite colour is dark green",
    "I work as a nurse at the city hospital", "our dog is a beagle called Biscuit", "I was born in Dublin",
    "I prefer tea over coffee", "my car is an old blue Volvo", "I play the cello in an orchestra",
    "my daughter starts school in September", "I am training for a marathon", "I read science fiction novels",
    "my partner is vegetarian", "I speak Portuguese and a little Japanese", "our flat has a small balcony",
    "I cannot stand horror films", "my dentist appointment is every six months", "I support Arsenal",
    "I am saving for a trip to Iceland", "I sleep badly when it is hot",
]


@pytest.fixture
def agent(tmp_path: Any) -> Any:
    built = build_agent(Settings(model_provider="offline", memory_backend="memory", memory_recall_limit=3,
                                 memory_path=str(tmp_path / "m.sqlite")))
    yield built
    built.close()


async def say(agent: Any, prompt: str, session: str) -> str:
    return (await agent.invoke(parse_request({"prompt": prompt, "actor_id": "alice", "session_id": session})))["output"]


@pytest.mark.parametrize("prompt,fact", [
    ("What do you remember about me and the cello?", "I play the cello in an orchestra"),
    ("What do you remember about me? Something about Volvo cars", "my car is an old blue Volvo"),
    ("What do you remember about me and Lisbon", "my sister Anna lives in Lisbon"),
])
async def test_the_recalled_three_of_twenty_hold_the_fact_sharing_the_prompt_s_words(agent, prompt, fact):
    for i, told in enumerate(FACTS):
        assert (await say(agent, f"Remember that {told}", f"tell-{i}")).startswith("Got it")
    answer = await say(agent, prompt, "ask")
    assert answer.startswith("Here is what I remember about you: ")
    recalled = answer.removeprefix("Here is what I remember about you: ").removesuffix(".").split("; ")
    assert len(recalled) == 3 and fact in recalled, recalled
