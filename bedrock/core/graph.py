"""The agent graph: `chatbot` (the model, with tools bound) and `tools` (a ToolNode), looping until done."""

from __future__ import annotations

import logging
from typing import Any, Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, trim_messages
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

logger = logging.getLogger(__name__)


def preferences_message(preferences: dict[str, Any]) -> SystemMessage:
    """The user's preferences as context for the model (never stored in the session's history)."""
    listed = "; ".join(f"{key}: {value}" for key, value in preferences.items())
    return SystemMessage(f"User preferences: {listed}.")


def tool_error_message(error: Exception) -> str:
    """What the model (and the client, as a tool step) sees when a tool fails: never internals."""
    if isinstance(error, ToolException):  # our tools raise these with fixed, safe messages
        return f"Error: {error}"
    logger.exception("tool failed", exc_info=error)
    return "Error: the tool failed unexpectedly."


def history_window(messages: Sequence[BaseMessage], max_messages: int) -> list[BaseMessage]:
    """What the model sees: the current turn whole, plus as many earlier *whole* turns as fit.

    Earlier history is cut only at a human message, so a tool call is never separated from its result.
    """
    last_human = next((i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], HumanMessage)), 0)
    current = list(messages[last_human:])
    budget = max_messages - len(current)
    if budget <= 0 or last_human == 0:
        return current if budget <= 0 else list(messages)
    earlier = trim_messages(
        list(messages[:last_human]), max_tokens=budget, token_counter=len, strategy="last", start_on="human"
    )
    return [*earlier, *current]


def build_graph(
    model: BaseChatModel,
    tools: Sequence[BaseTool],
    checkpointer: BaseCheckpointSaver | None = None,
    history_max_messages: int = 40,
) -> CompiledStateGraph:
    """Compile the agent graph; `thread_id` in the run config selects the session's history."""
    bound = model.bind_tools(list(tools))

    async def chatbot(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        messages = history_window(state["messages"], history_max_messages)
        preferences = config.get("configurable", {}).get("preferences")
        if preferences:
            messages = [preferences_message(preferences), *messages]
        return {"messages": [await bound.ainvoke(messages, config)]}

    graph = StateGraph(MessagesState)
    graph.add_node("chatbot", chatbot)
    graph.add_node("tools", ToolNode(list(tools), handle_tool_errors=tool_error_message))
    graph.add_edge(START, "chatbot")
    graph.add_conditional_edges("chatbot", tools_condition)
    graph.add_edge("tools", "chatbot")
    return graph.compile(checkpointer=checkpointer)
