"""A user's graph for the tests: LangChain v1's `create_agent` with two tools, one of them (`refund`) reviewed by
`HumanInTheLoopMiddleware` (approve, edit, reject or respond). The offline model calls a tool named in the prompt as
`NAME({...})`. Served with AGENT_GRAPH=tests/graphs/hitl.py:graph."""

from __future__ import annotations

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_aws import ChatBedrockConverse
from langchain_core.tools import tool

REFUNDS: list[tuple[str, float]] = []  # the refunds that ran, in this process: what a person approved or edited


@tool
def lookup_order(order_id: str) -> str:
    """Look an order up by its id."""
    return f"Order {order_id}: 2 books, shipped."


@tool
def refund(order_id: str, amount: float) -> str:
    """Refund part of an order."""
    REFUNDS.append((order_id, amount))
    return f"Refunded {amount:g} on order {order_id}."


graph = create_agent(
    model=ChatBedrockConverse(model="us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    tools=[lookup_order, refund],
    system_prompt="You help with orders. Refunds need a person's approval.",
    middleware=[HumanInTheLoopMiddleware(interrupt_on={"refund": True})],
)
