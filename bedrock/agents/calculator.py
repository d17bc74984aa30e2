"""The built-in agent: a chatbot with a calculator tool — what serves when no AGENT_GRAPH or langgraph.json names
another. A graph module like any user's: `graph` is a factory of the model and settings the runtime configured."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.graph import StateGraph

from bedrock.config import Settings
from bedrock.core.graph import agent_graph
from bedrock.core.memory import remember
from bedrock.core.tools import default_tools


def graph(model: BaseChatModel, settings: Settings, mcp_tools: Sequence[BaseTool] = ()) -> StateGraph:
    """chatbot ⇄ tools (calculator, `remember` with LONG_TERM_MEMORY, and MCP_SERVERS' tools), with
    HISTORY_MAX_MESSAGES, `preferences`, the actor's recalled memories (MEMORY_RECALL_LIMIT) and
    APPROVAL_REQUIRED_TOOLS (which may name any of them)."""
    tools = default_tools()
    if settings.long_term_memory:  # the actor's memories: `remember` saves one, each turn recalls the relevant ones
        tools.append(remember)
    if mcp_tools:
        from bedrock.mcp import check_names

        check_names(mcp_tools, others=tuple(tool.name for tool in tools))
    return agent_graph(model, [*tools, *mcp_tools], settings.history_max_messages,
                       frozenset(settings.approval_required_tools),
                       settings.memory_recall_limit if settings.long_term_memory else 0)
