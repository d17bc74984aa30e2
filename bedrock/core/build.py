"""build_agent(settings): the model, tools, checkpointer and graph as configured, put together as an Agent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bedrock.config import ConfigError, Settings
from bedrock.core.graph import build_graph
from bedrock.core.memory import ThreadedSqliteSaver, make_checkpointer
from bedrock.core.sessions import FileLocks, SharedLocks
from bedrock.core.model import make_model
from bedrock.core.tools import default_tools
from bedrock.core.turn import Agent

if TYPE_CHECKING:
    from bedrock.core.telemetry import Telemetry


def build_agent(settings: Settings, endpoint_url: str | None = None, telemetry: Telemetry | None = None) -> Agent:
    """An Agent for `settings`; `Agent.close()` releases what was started for it.

    `MODEL_PROVIDER=offline` without an `endpoint_url` starts the local Bedrock-compatible endpoint here (the
    one place it is started), and the agent stops it when closed. `telemetry`: where its turns report (default:
    the global OpenTelemetry providers).
    """
    closers = []
    if settings.model_provider == "offline" and endpoint_url is None:
        # Imported here: a Bedrock cold start has no use for it.
        from bedrock.offline.endpoint import OfflineBedrockEndpoint

        endpoint = OfflineBedrockEndpoint(settings.offline_token_delay_ms).start()
        endpoint_url = endpoint.url
        closers.append(endpoint.stop)
    try:
        checkpointer = make_checkpointer(settings)
        tools = default_tools()
        unknown = set(settings.approval_required_tools) - {tool.name for tool in tools}
        if unknown:
            raise ConfigError(f"APPROVAL_REQUIRED_TOOLS names no tool of this agent: {', '.join(sorted(unknown))} "
                              f"(its tools: {', '.join(tool.name for tool in tools)})")
        graph = build_graph(make_model(settings, endpoint_url), tools, checkpointer,
                            settings.history_max_messages, frozenset(settings.approval_required_tools))
        agent = Agent(graph, settings, telemetry=telemetry, shared_locks=shared_locks(settings, checkpointer))
    except BaseException:
        for close in closers:
            close()
        raise
    close_saver = getattr(checkpointer, "close", None)
    if callable(close_saver):
        closers.append(close_saver)
    if agent.locks.shared is not None:
        closers.append(agent.locks.shared.close)
    agent.closers.extend(closers)
    return agent


def shared_locks(settings: Settings, checkpointer: Any) -> SharedLocks | None:
    """The session lock other processes honour, for the memories they can share: SQLite (processes on one host),
    PostgreSQL (replicas anywhere). None for in-process memory, and for AgentCore Memory (AgentCore routes a
    session to one microVM)."""
    if isinstance(checkpointer, ThreadedSqliteSaver):
        return FileLocks(settings.memory_path + ".locks")
    if type(checkpointer).__name__ == "ThreadedPostgresSaver":
        from bedrock.core.postgres import AdvisoryLocks

        return AdvisoryLocks(settings.database_url)
    return None
