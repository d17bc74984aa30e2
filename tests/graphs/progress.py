"""A hand-written StateGraph as LangGraph's docs write them: a subgraph that reports progress with
`get_stream_writer()`, a question by `interrupt()`, a non-message state field, and a model call of its own
(a module-level ChatBedrockConverse: offline, the runtime points it at its local endpoint)."""

from __future__ import annotations

from typing import Any

from langchain_aws import ChatBedrockConverse
from langchain_core.messages import AIMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt

model = ChatBedrockConverse(model="us.anthropic.claude-sonnet-4-5-20250929-v1:0")


class State(MessagesState):
    city: str
    progress: int


def dig(state: State) -> dict[str, Any]:
    write = get_stream_writer()
    for percent in (10, 60, 100):
        write({"progress": percent})
    return {"progress": 100}


research = StateGraph(State)
research.add_node("dig", dig)
research.add_edge(START, "dig")


async def ask(state: State) -> dict[str, Any]:
    return {"city": interrupt("Which city?")}


async def answer(state: State) -> dict[str, Any]:
    reply = await model.ainvoke(state["messages"])
    return {"messages": [reply, AIMessage(f"City is {state['city']}")]}


builder = StateGraph(State)
builder.add_node("research", research.compile())
builder.add_node("ask", ask)
builder.add_node("answer", answer)
builder.add_edge(START, "research")
builder.add_edge("research", "ask")
builder.add_edge("ask", "answer")
builder.add_edge("answer", END)
graph = builder.compile()
