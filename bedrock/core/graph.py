"""The agent graph: `chatbot` (the model, with tools bound) and `tools` (a ToolNode), looping until done.

Tools named in APPROVAL_REQUIRED_TOOLS wait for the user: before any tool of a model turn runs, each call of such
a tool interrupts the graph (LangGraph's `interrupt()`, kept in the session's checkpoint) until a `resume`
answers it. Approved, it runs (with edited arguments if given, which the model's own call then shows too);
declined, its result is a refusal, so the conversation never holds a tool call without its result.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolCall, ToolMessage,
                                     trim_messages)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.prebuilt.tool_node import ToolInvocationError
from langgraph.types import interrupt

from bedrock.config import ConfigError
from bedrock.core.memory import recall

logger = logging.getLogger(__name__)


def preferences_message(preferences: dict[str, Any]) -> SystemMessage:
    """The user's preferences as context for the model (never stored in the session's history)."""
    listed = "; ".join(f"{key}: {value}" for key, value in preferences.items())
    return SystemMessage(f"User preferences: {listed}.")


def tool_error_message(error: Exception) -> str:
    """What the model (and the client, as a tool step) sees when a tool fails: never internals."""
    if isinstance(error, ToolInvocationError):  # arguments that fail the tool's schema: never their values
        return f"Error: invalid arguments ({_argument_problems(error)}). Please fix them and try again."
    if isinstance(error, ToolException):  # our tools raise these with fixed, safe messages
        return f"Error: {error}"
    logger.exception("tool failed", exc_info=error)
    return "Error: the tool failed unexpectedly."


def _argument_problems(error: ToolInvocationError) -> str:
    """Each invalid argument's name and pydantic's message (which holds no input value); LangGraph's own message
    would repeat every argument as sent (`with kwargs {...}`), a client's edited ones included."""
    problems = []
    for detail in error.filtered_errors if error.filtered_errors is not None else error.source.errors():
        if detail.get("type") == "extra_forbidden":
            problems.append("an unexpected argument")
            continue
        where = ".".join(str(part) for part in detail.get("loc", ())) or "arguments"
        problems.append(f"{where}: {detail.get('msg', 'not valid')}")
    return "; ".join(dict.fromkeys(problems)) or "not valid"


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


DECLINED = "The user declined this tool call, so it did not run."


def interrupt_id(tool_call_id: str) -> str:
    """The id of the approval a tool call waits for: stable (a rolled-back resume asks again under the same
    id), and valid in a payload whatever characters the model's tool call id holds."""
    return "approval-" + hashlib.sha256(tool_call_id.encode()).hexdigest()[:24]


def declined(call: Mapping[str, Any]) -> ToolMessage:
    """A declined call's result, as the model (and the client, as a tool step) sees it."""
    return ToolMessage(DECLINED, tool_call_id=call["id"], name=call["name"], status="error")


