"""The agent card, made in process: skills from the tools a graph binds (the built-in agent's, behind its approvals
too; a create_agent graph's; none: the agent itself), name and description from the settings or the graph, a bearer
scheme with AUTH_MODE=jwt, the URL set per request."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from a2a.types import AgentCard

from bedrock.a2a.card import agent_card, graph_tools, with_url
from bedrock.config import Settings
from bedrock.core.build import build_agent


@pytest.fixture(scope="module")
def built_in():
    """The built-in agent with approvals on its calculator (the ToolNode behind the approval wrapper)."""
    agent = build_agent(Settings(approval_required_tools=("calculator",), memory_backend="memory"))
    yield agent
    agent.close()


def test_the_built_in_agent_s_tools_are_its_skills(built_in):
    card = agent_card(built_in, Settings(), "http://agent.test/a2a")
    assert card.name == "calculator-agent" and "calculator" in card.description
    assert [skill.id for skill in card.skills] == ["calculator", "remember"]
    assert "arithmetic expression" in card.skills[0].description
    assert card.capabilities.streaming and not card.capabilities.push_notifications
    assert [(i.url, i.protocol_version) for i in card.supported_interfaces] == [
        ("http://agent.test/a2a", "1.0"), ("http://agent.test/a2a", "0.3")]
    assert not card.security_schemes and not card.security_requirements


def test_names_from_the_settings_and_a_bearer_scheme_with_jwt(built_in):
    settings = Settings(a2a_agent_name="ledger", a2a_agent_description="Keeps the books.", auth_mode="jwt")
    card = agent_card(built_in, settings)
    assert (card.name, card.description) == ("ledger", "Keeps the books.")
    scheme = card.security_schemes["bearer"].http_auth_security_scheme
    assert (scheme.scheme, scheme.bearer_format) == ("Bearer", "JWT")
    assert list(card.security_requirements[0].schemes) == ["bearer"]
    assert card.name == agent_card(built_in, Settings(agent_name="ledger")).name  # AGENT_NAME, else


def test_a_create_agent_graph_s_tools_are_found():
    from examples.create_agent.agent import graph

    assert sorted(tool.name for tool in graph_tools(graph)) == ["lookup_order", "refund"]
    card = agent_card(SimpleNamespace(graph=graph, built_in=False), Settings())  # type: ignore[arg-type]
    assert card.name == "langgraph-agent" and [s.id for s in card.skills] == ["lookup_order", "refund"]


def test_a_graph_without_tools_is_one_skill():
    from tests.graphs.questions import builder

    named = builder.compile(name="questions")  # a subgraph (research) and no ToolNode
    assert graph_tools(named) == []
    card = agent_card(SimpleNamespace(graph=named, built_in=False), Settings())  # type: ignore[arg-type]
    assert card.name == "questions" and [(s.id, s.name) for s in card.skills] == [("agent", "questions")]


def test_the_url_is_set_on_a_copy():
    card = AgentCard(name="a")
    card.supported_interfaces.add(url="http://localhost/a2a", protocol_binding="JSONRPC", protocol_version="1.0")
    moved = with_url(card, "https://agent.example/a2a")
    assert moved.supported_interfaces[0].url == "https://agent.example/a2a"
    assert card.supported_interfaces[0].url == "http://localhost/a2a"
