"""A customer-support agent built with LangChain v1's `create_agent`: two tools, a system prompt, and a human in
the loop for refunds (`HumanInTheLoopMiddleware`). Nothing in it knows about AgentCore: `langgraph-agentcore` serves
`graph` as it is (see README.md).

No checkpointer here: the runtime gives the graph its own (MEMORY_BACKEND), which the human-in-the-loop pause needs.
Offline (MODEL_PROVIDER=offline, the runtime's default) the module-level ChatBedrockConverse below reaches the
runtime's local Bedrock-compatible endpoint unchanged; with MODEL_PROVIDER=bedrock it is the real model.
"""

from __future__ import annotations

import json
import os

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_aws import ChatBedrockConverse
from langchain_core.tools import tool

SYSTEM_PROMPT = (
    "You are the support agent of an online shop. Look orders up with lookup_order before you answer about them. "
    "Refund only what the customer paid for an order, and only after looking it up; a person approves every refund "
    "before it is made."
)

# A stand-in for the shop's order system.
ORDERS = {
    "A-1001": {"status": "delivered", "items": ["kettle"], "total": 49.9, "currency": "EUR"},
    "A-1002": {"status": "in transit", "items": ["teapot", "2 mugs"], "total": 35.0, "currency": "EUR"},
}


@tool
def lookup_order(order_id: str) -> str:
    """Look an order up by its id (e.g. A-1001): its status, items and total."""
    order = ORDERS.get(order_id)
    if order is None:
        return f"There is no order {order_id}."
    return json.dumps({"order_id": order_id, **order})


@tool
def refund(order_id: str, amount: float) -> str:
    """Refund `amount` (in the order's currency) of an order. A person approves each refund first."""
    order = ORDERS.get(order_id)
    if order is None:
        return f"There is no order {order_id}: nothing refunded."
    if amount <= 0 or amount > order["total"]:
        return f"Refused: {amount:.2f} is not between 0 and the order's total, {order['total']:.2f}."
    return f"Refunded {amount:.2f} {order['currency']} on order {order_id}."


model = ChatBedrockConverse(model=os.environ.get("BEDROCK_MODEL_ID", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"))

graph = create_agent(
    model,
    tools=[lookup_order, refund],
    system_prompt=SYSTEM_PROMPT,
    # A refund waits for a person's decision: approve, edit (other arguments), reject, or respond (instead of the
    # tool). One interrupt per model reply that asks for refunds, answered with {"decisions": [...]}, one per call.
    middleware=[HumanInTheLoopMiddleware(interrupt_on={"refund": True})],
)
