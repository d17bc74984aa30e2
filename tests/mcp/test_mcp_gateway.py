"""The agent reaching an OAuth-guarded MCP server (testkit's, as AgentCore Gateway with its identity provider):
client credentials from the environment, one token for fifty turns at once, a refused token replaced once — and
neither the secret nor a token in any log line, span or event, even at DEBUG with content capture on."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.core.conventions import MCP_SERVER, TOOL_NAME, TOOL_TYPE
from bedrock.server.app import build_app
from bedrock.server.runtime import Runtime
from testkit.mcp_server import CLIENT_SECRET, McpServer
from testkit.telemetry import Collected


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[McpServer]:
    with McpServer(tmp_path / "gw", oauth=True) as server:
        yield server


def stats(gateway: McpServer) -> dict[str, int]:
    return httpx.get(f"{gateway.base}/admin/stats").json()


def tokens_issued_so_far(gateway: McpServer) -> int:
    return stats(gateway)["token_fetches"]


async def test_fifty_turns_share_one_token_a_401_refreshes_once_and_nothing_leaks(gateway, monkeypatch, caplog):
    monkeypatch.setenv("GW_CLIENT_SECRET", CLIENT_SECRET)
    caplog.set_level(logging.DEBUG)
    servers = {"gw": {"transport": "streamable_http", "url": gateway.url, "auth": {
        "type": "client_credentials", "token_url": f"{gateway.base}/token", "client_id": "agent",
        "client_secret": "${GW_CLIENT_SECRET}", "scopes": ["tools"]}}}
    collected = Collected()
    config = Settings(memory_backend="memory", mcp_servers=json.dumps(servers), otel_capture_content=True)
    runtime: Runtime = build_app(config, agent=build_agent(config, telemetry=collected.telemetry(config))).state.runtime
    try:
        assert tokens_issued_so_far(gateway) == 1  # the tools were listed with it, at the build
        turns = await asyncio.gather(*(runtime.ainvoke({"prompt": f'add({{"a": {i}, "b": 1}})',
                                                        "session_id": f"s-{i}"}) for i in range(50)))
        assert [t["output"] for t in turns] == [f"add returned: {i + 1}" for i in range(50)]
        assert tokens_issued_so_far(gateway) == 1 and stats(gateway)["unauthorized"] == 0

        httpx.post(f"{gateway.base}/admin/revoke")  # the token is refused from now on
        events = [e async for e in runtime.stream({"prompt": 'echo({"text": "again"})', "session_id": "s-after"})]
        assert events[-1].data["output"] == "echo returned: echo: again"
        assert tokens_issued_so_far(gateway) == 2 and stats(gateway)["unauthorized"] == 1
    finally:
        runtime.get_agent().close()

    tool_spans = [s for s in collected.spans() if s.name.startswith("execute_tool")]
    assert len(tool_spans) == 51 and all(s.attributes[MCP_SERVER] == "gw" and s.attributes[TOOL_TYPE] == "extension"
                                         for s in tool_spans)
    assert {s.attributes[TOOL_NAME] for s in tool_spans} == {"add", "echo"}
    seen = caplog.text + json.dumps([e.data for e in events]) + json.dumps(
        [dict(s.attributes or {}) | {"events": [dict(ev.attributes or {}) for ev in s.events]}
         for s in collected.spans()], default=str)
    assert CLIENT_SECRET not in seen and "tok-" not in seen  # every token the server issues starts "tok-"


async def test_a_wrong_secret_leaves_the_tools_out_and_names_the_refusal_not_the_secret(gateway, monkeypatch, caplog):
    monkeypatch.setenv("GW_CLIENT_SECRET", "not-the-secret-1234")
    servers = {"gw": {"transport": "streamable_http", "url": gateway.url, "auth": {
        "type": "client_credentials", "token_url": f"{gateway.base}/token", "client_id": "agent",
        "client_secret": "${GW_CLIENT_SECRET}"}}}
    config = Settings(memory_backend="memory", mcp_servers=json.dumps(servers))
    agent = build_agent(config)
    try:
        assert set(agent.graph.nodes["tools"].bound.tools_by_name) == {"calculator", "remember"}  # the built-in tools alone
    finally:
        agent.close()
    assert ("unavailable: no credentials: the token endpoint refused the client credentials (invalid_client)"
            in caplog.text) and "not-the-secret-1234" not in caplog.text




class VaultStandIn:
    """AgentCore Identity's data plane on 127.0.0.1 (botocore reaches it by AWS_ENDPOINT_URL_BEDROCK_AGENTCORE): the
    token vault answers GetResourceOauth2Token with a token the gateway issued (fetched with the client secret that
    only the vault holds), for a workload access token it knows; GetWorkloadAccessToken gives the role's own."""

    def __init__(self, gateway: McpServer) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        from bedrock.offline.background import BackgroundServer

        self.gateway = gateway
        self.workload_tokens: list[str] = []
        self.server = BackgroundServer(Starlette(routes=[
            Route("/identities/oauth2/token", self.token, methods=["POST"]),
            Route("/identities/GetWorkloadAccessToken", self.workload, methods=["POST"])]))

    async def token(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        body = await request.json()
        self.workload_tokens.append(body["workloadIdentityToken"])
        if body["resourceCredentialProviderName"] != "gw-provider" or not body["workloadIdentityToken"].startswith(
                "wat-"):
            return JSONResponse({"message": "denied"}, status_code=403,
                                headers={"x-amzn-ErrorType": "AccessDeniedException"})
        async with httpx.AsyncClient() as client:
            issued = await client.post(f"{self.gateway.base}/token", auth=("agent", CLIENT_SECRET),
                                       data={"grant_type": "client_credentials"})
        return JSONResponse({"accessToken": issued.json()["access_token"]})

    async def workload(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        assert (await request.json()) == {"workloadName": "my-agent"}
        return JSONResponse({"workloadAccessToken": "wat-for-role"})


def test_a_served_agent_reaches_the_gateway_through_agentcore_identity_with_no_secret(gateway, session_id):
    """The request's workload access token (the header AgentCore sets) → the vault → the gateway's token; the tools
    listed at startup with the role's own workload token; a refused token fetched again with the newest request's."""
    from testkit.live_server import LiveServer

    vault = VaultStandIn(gateway)
    servers = {"gw": {"transport": "streamable_http", "url": gateway.url, "auth": {
        "type": "agentcore_identity", "provider": "gw-provider", "scopes": ["invoke"], "workload_name": "my-agent"}}}
    try:
        env = {"MCP_SERVERS": json.dumps(servers), "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE": vault.server.start()}
        with LiveServer(env) as live:
            def ask(prompt: str, wat: str) -> dict[str, Any]:
                return httpx.post(f"{live.url}/invocations", headers={"WorkloadAccessToken": wat}, timeout=30,
                                  json={"prompt": prompt, "session_id": session_id}).json()

            assert ask('add({"a": 1, "b": 2})', "wat-request-1")["output"] == "add returned: 3"
            httpx.post(f"{gateway.base}/admin/revoke")
            assert ask('add({"a": 2, "b": 2})', "wat-request-2")["output"] == "add returned: 4"
            log = live.stop()
        # startup (no request: the role's own), then the 401's refresh with the newest request's token
        assert vault.workload_tokens == ["wat-for-role", "wat-request-2"]
        assert stats(gateway)["unauthorized"] == 1 and CLIENT_SECRET not in log and "tok-" not in log
    finally:
        vault.server.stop()


async def test_an_mcp_error_result_is_an_error_span_and_counted(tmp_path, session_id):
    """A tool's own failure (an MCP error result, not an exception): its execute_tool span ends in error, the tool
    errors metric counts it, and `metrics.errors` on agent_end."""
    from bedrock.core.conventions import ERROR_TYPE
    from opentelemetry.trace import StatusCode

    with McpServer(tmp_path / "plain") as server:
        collected = Collected()
        config = Settings(memory_backend="memory", mcp_servers=json.dumps(
            {"plain": {"transport": "streamable_http", "url": server.url}}))
        runtime: Runtime = build_app(config, agent=build_agent(config, telemetry=collected.telemetry(config))
                                     ).state.runtime
        try:
            result = await runtime.ainvoke({"prompt": 'fail({"message": "no"})', "session_id": session_id})
        finally:
            await runtime.get_agent().drain()
            runtime.get_agent().close()
    assert result["metrics"]["errors"] == 1
    span, = [s for s in collected.spans() if s.name == "execute_tool fail"]
    assert span.status.status_code == StatusCode.ERROR and span.attributes[ERROR_TYPE] == "tool_error"
    assert span.attributes[MCP_SERVER] == "plain"
    assert [p.value for p in collected.points("langgraph_agentcore.tool.errors")] == [1]
