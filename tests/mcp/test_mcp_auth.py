"""Outbound credentials: OAuth 2.0 client credentials against a real token endpoint (testkit's MCP server with
--oauth), fetched once for many callers, again before expiry and after a 401; AgentCore Identity against a local
stand-in of its data plane (botocore's endpoint override); no secret or token in any error."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bedrock.config import ConfigError
from bedrock.mcp import auth as auth_module
from bedrock.mcp.auth import (AgentCoreIdentity, ClientCredentials, CredentialError, StaticBearer, TokenAuth,
                              outbound_auth)
from bedrock.offline.background import BackgroundServer
from testkit.mcp_server import CLIENT_ID, CLIENT_SECRET, McpServer


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[McpServer]:
    with McpServer(tmp_path, oauth=True) as server:
        yield server


def credentials(gateway: McpServer, secret: str = CLIENT_SECRET) -> ClientCredentials:
    return ClientCredentials("gw", f"{gateway.base}/token", CLIENT_ID, secret, ["tools"], {})


def stats(gateway: McpServer) -> dict[str, int]:
    return httpx.get(f"{gateway.base}/admin/stats").json()


async def test_fifty_callers_at_once_share_one_token_fetch(gateway: McpServer):
    source = credentials(gateway)
    tokens = await asyncio.gather(*(source.token() for _ in range(50)))
    assert len(set(tokens)) == 1 and source.fetches == 1 and stats(gateway)["token_fetches"] == 1


async def test_a_token_near_its_expiry_is_fetched_again_before_use(gateway: McpServer, monkeypatch):
    source = credentials(gateway)
    first = await source.token()
    assert await source.token() == first and source.fetches == 1
    monkeypatch.setattr(source, "_expires_at", time.time() + auth_module.REFRESH_LEEWAY_S - 1)  # within the leeway
    second = await source.token()
    assert second != first and source.fetches == 2 and stats(gateway)["token_fetches"] == 2


async def test_a_401_gets_one_new_token_and_one_retry(gateway: McpServer):
    source = credentials(gateway)
    async with httpx.AsyncClient(auth=TokenAuth(source)) as client:
        # An MCP request with a valid token reaches FastMCP (which answers it; its status is not the gate's 401).
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        headers = {"Accept": "application/json, text/event-stream"}
        assert (await client.post(gateway.url, json=body, headers=headers)).status_code != 401
        httpx.post(f"{gateway.base}/admin/revoke")  # the server forgets the token: the next request gets a 401
        again = await client.post(gateway.url, json=body, headers=headers)
    assert again.status_code != 401 and source.fetches == 2
    assert stats(gateway)["unauthorized"] == 1  # refused once, then sent again with the new token


async def test_concurrent_401s_refresh_once(gateway: McpServer):
    source = credentials(gateway)
    stale = await source.token()
    fresh = await asyncio.gather(*(source.refresh(stale) for _ in range(20)))
    assert len(set(fresh)) == 1 and fresh[0] != stale and source.fetches == 2


async def test_a_refused_client_is_a_credential_error_without_the_secret(gateway: McpServer):
    with pytest.raises(CredentialError) as raised:
        await credentials(gateway, secret="wrong-secret-value").token()
    assert "invalid_client" in str(raised.value) and "wrong-secret-value" not in str(raised.value)
    unreachable = ClientCredentials("gw", "http://127.0.0.1:9/token", CLIENT_ID, CLIENT_SECRET, [], {})
    with pytest.raises(CredentialError, match=r"the token endpoint failed \(ConnectError\)"):
        await unreachable.token()


async def test_a_static_bearer_is_sent_and_never_refreshed():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(401)

    async with httpx.AsyncClient(auth=TokenAuth(StaticBearer("gw", "static-tok")),
                                 transport=httpx.MockTransport(handler)) as client:
        assert (await client.get("http://gw/mcp")).status_code == 401
    assert seen == ["Bearer static-tok"]  # a 401 is the answer: there is no other token to try


@pytest.mark.parametrize("spec, named", [
    ({"type": "basic"}, "`type` must be"),
    ({"type": "bearer"}, "`token` must be"),
    ({"type": "bearer", "token": "t", "extra": 1}, "unknown keys extra"),
    ({"type": "client_credentials", "token_url": "file:///x", "client_id": "a", "client_secret": "b"}, "`token_url`"),
    ({"type": "client_credentials", "token_url": "https://t", "client_id": "a", "client_secret": "b",
      "scopes": "x"}, "`scopes` must be"),
    ({"type": "agentcore_identity"}, "`provider` must be"),
])
def test_an_auth_spec_mistake_is_named(spec: dict[str, Any], named: str):
    with pytest.raises(ConfigError, match=named):
        outbound_auth("gw", spec, "us-east-1")


# --- AgentCore Identity: GetResourceOauth2Token (and GetWorkloadAccessToken) on a local stand-in ----------------

class IdentityStandIn:
    """The data plane's two calls as botocore sends them (rest-json), recording what they received."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.issued = 0
        app = Starlette(routes=[Route("/identities/oauth2/token", self.token, methods=["POST"]),
                                Route("/identities/GetWorkloadAccessToken", self.workload, methods=["POST"])])
        self.server = BackgroundServer(app)

    async def token(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.received.append(("token", body))
        if body.get("workloadIdentityToken") not in ("wat-from-request", "wat-for-role"):
            return JSONResponse({"message": "bad workload token"}, status_code=403,
                                headers={"x-amzn-ErrorType": "AccessDeniedException"})
        self.issued += 1
        token = jwt.encode({"exp": int(time.time()) + 3600, "n": self.issued}, "k" * 32, algorithm="HS256")
        return JSONResponse({"accessToken": token})

    async def workload(self, request: Request) -> JSONResponse:
        self.received.append(("workload", await request.json()))
        return JSONResponse({"workloadAccessToken": "wat-for-role"})


@pytest.fixture
def identity(monkeypatch) -> Iterator[IdentityStandIn]:
    stand_in = IdentityStandIn()
    monkeypatch.setattr(auth_module, "_latest_workload_token", [""])  # no request has made a call yet
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", stand_in.server.start())
    yield stand_in
    stand_in.server.stop()


async def test_identity_exchanges_the_requests_workload_token_once_for_many_calls(identity: IdentityStandIn):
    from bedrock_agentcore.runtime.context import BedrockAgentCoreContext

    source = AgentCoreIdentity("gw", "gateway-oauth", ["invoke"], "", "us-east-1")
    BedrockAgentCoreContext.set_workload_access_token("wat-from-request")  # as the SDK does for each request
    tokens = await asyncio.gather(*(source.token() for _ in range(20)))
    assert len(set(tokens)) == 1 and identity.issued == 1
    assert identity.received == [("token", {"resourceCredentialProviderName": "gateway-oauth", "scopes": ["invoke"],
                                            "oauth2Flow": "M2M", "workloadIdentityToken": "wat-from-request"})]
    assert source._expires_at is not None and source._expires_at > time.time() + 3000  # the JWT's own exp


async def test_identity_outside_a_request_uses_the_workload_name_or_says_what_is_missing(identity: IdentityStandIn):
    from bedrock_agentcore.runtime.context import BedrockAgentCoreContext

    BedrockAgentCoreContext.set_workload_access_token("")  # not in a request (startup)
    with pytest.raises(CredentialError, match="set `workload_name`"):
        await AgentCoreIdentity("gw", "gateway-oauth", [], "", "us-east-1").token()
    token = await AgentCoreIdentity("gw", "gateway-oauth", [], "my-agent", "us-east-1").token()
    assert token and identity.received[0] == ("workload", {"workloadName": "my-agent"})
    assert identity.received[1][1]["workloadIdentityToken"] == "wat-for-role"


async def test_identity_refusing_is_a_credential_error_with_its_code(identity: IdentityStandIn):
    from bedrock_agentcore.runtime.context import BedrockAgentCoreContext

    BedrockAgentCoreContext.set_workload_access_token("forged")
    with pytest.raises(CredentialError, match=r"refused the token request \(AccessDeniedException\)"):
        await AgentCoreIdentity("gw", "gateway-oauth", [], "", "us-east-1").token()
    assert json.dumps(identity.received).count("forged") == 1
