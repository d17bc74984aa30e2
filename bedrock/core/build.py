"""build_agent(settings): the model, tools, store (checkpointer, owners, locks) and graph as configured, put
together as an Agent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bedrock.config import ConfigError, Settings
from bedrock.core.graph import build_graph
from bedrock.core.model import make_model
from bedrock.core.tools import default_tools
from bedrock.core.turn import Agent
from bedrock.store import Store, open_store

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
    store: Store | None = None
    try:
        store = open_store(settings)
        tools = default_tools()
        unknown = set(settings.approval_required_tools) - {tool.name for tool in tools}
        if unknown:
            raise ConfigError(f"APPROVAL_REQUIRED_TOOLS names no tool of this agent: {', '.join(sorted(unknown))} "
                              f"(its tools: {', '.join(tool.name for tool in tools)})")
        graph = build_graph(make_model(settings, endpoint_url), tools, store.checkpointer,
                            settings.history_max_messages, frozenset(settings.approval_required_tools))
        agent = Agent(graph, settings, store, telemetry=telemetry)  # closes the store when it is closed
    except BaseException:
        if store is not None:
            store.close()
        for close in closers:
            close()
        raise
    agent.closers.extend(closers)
    return agent

