"""A user's graph for the tests: a subgraph that reports progress (`get_stream_writer()`), a question to the user
(`interrupt("Which city?")`), then a model call and the answer. Compiled without a checkpointer, as a user's graph
is: the runtime gives it one. Served with AGENT_GRAPH=tests/graphs/questions.py:graph."""

from __future__ import annotations

from typing import Any

from langchain_aws import ChatBedrockConverse
from langchain_core.messages import AIMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt

# Made at import, as LangChain's docs do: offline, the runtime has already pointed botocore at its endpoint.
model = ChatBedrockConverse(model="us.anthropic.claude-sonnet-4-5-20250929-v1:0")


class State(MessagesState):
    city: str


def search(state: State) -> dict[str, Any]:
    write = get_stream_writer()
    write({"phase": "start"})
    write({"phase": "done"})
    return {"messages": [AIMessage("I looked at a few places.")]}


research_builder = StateGraph(State)
research_builder.add_node("search", search)
research_builder.add_edge(START, "search")
research_builder.add_edge("search", END)
research = research_builder.compile()


def ask(state: State) -> dict[str, Any]:
    city = interrupt("Which city?")
    return {"city": city}


async def answer(state: State) -> dict[str, Any]:
    reply = await model.ainvoke(state["messages"])
    return {"messages": [reply, AIMessage(f"City is {state['city']}")]}


builder = StateGraph(State)
builder.add_node("research", research)
builder.add_node("ask", ask)
builder.add_node("answer", answer)
builder.add_edge(START, "research")
builder.add_edge("research", "ask")
builder.add_edge("ask", "answer")
builder.add_edge("answer", END)
graph = builder.compile()