def approval_node(node: ToolNode, approval_required: frozenset[str]) -> Any:
    """`tools` with approvals: ask about every call that needs one, then run the approved calls together."""

    async def tools(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        asked = state["messages"][-1]
        assert isinstance(asked, AIMessage)
        calls, results = [], {}
        for call in asked.tool_calls:
            if call["name"] in approval_required:
                # Re-run from here when resumed: each interrupt() returns its answer, in order.
                answer = interrupt({"interrupt_id": interrupt_id(_call_id(call)), "tool_name": call["name"],
                                    "tool_call_id": call["id"], "args": call["args"]})
                if not answer.get("approved"):
                    results[call["id"]] = declined(call)
                    continue
                if answer.get("args") is not None:
                    call = {**call, "args": answer["args"]}
            calls.append(call)
        if calls:
            ran = await node.ainvoke([{**call, "type": "tool_call"} for call in calls], config)
            for message in ran["messages"]:
                results[message.tool_call_id] = message
        messages: list[BaseMessage] = []
        edited = [call for call in calls if call["args"] != _args_of(asked, call["id"])]
        if edited:  # the model's own call shows the arguments that ran (same id: it replaces the message)
            by_id = {call["id"]: call for call in calls}
            messages.append(asked.model_copy(update={"tool_calls": [
                by_id.get(call["id"], call) for call in asked.tool_calls]}))
        messages += [results[call["id"]] for call in asked.tool_calls]
        return {"messages": messages}

    # The tools it runs, found as a ToolNode's are (`tools_by_name`): what lists a graph's tools (the A2A agent
    # card's skills, bedrock/a2a/card.py) sees through the approvals.
    setattr(tools, "tools_by_name", node.tools_by_name)  # noqa: B010 - a function's attribute, unknown to mypy
    return tools


def _call_id(call: ToolCall) -> str:
    """A tool call's id: the model names every call (Converse's toolUseId), though LangChain's type allows None."""
    assert call["id"] is not None, f"a tool call without an id: {call['name']}"
    return call["id"]


def _args_of(message: AIMessage, call_id: str | None) -> Any:
    return next((call["args"] for call in message.tool_calls if call["id"] == call_id), None)


def dangling_calls(messages: Sequence[BaseMessage]) -> list[ToolCall]:
    """The tool calls of the last model message that have no result yet (an approval still pending)."""
    for last_ai in range(len(messages) - 1, -1, -1):
        asked = messages[last_ai]
        if isinstance(asked, AIMessage):
            answered = {m.tool_call_id for m in messages[last_ai + 1:] if isinstance(m, ToolMessage)}
            return [call for call in asked.tool_calls if call["id"] not in answered]
    return []


async def route(state: MessagesState) -> str:
    """`tools_condition`, as a coroutine: LangGraph runs a sync edge function on the loop's executor (a thread hop,
    and a task, after every model call), an async one inline."""
    return tools_condition(state["messages"])  # the list itself: the chatbot has just added its message to it


def build_graph(
    model: BaseChatModel,
    tools: Sequence[BaseTool],
    checkpointer: BaseCheckpointSaver | None = None,
    history_max_messages: int = 40,
    approval_required: frozenset[str] = frozenset(),
) -> CompiledStateGraph:
    """Compile the agent graph; `thread_id` in the run config selects the session's history."""
    return agent_graph(model, tools, history_max_messages, approval_required).compile(checkpointer=checkpointer)


def agent_graph(model: BaseChatModel, tools: Sequence[BaseTool], history_max_messages: int = 40,
                approval_required: frozenset[str] = frozenset(), recall_limit: int = 0) -> StateGraph:
    """The agent graph, uncompiled (the runtime compiles it with its checkpointer). Each model call is given up to
    `recall_limit` of the actor's memories that bear on the turn (the runtime's store). Raises ConfigError if
    `approval_required` names a tool it does not have."""
    unknown = approval_required - {tool.name for tool in tools}
    if unknown:
        raise ConfigError(f"APPROVAL_REQUIRED_TOOLS names no tool of this agent: {', '.join(sorted(unknown))} "
                          f"(its tools: {', '.join(tool.name for tool in tools)})")
    bound = model.bind_tools(list(tools))

    async def chatbot(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        messages = history_window(state["messages"], history_max_messages)
        preferences = config.get("configurable", {}).get("preferences")
        if preferences:
            messages = [preferences_message(preferences), *messages]
        recalled = await recall(messages, recall_limit) if recall_limit else None
        if recalled is not None:
            messages = [recalled, *messages]
        return {"messages": [await bound.ainvoke(messages, config)]}

    graph = StateGraph(MessagesState)
    graph.add_node("chatbot", chatbot)
    node = ToolNode(list(tools), handle_tool_errors=tool_error_message)
    graph.add_node("tools", approval_node(node, approval_required) if approval_required else node)
    graph.add_edge(START, "chatbot")
    graph.add_conditional_edges("chatbot", route)
    graph.add_edge("tools", "chatbot")
    return graph
