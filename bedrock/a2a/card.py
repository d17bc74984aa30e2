"""The agent card: what another agent reads before it calls this one.

    name, description   A2A_AGENT_NAME / A2A_AGENT_DESCRIPTION; else AGENT_NAME (the langgraph.json graph served),
                        the compiled graph's own name (when it was given one), the built-in agent's; else generic
    skills              one per tool the graph binds — the built-in agent's calculator (and `remember`), MCP_SERVERS'
                        tools, a user graph's ToolNode tools (create_agent's, a StateGraph's, in a subgraph too) —
                        else one skill, the agent itself
    interfaces          JSON-RPC at the endpoint's URL, twice: protocol 1.0, and 0.3 (its method names are answered
                        on the same endpoint; v0.3 clients read the card's `url`, which the 0.3 interface gives)
    capabilities        streaming (message/stream, tasks/resubscribe); no push notifications
    security            AUTH_MODE=jwt: an HTTP bearer scheme (a JWT), required
The URL is the request's (its host and the endpoint's path) unless A2A_URL (or AGENTCORE_RUNTIME_URL) says it:
behind AgentCore the card must name the runtime's invocation URL, not the container's address.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from typing import TYPE_CHECKING, Any

from a2a.types import (AgentCapabilities, AgentCard, AgentInterface, AgentSkill, HTTPAuthSecurityScheme,
                       SecurityRequirement, SecurityScheme, StringList)
from a2a.utils.constants import PROTOCOL_VERSION_0_3, PROTOCOL_VERSION_1_0, TransportProtocol

from bedrock.config import Settings

if TYPE_CHECKING:
    from bedrock.core.turn import Agent

DEFAULT_GRAPH_NAME = "LangGraph"  # what LangGraph names a compiled graph nobody named
BUILT_IN = ("calculator-agent", "A chatbot that answers questions and does arithmetic with its calculator tool.")
GENERIC = ("langgraph-agent", "A LangGraph agent served on Amazon Bedrock AgentCore Runtime.")
MODES = ["text/plain", "application/json"]
BEARER = "bearer"
SUBGRAPH_DEPTH = 4


def agent_card(agent: Agent, settings: Settings, url: str = "") -> AgentCard:
    """The card of `agent` as `settings` serve it; `url`: its JSON-RPC endpoint (set per request otherwise)."""
    name, description = _naming(agent, settings)
    skills = [AgentSkill(id=tool.name, name=tool.name, description=(tool.description or tool.name).strip(),
                         tags=["tool"]) for tool in graph_tools(agent.graph)]
    if not skills:
        skills = [AgentSkill(id="agent", name=name, description=description, tags=["agent"])]
    card = AgentCard(
        name=name,
        description=description,
        version=_version(),
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding=TransportProtocol.JSONRPC, protocol_version=version)
            for version in (PROTOCOL_VERSION_1_0, PROTOCOL_VERSION_0_3)],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=MODES,
        default_output_modes=MODES,
        skills=skills,
    )
    if settings.auth_mode == "jwt":
        card.security_schemes[BEARER].CopyFrom(SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(
            scheme="Bearer", bearer_format="JWT", description="A token of the identity provider this agent trusts "
            "(its issuer and keys); the caller is its subject.")))
        card.security_requirements.append(SecurityRequirement(schemes={BEARER: StringList()}))
    return card


def with_url(card: AgentCard, url: str) -> AgentCard:
    """A copy of `card` whose interfaces are at `url`."""
    copy = AgentCard()
    copy.CopyFrom(card)
    for interface in copy.supported_interfaces:
        interface.url = url
    return copy


def graph_tools(graph: Any) -> list[Any]:
    """The tools a compiled graph's nodes run, each once, by name: ToolNodes' (`tools_by_name`), the built-in
    agent's approval wrapper's, and those of its subgraphs."""
    found: dict[str, Any] = {}
    for tools in _tool_maps(graph, SUBGRAPH_DEPTH):
        for name, tool in tools.items():
            found.setdefault(name, tool)
    return list(found.values())


def _tool_maps(graph: Any, depth: int) -> Iterator[dict[str, Any]]:
    nodes = getattr(graph, "nodes", None)
    if depth <= 0 or not isinstance(nodes, dict):
        return
    for node in nodes.values():
        bound = getattr(node, "bound", None)
        for runnable in (bound, getattr(bound, "afunc", None), getattr(bound, "func", None)):
            tools = getattr(runnable, "tools_by_name", None)
            if isinstance(tools, dict):
                yield tools
                break
        if bound is not None and bound is not graph and isinstance(getattr(bound, "nodes", None), dict):  # a subgraph
            yield from _tool_maps(bound, depth - 1)


def _naming(agent: Agent, settings: Settings) -> tuple[str, str]:
    graph_name = getattr(agent.graph, "name", None)
    own = graph_name if isinstance(graph_name, str) and graph_name != DEFAULT_GRAPH_NAME else ""
    default_name, default_description = BUILT_IN if agent.built_in else GENERIC
    name = settings.a2a_agent_name or settings.agent_name or own or default_name
    return name, settings.a2a_agent_description or default_description


def _version() -> str:
    try:
        return metadata.version("langgraph-agentcore")
    except metadata.PackageNotFoundError:
        return "0.1.0"
