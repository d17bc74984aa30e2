"""Graphs that ask: a string question, a dict question, and two questions at once (parallel branches)."""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt


class State(MessagesState):
    answers: Annotated[list[Any], operator.add]


def ask_string(state: State) -> dict[str, Any]:
    return {"answers": [interrupt("Which city?")]}


def ask_dict(state: State) -> dict[str, Any]:
    return {"answers": [interrupt({"question": "How many?", "choices": [1, 2, 3]})]}


def ask_first(state: State) -> dict[str, Any]:
    return {"answers": [("first", interrupt("First?"))]}


def ask_second(state: State) -> dict[str, Any]:
    return {"answers": [("second", interrupt("Second?"))]}


def one(node: Any) -> StateGraph:
    builder = StateGraph(State)
    builder.add_node("ask", node)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    return builder


string = one(ask_string)
mapping = one(ask_dict)

both = StateGraph(State)
both.add_node("first", ask_first)
both.add_node("second", ask_second)
both.add_edge(START, "first")
both.add_edge(START, "second")
both.add_edge("first", END)
both.add_edge("second", END)
