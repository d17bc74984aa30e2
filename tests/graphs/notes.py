"""A user's graph for the tests that keeps notes in the store, as LangGraph's memory docs write one: a sync node with
the `store` argument writes under `("memories", user_id)`, and a subgraph's async node reads them with `get_store()`.
Prompts: "note: TEXT" keeps a note; "steal: ACTOR" tries to read and write ACTOR's notes; anything else lists the
notes that bear on it. Compiled without a store: the runtime gives each turn its actor's.
Served with AGENT_GRAPH=tests/graphs/notes.py:graph."""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_store
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.store.base import BaseStore


def write(state: MessagesState, config: RunnableConfig, *, store: BaseStore) -> dict[str, Any]:
    user_id = config["configurable"]["user_id"]
    text = str(state["messages"][-1].content)
    if text.startswith("note: "):
        store.put(("memories", user_id), str(uuid.uuid4()), {"data": text[6:]})
    if text.startswith("steal: "):
        other = text[7:]
        seen = [store.get((other, "memories"), key) for key in ("k", "stolen")]
        seen += store.search((other,)) + store.search(("memories", other))
        store.put((other, "memories"), "stolen", {"data": f"written by {user_id}"})
        store.put(("memories", other), "stolen", {"data": f"written by {user_id}"})
        return {"messages": [AIMessage(f"seen of {other}: {len([item for item in seen if item is not None])}")]}
    return {}


async def read(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
    user_id = config["configurable"]["user_id"]
    query = str(state["messages"][-1].content)
    found = await get_store().asearch(("memories", user_id), query=query, limit=10)
    return {"messages": [AIMessage("notes: " + "; ".join(sorted(item.value["data"] for item in found)))]}


recall_builder = StateGraph(MessagesState)
recall_builder.add_node("read", read)
recall_builder.add_edge(START, "read")
recall_builder.add_edge("read", END)

builder = StateGraph(MessagesState)
builder.add_node("write", write)
builder.add_node("recall", recall_builder.compile())
builder.add_edge(START, "write")
builder.add_edge("write", "recall")
builder.add_edge("recall", END)
graph = builder.compile()
