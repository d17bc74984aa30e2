"""A user's agent as LangChain's docs write one (`create_agent` with middleware), given the MCP servers' tools by the
runtime: the factory names `mcp_tools`."""

from langchain.agents import create_agent
from langchain.agents.middleware import ModelCallLimitMiddleware
from langchain_core.tools import tool


@tool
def local_note(text: str) -> str:
    """Keep a note."""
    return f"noted: {text}"


def graph(model, mcp_tools):
    return create_agent(model, tools=[local_note, *mcp_tools], middleware=[ModelCallLimitMiddleware(run_limit=5)])


def graph_without_mcp(model):
    return create_agent(model, tools=[local_note])
