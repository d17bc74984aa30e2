"""LangChain messages as the wire shows them: their text, and the `data` of an `agent_step` event."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage


def message_text(message: BaseMessage) -> str:
    """The text of a message whose content is a string or a list of content blocks."""
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)


def step_data(step: int, node: str, message: BaseMessage) -> dict[str, Any]:
    """The `data` of an `agent_step` event for one message."""
    data: dict[str, Any] = {"step": step, "node": node, "content": message_text(message), "type": message.type}
    _add_calls(data, message)
    return data


def message_data(message: BaseMessage) -> dict[str, Any]:
    """A message as a graph's state shows on the wire (an `update`'s values, `include_state`)."""
    data: dict[str, Any] = {"type": message.type, "content": message_text(message)}
    if message.id is not None:
        data["id"] = message.id
    _add_calls(data, message)
    return data


def _add_calls(data: dict[str, Any], message: BaseMessage) -> None:
    if isinstance(message, AIMessage) and message.tool_calls:
        data["tool_calls"] = [{"id": c["id"], "name": c["name"], "args": c["args"]} for c in message.tool_calls]
    elif isinstance(message, ToolMessage):
        data.update(tool_name=message.name, tool_call_id=message.tool_call_id, status=message.status)
