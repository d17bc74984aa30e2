"""A user's graph for the tests, as LangChain's long-term memory docs write one: `create_agent` whose tools reach the
store through `ToolRuntime` (`runtime.store`, `runtime.context.user_id`), and a `dynamic_prompt` middleware that reads
it too. The docs pass `store=InMemoryStore()`; served here it is compiled without one: the runtime gives each turn
its actor's. The offline model calls a tool named in the prompt as `NAME({...})`.
Served with AGENT_GRAPH=tests/graphs/profile_agent.py:graph."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import ModelRequest, dynamic_prompt
from langchain.tools import ToolRuntime, tool
from langchain_aws import ChatBedrockConverse

@dataclass
class Context:
    user_id: str


@tool
def get_user_info(runtime: ToolRuntime[Context]) -> str:
    """Look up the user's saved profile."""
    found = runtime.store.get(("users",), runtime.context.user_id)
    return str(found.value) if found else "Unknown user"


@tool
def save_user_info(user_info: dict[str, Any], runtime: ToolRuntime[Context]) -> str:
    """Save the user's profile."""
    runtime.store.put(("users",), runtime.context.user_id, user_info)
    return "Successfully saved user info."


@dynamic_prompt
def greet_by_name(request: ModelRequest) -> str:
    found = request.runtime.store.get(("users",), request.runtime.context.user_id)
    return f"You help {found.value.get('name', 'someone') if found else 'someone new'}."


graph = create_agent(
    model=ChatBedrockConverse(model="us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    tools=[get_user_info, save_user_info],
    middleware=[greet_by_name],
    context_schema=Context,
)
