"""build_agent(settings): the graph (loader.py: AGENT_GRAPH, langgraph.json or the built-in agent), given the store's
checkpointer, and the model as configured — put together as an Agent."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from bedrock.config import Settings
from bedrock.core.loader import GraphLoadError, GraphSource, apply_env, find_graph, load_graph
from bedrock.core.store_section import StoreSection
from bedrock.core.model import OFFLINE_CREDENTIALS, LazyEmbeddings, make_embeddings, make_model
from bedrock.core.turn import Agent
from bedrock.store import Store, open_store
from bedrock.store.long_term import LongTermOptions

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from bedrock.core.telemetry import Telemetry


def build_agent(settings: Settings, endpoint_url: str | None = None, telemetry: Telemetry | None = None,
                source: GraphSource | None = None) -> Agent:
    """An Agent for `settings`; `Agent.close()` releases what was started for it.

    `MODEL_PROVIDER=offline` without an `endpoint_url` starts the local Bedrock-compatible endpoint here (the
    one place it is started), and the agent stops it when closed. `telemetry`: where its turns report (default:
    the global OpenTelemetry providers). `source`: the graph (default: the one the settings name).
    """
    source = source or find_graph(settings)
    if not source.built_in and settings.built_in_variables:
        names = ", ".join(settings.built_in_variables)
        raise GraphLoadError(f"{names}: the built-in agent's settings, which {source} would not apply (add LangChain's "
                             "HumanInTheLoopMiddleware or your own history window to your graph); unset them")
    apply_env(source)
    closers = []
    if settings.model_provider == "offline" and endpoint_url is None:
        # Imported here: a Bedrock cold start has no use for it.
        from bedrock.offline.endpoint import OfflineBedrockEndpoint

        endpoint = OfflineBedrockEndpoint(settings.offline_token_delay_ms).start()
        endpoint_url = endpoint.url
        closers.append(endpoint.stop)
    if settings.model_provider == "offline" and not source.built_in:
        _export_offline(settings, endpoint_url)
    store: Store | None = None
    try:
        store = open_store(settings, long_term_options(settings, endpoint_url, source.store))
        offer = McpOffer(settings, source)
        graph = load_graph(source, settings, store.checkpointer, lambda: make_model(settings, endpoint_url),
                           offer.tools, own_store=store.long_term is None)
        offer.check_taken()
        agent = Agent(graph, settings, store, telemetry=telemetry, built_in=source.built_in)
        agent.on_drain.extend(offer.releases)
    except BaseException:
        if store is not None:
            store.close()
        for close in closers:
            close()
        raise
    agent.closers.extend(closers)
    return agent


def long_term_options(settings: Settings, endpoint_url: str | None,
                      section: StoreSection | None = None) -> LongTermOptions | None:
    """How the actors' long-term memory is made (None: LONG_TERM_MEMORY=off): Bedrock's embeddings for semantic
    search, unless EMBEDDING_MODEL_ID is `none` (then recall is by recency); langgraph.json's `store` `section`
    beneath the environment's variables."""
    if not settings.long_term_memory:
        return None
    if section is not None:
        settings = section.beneath(settings)
    embeddings = None
    if settings.embedding_model_id.lower() != "none":
        embeddings = LazyEmbeddings(lambda: make_embeddings(settings, endpoint_url))
    options = LongTermOptions(embeddings, settings.embedding_dimensions, settings.memory_ttl_days)
    return section.options(options) if section is not None else options


class McpOffer:
    """MCP_SERVERS' tools for a factory that asks for `mcp_tools`: listed then, once. A graph that never asks while
    MCP_SERVERS is set is refused (the servers would be configured for nothing, silently)."""

    def __init__(self, settings: Settings, source: GraphSource) -> None:
        self.settings, self.source = settings, source
        self.taken = False
        self.releases: list[Any] = []  # what Agent.drain awaits: the tools' idle sessions closed

    def tools(self) -> list[Any]:
        self.taken = True
        if not self.settings.mcp_servers:
            return []
        from bedrock.mcp import mcp_tools_for  # only when MCP_SERVERS is set: a cold start without it pays nothing

        loaded = mcp_tools_for(self.settings, base=self.source.base)
        if loaded.sessions is not None:
            self.releases.append(loaded.sessions.close_idle)
        logger.info("MCP tools: %s%s", ", ".join(tool.name for tool in loaded.tools) or "none",
                    f" (unavailable: {', '.join(loaded.unavailable)})" if loaded.unavailable else "")
        return loaded.tools

    def check_taken(self) -> None:
        if self.settings.mcp_servers and not self.taken:
            raise GraphLoadError(f"MCP_SERVERS is set, but {self.source} takes no MCP tools: give its factory an "
                                 "`mcp_tools` parameter (a list of LangChain tools) and pass them to the agent")


def _export_offline(settings: Settings, endpoint_url: str | None) -> None:
    """Offline, a graph that makes its own ChatBedrockConverse (as LangChain's docs do) reaches the local endpoint
    unchanged: botocore's endpoint variable, a region, and dummy credentials unless some are set. Before the
    user's module is imported, since a module-level model reads them when it is made."""
    assert endpoint_url is not None
    os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = endpoint_url
    os.environ.setdefault("AWS_DEFAULT_REGION", settings.aws_region)
    os.environ.setdefault("AWS_REGION", settings.aws_region)
    if not os.environ.get("AWS_ACCESS_KEY_ID"):
        os.environ["AWS_ACCESS_KEY_ID"] = OFFLINE_CREDENTIALS["aws_access_key_id"]
        os.environ["AWS_SECRET_ACCESS_KEY"] = OFFLINE_CREDENTIALS["aws_secret_access_key"]
