"""LangGraphAgentCore: a LangGraph agent served as an AWS Bedrock AgentCore Runtime entrypoint over SSE.

    from bedrock import AgentClient, build_app, Settings, stream_agent

The names below load on first use (PEP 562): `python -m bedrock.agent_runtime` is on the cold-start path
of every new AgentCore session, and importing this package must cost it nothing.

Layers, each a folder: `wire/` (events and frames), `core/` (the agent and its turns), `server/` (HTTP),
`offline/` (the local Bedrock-compatible model), `client/` (AgentClient). ARCHITECTURE.md tells where a
change goes.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    # the in-process API (the guide's)
    "stream_agent": "bedrock.agent_runtime",
    "invoke_agent": "bedrock.agent_runtime",
    "ainvoke_agent": "bedrock.agent_runtime",
    # building your own
    "Settings": "bedrock.config",
    "build_app": "bedrock.server.app",
    "build_agent": "bedrock.core.build",
    "Agent": "bedrock.core.turn",
    # errors
    "AgentError": "bedrock.errors",
    "PayloadError": "bedrock.errors",
    # events and callbacks
    "SSEEvent": "bedrock.wire.events",
    "BaseStreamCallback": "bedrock.core.hooks",
    "MetricsCallback": "bedrock.core.metrics",
    # the client
    "AgentClient": "bedrock.client",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bedrock' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
