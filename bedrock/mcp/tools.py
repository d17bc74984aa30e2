"""The tools of the MCP servers MCP_SERVERS names, loaded once per process by langchain-mcp-adapters.

The tools are listed with the adapters' own sessions; each call then goes through CallBounds (calls.py) on a kept
session (sessions.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool

from bedrock.config import ConfigError, DependencyUnavailable, Settings
from bedrock.mcp.auth import outbound_auth
from bedrock.mcp.calls import CallBounds, close_pool, failure, mcp_http_client
from bedrock.mcp.servers import HTTP_TRANSPORTS, ServerSpec, read_servers
from bedrock.mcp.sessions import SessionPools

logger = logging.getLogger(__name__)

# Bedrock's (Converse's) tool names: a server's tool named otherwise would fail every model call of every turn.
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
SERVER_METADATA = "mcp_server"  # the tool's metadata key naming its server (telemetry's execute_tool spans read it)


@dataclass
class McpTools:
    """What the servers offered: the tools, and the servers that could not be reached (name → why)."""

    tools: list[BaseTool] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    sessions: SessionPools | None = None  # the kept sessions the tools call through


def mcp_tools_for(settings: Settings, env: Mapping[str, str] | None = None, base: Path | None = None) -> McpTools:
    """The servers' tools for `settings` (blocking: they are listed on a loop of their own, on a thread of its own,
    since the build may be on a thread whose loop runs, an async factory's)."""
    return _run(load(settings, os.environ if env is None else env, base))


def _run(coroutine: Any) -> Any:
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, name="mcp-tools")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


async def load(settings: Settings, env: Mapping[str, str], base: Path | None = None) -> McpTools:
    """List every server's tools at once, each within MCP_TOOL_TIMEOUT_S. A server that cannot be reached is left
    out and logged (MCP_REQUIRED=1: a ConfigError). Tool names Bedrock refuses, or met twice, are ConfigErrors."""
    if not settings.mcp_servers:
        return McpTools()
    servers = read_servers(settings.mcp_servers, env, base)
    from langchain_mcp_adapters.client import MultiServerMCPClient

    connections: dict[str, Any] = {}
    for server in servers:
        connections[server.name] = dict(server.connection)
        if server.transport in HTTP_TRANSPORTS:
            connections[server.name]["httpx_client_factory"] = mcp_http_client
        if server.auth is not None:
            connections[server.name]["auth"] = outbound_auth(server.name, server.auth, settings.aws_region)
    sessions = SessionPools(connections)
    bounds = CallBounds(sessions.call, settings.mcp_tool_timeout_s, settings.max_tool_result_bytes)
    client = MultiServerMCPClient(connections, tool_interceptors=[bounds], tool_name_prefix=settings.mcp_tool_prefix)
    try:
        listed = await asyncio.gather(*(_list(client, server, settings.mcp_tool_timeout_s) for server in servers))
    finally:
        await close_pool()
    result = McpTools(sessions=sessions)
    for server, (tools, why) in zip(servers, listed, strict=True):
        if why is not None:
            _unavailable(server, why, settings.mcp_required)
            result.unavailable[server.name] = why
            continue
        for tool in tools:
            tool.metadata = {**(tool.metadata or {}), SERVER_METADATA: server.name}
        result.tools.extend(tools)
    check_names(result.tools)
    return result


async def _list(client: Any, server: ServerSpec, timeout_s: float) -> tuple[list[BaseTool], str | None]:
    try:
        async with asyncio.timeout(timeout_s):
            return await client.get_tools(server_name=server.name), None
    except TimeoutError:
        return [], f"no answer within {timeout_s:g} s (MCP_TOOL_TIMEOUT_S)"
    except Exception as error:
        return [], failure(error)


def _unavailable(server: ServerSpec, why: str, required: bool) -> None:
    if required:
        raise DependencyUnavailable(f"MCP server {server.name!r} ({server.where}) is unavailable: {why}; "
                                    "MCP_REQUIRED=1 refuses to serve without its tools")
    logger.warning("MCP server %r (%s) is unavailable: %s; the agent serves without its tools (MCP_REQUIRED=1 would "
                   "refuse)", server.name, server.where, why)


def check_names(tools: Sequence[BaseTool], others: tuple[str, ...] = ()) -> None:
    """Every tool name one Bedrock takes, and none twice (here or among `others`, the graph's own tools)."""
    seen: dict[str, str] = {name: "the agent itself" for name in others}
    for tool in tools:
        where = f"MCP server {(tool.metadata or {}).get(SERVER_METADATA, '?')!r}"
        if not TOOL_NAME.fullmatch(tool.name):
            raise ConfigError(f"{where} offers a tool named {tool.name[:80]!r}, which Bedrock refuses (1-64 of "
                              "A-Z a-z 0-9 _ -)")
        if tool.name in seen:
            raise ConfigError(f"{where} and {seen[tool.name]} both offer a tool named {tool.name!r}: set "
                              "MCP_TOOL_PREFIX=1 (tools named server_tool) or rename one")
        seen[tool.name] = where
