"""A city guide written as a plain LangGraph `StateGraph`: it asks which city (an `interrupt`), researches it in a
subgraph that reports its progress (`get_stream_writer()`), then has the model write the answer. Its state holds
more than messages (`city`, `progress`, `notes`), and the city is remembered: a later turn of the same session does
not ask again. Nothing in it knows about AgentCore: `langgraph-agentcore` serves `graph` as it is (see README.md).

Uncompiled on purpose: the runtime compiles it with its own checkpointer (MEMORY_BACKEND), which `interrupt()` and
the memory across turns need. Offline (MODEL_PROVIDER=offline, the runtime's default) the ChatBedrockConverse below
reaches the runtime's local Bedrock-compatible endpoint unchanged.
"""

from __future__ import annotations

import os
from typing import Annotated

from langchain_aws import ChatBedrockConverse
from langchain_core.messages import AnyMessage, SystemMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt
from typing_extensions import NotRequired, TypedDict

SOURCES = ("history", "food", "transport")  # what the research subgraph looks into, one step each


class GuideState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    city: NotRequired[str]
    progress: NotRequired[int]  # percent of the research done (this turn's)
    notes: NotRequired[list[str]]  # what the research found (this turn's)


class ResearchState(TypedDict):
    """The subgraph's state: the keys it shares with the guide's (its input and its output)."""

    city: str
    progress: NotRequired[int]
    notes: NotRequired[list[str]]  # what the research found (this turn's)


def ask_city(state: GuideState) -> dict:
    """Which city? Asked once per session: `interrupt` pauses the run until the client answers (its `value`)."""
    city = interrupt("Which city?")
    return {"city": str(city).strip()}


def gather(state: ResearchState) -> dict:
    """Look the city up, source by source, telling the client how far it got."""
    write = get_stream_writer()  # each write is a `custom` event, as it happens
    notes = []
    for done, source in enumerate(SOURCES, start=1):
        notes.append(f"{source} of {state['city']}: looked up")
        write({"stage": source, "progress": round(100 * done / len(SOURCES))})
    return {"notes": notes, "progress": 100}


def summarise(state: ResearchState) -> dict:
    get_stream_writer()({"stage": "summary", "progress": state.get("progress", 0)})
    return {}


research_builder = StateGraph(ResearchState)
research_builder.add_node("gather", gather)
research_builder.add_node("summarise", summarise)
research_builder.add_edge(START, "gather")
research_builder.add_edge("gather", "summarise")
research_builder.add_edge("summarise", END)
research = research_builder.compile()  # a compiled subgraph, added to the guide below as a node

model = ChatBedrockConverse(model=os.environ.get("BEDROCK_MODEL_ID", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"))


async def answer(state: GuideState) -> dict:
    """The model writes the answer, told the city and the research notes."""
    notes = "; ".join(state.get("notes", []))
    system = SystemMessage(f"You are a city guide. The user's city is {state['city']}. Research notes: {notes}.")
    reply = await model.ainvoke([system, *state["messages"]])
    return {"messages": [reply]}


def city_known(state: GuideState) -> str:
    return "research" if state.get("city") else "ask_city"


graph = StateGraph(GuideState)
graph.add_node("ask_city", ask_city)
graph.add_node("research", research)
graph.add_node("answer", answer)
graph.add_conditional_edges(START, city_known, ["ask_city", "research"])
graph.add_edge("ask_city", "research")
graph.add_edge("research", "answer")
graph.add_edge("answer", END)
