"""The OpenTelemetry GenAI semantic conventions as this package uses them: span, attribute and metric names, the
advised histogram buckets, and the conventions' message JSON. One place, so a rename in the conventions is one
edit here (tests/core/test_telemetry.py checks these names against `opentelemetry-semantic-conventions`)."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import BaseMessage

SCOPE = "langgraph_agentcore"
AGENT_NAME = "langgraph_agentcore"
PROVIDER = "aws.bedrock"  # ChatBedrockConverse, offline too (the offline endpoint answers as Bedrock would)

# The GenAI semantic conventions' names (opentelemetry-semantic-conventions has them, but only the SDK brings it).
OPERATION = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
AGENT = "gen_ai.agent.name"
CONVERSATION = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
TOKEN_TYPE = "gen_ai.token.type"
TOOL_NAME = "gen_ai.tool.name"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
ERROR_TYPE = "error.type"
SESSION = "session.id"  # what AgentCore's GenAI observability groups spans by
USER = "user.id"
# Ours: what the conventions have no name for.
RUN = "langgraph_agentcore.run.id"
OUTCOME = "langgraph_agentcore.turn.outcome"  # completed, interrupted, failed or cancelled
MCP_SERVER = "langgraph_agentcore.mcp.server"  # an MCP tool's server, by its name in MCP_SERVERS

# The conventions' advised buckets: seconds for durations, powers of 4 for token counts.
SECONDS_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]


def role(message: BaseMessage) -> str:
    return {"human": "user", "ai": "assistant", "tool": "tool", "system": "system"}.get(message.type, message.type)


def text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def messages_json(messages: Any) -> str:
    """Messages as the conventions' JSON: `[{"role", "parts": [{"type": "text", "content"}]}]`."""
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]} for role, text in messages],
                      ensure_ascii=False)
