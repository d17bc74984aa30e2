"""Our pending interrupts as AG-UI's `Interrupt` (the table in `bedrock.wire.agui`): a tool approval of the
built-in agent, LangChain's HumanInTheLoopMiddleware (per call or batched), any other `interrupt(value)`."""

from __future__ import annotations

import json
from typing import Any

from ag_ui.core import Interrupt

# The answer an approval takes (AG-UI's recommended schema for tool-call interrupts that allow edits); our
# graph replaces the call's args with editedArgs, as AG-UI says (a full replacement, not a merge).
APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean"},
        "editedArgs": {"type": "object", "description": "Full replacement of the tool call's args (not merged)."},
    },
    "required": ["approved"],
}
HITL_REASON = "langchain:human_in_the_loop"  # AG-UI: a custom reason is namespaced `<framework>:<name>`
HITL_DECISIONS = ("approve", "edit", "reject", "respond")  # the middleware's decision types (all: `True`)


def readable(value: Any) -> str:
    """An interrupt's value as a person reads it: a string as it is, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def call_key(name: Any, args: Any) -> str:
    """What ties a reviewed action (name, args) to the tool call it reviews."""
    return json.dumps([name, args], sort_keys=True, default=str)


def hitl_requests(value: Any) -> list[dict[str, Any]] | None:
    """The action requests of a HumanInTheLoopMiddleware interrupt (batched), else None."""
    if isinstance(value, dict) and isinstance(value.get("action_requests"), list) \
            and all(isinstance(request, dict) for request in value["action_requests"]):
        return value["action_requests"]
    return None


def is_hitl_call(value: Any) -> bool:
    """Whether a value is the middleware's per-call review (`interrupt_mode="per_call"`): a ToolApprovalRequest."""
    return isinstance(value, dict) and value.get("type") == "tool_approval" and isinstance(value.get("name"), str)


def _allowed(value: dict[str, Any], name: Any) -> list[str]:
    for config in value.get("review_configs") or ():
        if isinstance(config, dict) and config.get("action_name") == name:
            allowed = config.get("allowed_decisions")
            if isinstance(allowed, list) and allowed:
                return [d for d in HITL_DECISIONS if d in allowed]
    return list(HITL_DECISIONS)


def decision_schema(name: Any, allowed: list[str]) -> dict[str, Any]:
    """The JSON Schema of one HumanInTheLoopMiddleware decision about tool `name` (its allowed types only)."""
    def of(kind: str, **properties: Any) -> dict[str, Any]:
        required = ["type", *(key for key in properties if key != "message" or kind == "respond")]
        return {"type": "object", "properties": {"type": {"const": kind}, **properties}, "required": required}

    variants = {
        "approve": of("approve"),
        "edit": of("edit", edited_action={
            "type": "object", "properties": {"name": {"const": name}, "args": {"type": "object"}},
            "required": ["name", "args"], "description": "The call to run instead (its args replace the model's)."}),
        "reject": of("reject", message={"type": "string", "description": "Why (optional), for the model."}),
        "respond": of("respond", message={"type": "string", "description": "The tool's result, from a person."}),
    }
    chosen = [variants[kind] for kind in allowed]
    return chosen[0] if len(chosen) == 1 else {"oneOf": chosen}


def _where(pending: dict[str, Any]) -> dict[str, Any]:
    return {"node": pending.get("node") or "", "namespace": pending.get("namespace") or [],
            "value": pending.get("value")}


def interrupt_of(pending: dict[str, Any], calls: dict[str, str]) -> Interrupt:
    """One of our pending interrupts as AG-UI's (see the module's table); `calls`: the tool calls seen in this run,
    call_key → id."""
    value: Any = pending.get("value")
    if "tool_name" in pending:  # the built-in agent's approval
        args = pending.get("args") or {}
        return Interrupt(
            id=pending["interrupt_id"],
            reason="tool_call",
            tool_call_id=pending.get("tool_call_id"),
            message=f"Run {pending.get('tool_name')}({json.dumps(args, ensure_ascii=False)})?",  # read by a person
            response_schema=APPROVAL_SCHEMA,
            metadata={"toolName": pending.get("tool_name"), "args": args},
        )
    own_schema = pending.get("response_schema")
    if is_hitl_call(value):
        name = value["name"]
        return Interrupt(id=pending["interrupt_id"], reason="tool_call", tool_call_id=value.get("tool_call_id"),
                         message=value.get("description") or f"Run {name}?",
                         response_schema=own_schema if isinstance(own_schema, dict) else decision_schema(
                             name, list(HITL_DECISIONS)),
                         metadata=_where(pending))
    requests = hitl_requests(value)
    if requests is not None:
        items = [decision_schema(r.get("name"), _allowed(value, r.get("name"))) for r in requests]
        schema = {"type": "object", "required": ["decisions"], "properties": {"decisions": {
            "type": "array", "prefixItems": items, "items": False, "minItems": len(items),
            "description": "One decision per action request, in their order."}}}
        call_id = calls.get(call_key(requests[0].get("name"), requests[0].get("args"))) if len(requests) == 1 else None
        message = "\n\n".join(str(r.get("description") or f"Run {r.get('name')}?") for r in requests)
        return Interrupt(id=pending["interrupt_id"], reason=HITL_REASON, tool_call_id=call_id, message=message,
                         response_schema=schema, metadata=_where(pending))
    return Interrupt(id=pending["interrupt_id"], reason="input_required", message=readable(value),
                     response_schema=own_schema if isinstance(own_schema, dict) else None, metadata=_where(pending))
