"""A server's outbound credentials (its `auth` in MCP_SERVERS), as an httpx.Auth the MCP client sends them with.

    {"type": "bearer", "token": "${GATEWAY_TOKEN}"}                  a static bearer token
    {"type": "client_credentials", "token_url": "https://…/token",   OAuth 2.0 client credentials: fetched by Authlib,
     "client_id": "${ID}", "client_secret": "${SECRET}",             kept, fetched again before it expires
     "scopes": ["a", "b"], "audience": "…" (optional)}
    {"type": "agentcore_identity", "provider": "my-gateway-oauth",   AgentCore Identity's token vault: the runtime's
     "scopes": ["…"], "workload_name": "…" (optional)}               workload access token → GetResourceOauth2Token

A token is fetched once for all calls waiting on it (one fetch at a time, per event loop), and again before it
expires (REFRESH_LEEWAY_S) or when the server answers 401 (once, then the request is sent again). No token, secret
or header value is ever logged or put in an error: errors name the server, the step and the failure's type.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Generator, Mapping, Sequence
from typing import Any

import httpx

from bedrock.config import ConfigError

logger = logging.getLogger(__name__)

REFRESH_LEEWAY_S = 60.0  # a token this close to its expiry is fetched again before use (Authlib's default leeway)
TOKEN_FETCH_TIMEOUT_S = 10.0


class CredentialError(Exception):
    """A server's credentials could not be had; the message is safe to show (no secret in it)."""


class TokenSource(ABC):
    """A bearer token, fetched when missing, near expiry, or refused (`refresh`), one fetch at a time."""

    refreshable = True

    def __init__(self, server: str) -> None:
        self.server = server
        self.fetches = 0  # how many times a token was fetched (tests and the bench read it)
        self._token: str | None = None
        self._expires_at: float | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    async def token(self) -> str:
        if self._fresh():
            assert self._token is not None
            return self._token
        async with self._guard():
            return self._token if self._fresh() and self._token is not None else await self._renew()

    async def refresh(self, refused: str) -> str:
        """A token other than `refused`: the one another caller fetched meanwhile, or a new one."""
        async with self._guard():
            if self._token is not None and self._token != refused and self._fresh():
                return self._token
            return await self._renew()

    async def _renew(self) -> str:
        self.fetches += 1
        token, expires_at = await self._fetch()
        self._token, self._expires_at = token, expires_at
        return token

    def _fresh(self) -> bool:
        return self._token is not None and (self._expires_at is None
                                            or time.time() < self._expires_at - REFRESH_LEEWAY_S)

    def _guard(self) -> asyncio.Lock:
        # One lock per event loop: the tools are listed on the build's loop and called on the server's, and an
        # asyncio.Lock belongs to the loop it first waited on.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    @abstractmethod
    async def _fetch(self) -> tuple[str, float | None]:
        """A new token and when it expires (a Unix time; None: not said)."""


class StaticBearer(TokenSource):
    """The configured token, never expiring; a 401 is the answer (there is no other token to try)."""

    refreshable = False

    def __init__(self, server: str, token: str) -> None:
        super().__init__(server)
        self._static = token

    async def _fetch(self) -> tuple[str, float | None]:
        return self._static, None


class ClientCredentials(TokenSource):
    """OAuth 2.0 client credentials (RFC 6749 §4.4), the request and the token's expiry by Authlib."""

    def __init__(self, server: str, token_url: str, client_id: str, client_secret: str, scopes: Sequence[str],
                 extra: Mapping[str, str]) -> None:
        super().__init__(server)
        self.token_url, self.client_id, self._secret = token_url, client_id, client_secret
        self.scopes, self.extra = list(scopes), dict(extra)

    async def _fetch(self) -> tuple[str, float | None]:
        from authlib.integrations.base_client import OAuthError
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        # A client per fetch: fetches are rare (one per token lifetime), and a client's connection pool belongs to
        # one event loop.
        try:
            async with AsyncOAuth2Client(self.client_id, self._secret, scope=" ".join(self.scopes) or None,
                                         timeout=TOKEN_FETCH_TIMEOUT_S) as client:
                token = await client.fetch_token(self.token_url, grant_type="client_credentials", **self.extra)
        except OAuthError as error:  # the endpoint's own error code (invalid_client, invalid_scope…)
            raise CredentialError(f"the token endpoint refused the client credentials ({error.error})") from None
        except Exception as error:
            raise CredentialError(f"the token endpoint failed ({type(error).__name__})") from None
        if not token.get("access_token"):
            raise CredentialError("the token endpoint answered without an access_token")
        expires_at = token.get("expires_at")
        return token["access_token"], float(expires_at) if expires_at else None


