"""A LangChain v1 agent as its docs write one: create_agent, two tools, a system prompt, and
HumanInTheLoopMiddleware asking before `refund` runs."""

from __future__ import annotations

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_aws import ChatBedrockConverse
from langchain_core.tools import tool

REFUNDS: list[tuple[str, float]] = []  # what ran, in this process


@tool
def lookup_order(order_id: str) -> str:
    """Look an order up by its id."""
    return f"order {order_id}: 2 books, shipped"


@tool
def refund(order_id: str, amount: float) -> str:
    """Refund part of an order."""
    REFUNDS.append((order_id, amount))
    return f"refunded {amount} on {order_id}"


graph = create_agent(
    model=ChatBedrockConverse(model="us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    tools=[lookup_order, refund],
    system_prompt="You help with orders. Refunds need a person's approval.",
    middleware=[HumanInTheLoopMiddleware(interrupt_on={"refund": True})],
)