class AgentCoreIdentity(TokenSource):
    """AgentCore Identity's token vault, through the bedrock-agentcore SDK's IdentityClient: the workload access token
    AgentCore passed with the request (else, given `workload_name`, one for the runtime's own role), exchanged by
    GetResourceOauth2Token (M2M) for the provider's access token. No secret lives in the agent's environment."""

    def __init__(self, server: str, provider: str, scopes: Sequence[str], workload_name: str, region: str) -> None:
        super().__init__(server)
        self.provider, self.scopes, self.workload_name, self.region = provider, list(scopes), workload_name, region
        self._client: Any = None

    async def _fetch(self) -> tuple[str, float | None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = await asyncio.to_thread(self._exchange)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "ClientError")
            raise CredentialError(f"AgentCore Identity refused the token request ({code})") from None
        except BotoCoreError as error:
            raise CredentialError(f"AgentCore Identity could not be reached ({type(error).__name__})") from None
        token = response.get("accessToken")
        if not token:
            raise CredentialError(f"AgentCore Identity gave no token for provider {self.provider!r} (an M2M "
                                  "provider answers with one; this one asked for a user's consent)")
        return token, _jwt_expiry(token)

    def _exchange(self) -> dict[str, Any]:
        """On a worker thread: the SDK's client is boto3's, blocking."""
        if self._client is None:
            from bedrock_agentcore.services.identity import IdentityClient

            self._client = IdentityClient(self.region)
        workload_token = self._workload_token()
        return dict(self._client.get_resource_oauth2_token(
            resourceCredentialProviderName=self.provider, scopes=self.scopes, oauth2Flow="M2M",
            workloadIdentityToken=workload_token))

    def _workload_token(self) -> str:
        token = _latest_workload_token[0] or _request_workload_token()
        if token:
            return token
        if not self.workload_name:
            raise CredentialError("no workload access token: AgentCore passes one with each request; outside a "
                                  "request (listing tools at startup) set `workload_name` in the server's auth")
        return str(self._client.get_workload_access_token(self.workload_name)["workloadAccessToken"])


# The workload access token of the newest request that made an MCP call. A token is fetched by the HTTP request of a
# kept session, which runs in the context of the call that opened the session, perhaps hours ago: its workload token
# may have expired since, so the newest one seen is kept here (note_request_credentials, from each call's own task).
_latest_workload_token: list[str] = [""]


def _request_workload_token() -> str:
    from bedrock_agentcore.runtime.context import BedrockAgentCoreContext

    return BedrockAgentCoreContext.get_workload_access_token() or ""


def note_request_credentials() -> None:
    """Remember the calling request's workload access token (AgentCore passes one with each request), if any."""
    token = _request_workload_token()
    if token:
        _latest_workload_token[0] = token


def _jwt_expiry(token: str) -> float | None:
    """A JWT's `exp`, unverified (the server verifies it; this only decides when to fetch again), else None."""
    import jwt

    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return float(exp) if isinstance(exp, int | float) else None


class TokenAuth(httpx.Auth):
    """Sends a TokenSource's bearer token; a 401 gets one new token and one retry."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("MCP calls are asynchronous")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401 and self.source.refreshable:  # (httpx closes the refused response)
            request.headers["Authorization"] = f"Bearer {await self.source.refresh(token)}"
            yield request


def outbound_auth(server: str, spec: Mapping[str, Any], region: str) -> TokenAuth:
    """The httpx.Auth for a server's `auth` (its `${VAR}`s already filled in)."""
    kind = spec.get("type")
    where = f"MCP_SERVERS: server {server!r}, auth"
    if kind == "bearer":
        _only(spec, {"type", "token"}, where)
        return TokenAuth(StaticBearer(server, _string(spec, "token", where)))
    if kind == "client_credentials":
        _only(spec, {"type", "token_url", "client_id", "client_secret", "scopes", "audience"}, where)
        extra = {"audience": _string(spec, "audience", where)} if "audience" in spec else {}
        url = _string(spec, "token_url", where)
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"{where}: `token_url` must be an http(s) URL")
        return TokenAuth(ClientCredentials(server, url, _string(spec, "client_id", where),
                                           _string(spec, "client_secret", where), _scopes(spec, where), extra))
    if kind == "agentcore_identity":
        _only(spec, {"type", "provider", "scopes", "workload_name"}, where)
        workload = _string(spec, "workload_name", where) if "workload_name" in spec else ""
        return TokenAuth(AgentCoreIdentity(server, _string(spec, "provider", where), _scopes(spec, where), workload,
                                           region))
    raise ConfigError(f"{where}: `type` must be bearer, client_credentials or agentcore_identity")


def _only(spec: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {', '.join(unknown)} (it takes {', '.join(sorted(allowed))})")


def _string(spec: Mapping[str, Any], key: str, where: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: `{key}` must be a non-empty string")
    return value


def _scopes(spec: Mapping[str, Any], where: str) -> list[str]:
    scopes = spec.get("scopes", [])
    if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
        raise ConfigError(f"{where}: `scopes` must be a list of strings")
    return scopes
