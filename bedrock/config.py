"""Settings, read once from the environment (the only place that reads it)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

T = TypeVar("T", int, float)
C = TypeVar("C", bound=str)  # a setting's choices (a Literal's values: LangGraph's durability)
Durability = Literal["exit", "async", "sync"]

DEFAULT_BEDROCK_MODEL_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


class ConfigError(ValueError):
    """An environment variable holds a value the runtime cannot use."""


class DependencyUnavailable(ConfigError):
    """What the configuration names cannot be reached at startup (an MCP server, with MCP_REQUIRED=1): the build
    fails, and the next request tries it again."""


def _number(env: Mapping[str, str], name: str, default: T, minimum: T, cast: Callable[[str], T], kind: str) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    return _number(env, name, default, minimum, int, "an integer")


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    return _number(env, name, default, minimum, float, "a number")


def _choice(env: Mapping[str, str], name: str, default: C, choices: tuple[C, ...]) -> C:
    value = (env.get(name) or default).strip().lower()
    for choice in choices:  # the choice itself: of the choices' type
        if value == choice:
            return choice
    raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    return _choice(env, name, "1" if default else "0", ("1", "0", "true", "false", "yes", "no", "on", "off")) in (
        "1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    """Everything configurable; see the README's configuration table."""

    model_provider: str = "offline"
    bedrock_model_id: str = DEFAULT_BEDROCK_MODEL_ID
    aws_region: str = "us-east-1"
    temperature: float = 0.0
    max_tokens: int = 1024
    bedrock_retry_mode: str = "adaptive"
    bedrock_max_attempts: int = 4
    bedrock_connect_timeout_s: float = 10.0
    bedrock_read_timeout_s: float = 120.0
    model_threads: int = 0  # 0: MAX_CONCURRENT_INVOCATIONS + 16
    port: int = 8080
    bind_host: str = ""
    sse_ping_interval_s: float = 15.0
    sse_stall_timeout_s: float = 30.0
    token_buffer_size: int = 4
    token_buffer_max_delay_ms: int = 50
    max_prompt_chars: int = 32_000
    offline_token_delay_ms: int = 0
    default_actor_id: str = "default-user"
    memory_backend: str = ""
    agentcore_memory_id: str = ""
    memory_path: str = ".agent-memory/checkpoints.sqlite"
    database_url: str = ""  # MEMORY_BACKEND=postgres
    checkpoint_durability: Durability = "exit"
    checkpoint_history: str = "latest"
    history_max_messages: int = 40
    session_wait_s: float = 30.0
    run_buffer_bytes: int = 1_048_576
    approval_required_tools: tuple[str, ...] = ()
    run_retention_s: float = 600.0
    run_retain_bytes: int = 16_777_216
    request_timeout_s: float = 300.0
    shutdown_grace_s: float = 10.0
    max_concurrent_invocations: int = 200
    max_request_bytes: int = 1_048_576
    request_read_timeout_s: float = 10.0
    max_connections: int = 1000
    keepalive_timeout_s: float = 75.0
    log_level: str = "INFO"
    log_format: str = "text"  # json: one JSON object per line (the container's default)
    otel_capture_content: bool = False  # prompts, answers and tool arguments in spans
    serve_ui: bool = True  # the chat page on GET / (the container's Dockerfile turns it off)
    # WebSocket /ws (bedrock/server/websocket.py): bounds per connection; a message's size is MAX_REQUEST_BYTES
    ws_max_messages_per_s: float = 20.0  # sustained; bursts of twice as many pass
    ws_idle_timeout_s: float = 300.0  # no message and no run in flight this long: the server closes the socket
    ws_ping_interval_s: float = 20.0  # a ping this often; no pong within as long again: the connection is dropped
    ws_allowed_origins: tuple[str, ...] = ()  # browser pages of other origins that may connect (same-origin always)
    # The Host names a served process answers (server/hosts.py); (): loopback names on a loopback address, else any.
    allowed_hosts: tuple[str, ...] = ()
    agent_protocol: str = "auto"  # auto: an AG-UI RunAgentInput body is answered in AG-UI; ag-ui: every body is one
    # A2A (bedrock/a2a/): the JSON-RPC endpoint and its agent card, mounted in the app under `a2a_path` ("" disables
    # the mount); `python -m bedrock.a2a` serves the same at the root of `a2a_port` (AgentCore's A2A contract: 9000).
    a2a_path: str = "/a2a"
    a2a_port: int = 9000
    a2a_url: str = ""  # the JSON-RPC URL the card advertises; empty: the request's own (its Host and the path)
    a2a_agent_name: str = ""  # the card's name; empty: AGENT_NAME, the graph's own name, else a generic one
    a2a_agent_description: str = ""  # the card's description; empty: the built-in agent's own, else a generic one
    auth_mode: str = "none"
    jwt_jwks_file: str = ""
    jwt_jwks_url: str = ""
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_algorithms: tuple[str, ...] = ("RS256",)
    jwt_actor_claim: str = "sub"
    jwt_leeway_s: float = 30.0
    jwt_jwks_refresh_s: float = 60.0
    agent_graph: str = ""  # "./agent.py:graph" or "pkg.module:graph"; empty: langgraph.json, else the built-in agent
    langgraph_config: str = ""  # a langgraph.json elsewhere than the working directory
    agent_name: str = ""  # which of langgraph.json's graphs, when it has several
    max_event_bytes: int = 262_144  # a frame's data at most: larger values of a graph's state become placeholders
    mcp_servers: str = ""  # a JSON file's path, or inline JSON: the MCP servers whose tools the agent gets
    mcp_tool_timeout_s: float = 30.0  # one MCP tool call (and listing a server's tools at startup) at most
    max_tool_result_bytes: int = 65_536  # an MCP tool's result beyond this is cut, with a marker (~16k tokens)
    # Long-term memory: what an actor told the agent, kept across its sessions (bedrock/core/memory.py).
    long_term_memory: bool = True
    memory_recall_limit: int = 5  # memories the built-in agent recalls into a turn's context (5 facts: ~100 tokens)
    memory_ttl_days: float = 0.0  # 0: kept until forgotten; N: forgotten N days after last written or recalled
    embedding_model_id: str = "amazon.titan-embed-text-v2:0"  # semantic search's embeddings (Bedrock InvokeModel)
    embedding_dimensions: int = 1024  # Titan text embeddings v2: 256, 512 or 1024
    mcp_required: bool = False  # a server unreachable at startup: 1 refuses to serve, 0 serves without its tools
    mcp_tool_prefix: bool = False  # 1: MCP tools are named server_tool
    # The built-in agent's own variables that the environment set: a user's graph refuses them at startup.
    built_in_variables: tuple[str, ...] = ()
    # Long-term memory's variables that the environment set: langgraph.json's `store` section yields to them.
    store_variables: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from `env` (default: the process environment)."""
        env = os.environ if env is None else env
        d = cls()  # the defaults are the fields' own, written once
        settings = cls(
            model_provider=_choice(env, "MODEL_PROVIDER", d.model_provider, ("offline", "bedrock")),
            bedrock_model_id=env.get("BEDROCK_MODEL_ID") or d.bedrock_model_id,
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or d.aws_region,
            temperature=_float(env, "MODEL_TEMPERATURE", d.temperature),
            max_tokens=_int(env, "MODEL_MAX_TOKENS", d.max_tokens, minimum=1),
            bedrock_retry_mode=_choice(env, "BEDROCK_RETRY_MODE", d.bedrock_retry_mode,
                                       ("adaptive", "standard", "legacy")),
            bedrock_max_attempts=_int(env, "BEDROCK_MAX_ATTEMPTS", d.bedrock_max_attempts, minimum=1),
            bedrock_connect_timeout_s=_float(env, "BEDROCK_CONNECT_TIMEOUT_S", d.bedrock_connect_timeout_s),
            bedrock_read_timeout_s=_float(env, "BEDROCK_READ_TIMEOUT_S", d.bedrock_read_timeout_s),
            model_threads=_int(env, "MODEL_THREADS", d.model_threads),
            port=_int(env, "PORT", d.port),
            bind_host=env.get("BIND_HOST") or "",
            sse_ping_interval_s=_float(env, "SSE_PING_INTERVAL_S", d.sse_ping_interval_s),
            sse_stall_timeout_s=_float(env, "SSE_STALL_TIMEOUT_S", d.sse_stall_timeout_s),
            token_buffer_size=_int(env, "TOKEN_BUFFER_SIZE", d.token_buffer_size, minimum=1),
            token_buffer_max_delay_ms=_int(env, "TOKEN_BUFFER_MAX_DELAY_MS", d.token_buffer_max_delay_ms),
            max_prompt_chars=_int(env, "MAX_PROMPT_CHARS", d.max_prompt_chars, minimum=1),
            offline_token_delay_ms=_int(env, "OFFLINE_TOKEN_DELAY_MS", d.offline_token_delay_ms),
            default_actor_id=env.get("DEFAULT_ACTOR_ID") or d.default_actor_id,
            memory_backend=_choice(env, "MEMORY_BACKEND", "", ("", "memory", "sqlite", "agentcore", "postgres")),
            # What `agentcore launch` injects, else the name the guide uses.
            agentcore_memory_id=env.get("BEDROCK_AGENTCORE_MEMORY_ID") or env.get("AGENTCORE_MEMORY_ID") or "",
            memory_path=env.get("AGENT_MEMORY_PATH") or d.memory_path,
            database_url=env.get("DATABASE_URL") or "",
            checkpoint_durability=_choice(env, "CHECKPOINT_DURABILITY", d.checkpoint_durability,
                                          ("exit", "async", "sync")),
            checkpoint_history=_choice(env, "CHECKPOINT_HISTORY", d.checkpoint_history, ("latest", "all")),
            history_max_messages=_int(env, "HISTORY_MAX_MESSAGES", d.history_max_messages, minimum=1),
            session_wait_s=_float(env, "SESSION_WAIT_S", d.session_wait_s),
            run_buffer_bytes=_int(env, "RUN_BUFFER_BYTES", d.run_buffer_bytes, minimum=4096),
            approval_required_tools=tuple(
                name.strip() for name in (env.get("APPROVAL_REQUIRED_TOOLS") or "").split(",") if name.strip()),
            run_retention_s=_float(env, "RUN_RETENTION_S", d.run_retention_s),
            run_retain_bytes=_int(env, "RUN_RETAIN_BYTES", d.run_retain_bytes),
            request_timeout_s=_float(env, "REQUEST_TIMEOUT_S", d.request_timeout_s),
            shutdown_grace_s=_float(env, "SHUTDOWN_GRACE_S", d.shutdown_grace_s),
            max_concurrent_invocations=_int(env, "MAX_CONCURRENT_INVOCATIONS", d.max_concurrent_invocations, minimum=1),
            max_request_bytes=_int(env, "MAX_REQUEST_BYTES", d.max_request_bytes, minimum=1024),
            request_read_timeout_s=_float(env, "REQUEST_READ_TIMEOUT_S", d.request_read_timeout_s),
            max_connections=_int(env, "MAX_CONNECTIONS", d.max_connections, minimum=1),
            keepalive_timeout_s=_float(env, "KEEPALIVE_TIMEOUT_S", d.keepalive_timeout_s),
            log_level=(env.get("LOG_LEVEL") or d.log_level).upper(),
            log_format=_choice(env, "LOG_FORMAT", d.log_format, ("text", "json")),
            # The OpenTelemetry GenAI instrumentations' own switch, so one variable governs every library's spans.
            otel_capture_content=_flag(env, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
                                       d.otel_capture_content),
            auth_mode=_choice(env, "AUTH_MODE", d.auth_mode, ("none", "jwt")),
            jwt_jwks_file=env.get("JWT_JWKS_FILE") or "",
            jwt_jwks_url=env.get("JWT_JWKS_URL") or "",
            jwt_issuer=env.get("JWT_ISSUER") or "",
            jwt_audience=env.get("JWT_AUDIENCE") or "",
            jwt_algorithms=_algorithms(env.get("JWT_ALGORITHMS"), d.jwt_algorithms),
            jwt_actor_claim=env.get("JWT_ACTOR_CLAIM") or d.jwt_actor_claim,
            jwt_leeway_s=_float(env, "JWT_LEEWAY_S", d.jwt_leeway_s),
            jwt_jwks_refresh_s=_float(env, "JWT_JWKS_REFRESH_S", d.jwt_jwks_refresh_s),
            serve_ui=_flag(env, "SERVE_UI", d.serve_ui),
            ws_max_messages_per_s=_float(env, "WS_MAX_MESSAGES_PER_S", d.ws_max_messages_per_s, minimum=1.0),
            ws_idle_timeout_s=_float(env, "WS_IDLE_TIMEOUT_S", d.ws_idle_timeout_s),
            ws_ping_interval_s=_float(env, "WS_PING_INTERVAL_S", d.ws_ping_interval_s),
            ws_allowed_origins=_origins(env.get("WS_ALLOWED_ORIGINS")),
            allowed_hosts=_hosts(env.get("ALLOWED_HOSTS")),
            agent_protocol=_choice(env, "AGENT_PROTOCOL", d.agent_protocol, ("auto", "ag-ui")),
            a2a_path=_a2a_path(env.get("A2A_PATH", d.a2a_path)),
            a2a_port=_int(env, "A2A_PORT", d.a2a_port),
            # AGENTCORE_RUNTIME_URL: the variable the AgentCore SDK's own A2A server advertises (runtime/a2a.py).
            a2a_url=(env.get("A2A_URL") or env.get("AGENTCORE_RUNTIME_URL") or "").strip(),
            a2a_agent_name=(env.get("A2A_AGENT_NAME") or "").strip(),
            a2a_agent_description=(env.get("A2A_AGENT_DESCRIPTION") or "").strip(),
            agent_graph=(env.get("AGENT_GRAPH") or "").strip(),
            langgraph_config=(env.get("LANGGRAPH_CONFIG") or "").strip(),
            agent_name=(env.get("AGENT_NAME") or "").strip(),
            max_event_bytes=_int(env, "MAX_EVENT_BYTES", d.max_event_bytes, minimum=1024),
            mcp_servers=(env.get("MCP_SERVERS") or "").strip(),
            mcp_tool_timeout_s=_float(env, "MCP_TOOL_TIMEOUT_S", d.mcp_tool_timeout_s, minimum=0.001),
            max_tool_result_bytes=_int(env, "MAX_TOOL_RESULT_BYTES", d.max_tool_result_bytes, minimum=256),
            mcp_required=_flag(env, "MCP_REQUIRED", d.mcp_required),
            mcp_tool_prefix=_flag(env, "MCP_TOOL_PREFIX", d.mcp_tool_prefix),
            long_term_memory=_flag(env, "LONG_TERM_MEMORY", d.long_term_memory),
            memory_recall_limit=_int(env, "MEMORY_RECALL_LIMIT", d.memory_recall_limit),
            memory_ttl_days=_float(env, "MEMORY_TTL_DAYS", d.memory_ttl_days),
            embedding_model_id=(env.get("EMBEDDING_MODEL_ID") or d.embedding_model_id).strip(),
            embedding_dimensions=int(_choice(env, "EMBEDDING_DIMENSIONS", str(d.embedding_dimensions),
                                             ("256", "512", "1024"))),
            built_in_variables=tuple(name for name in BUILT_IN_VARIABLES if (env.get(name) or "").strip()),
            store_variables=tuple(name for name in STORE_VARIABLES if (env.get(name) or "").strip()),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse combinations that cannot work (raised at startup, not at the first request)."""
        if self.memory_backend == "postgres" and not self.database_url:
            raise ConfigError("MEMORY_BACKEND=postgres needs DATABASE_URL (e.g. postgresql://user:pw@host:5432/db)")
        if self.auth_mode == "jwt":
            if not (self.jwt_jwks_file or self.jwt_jwks_url):
                raise ConfigError("AUTH_MODE=jwt needs JWT_JWKS_FILE or JWT_JWKS_URL")
            if not self.jwt_issuer:
                raise ConfigError("AUTH_MODE=jwt needs JWT_ISSUER (the token issuer to accept)")


# What only the built-in agent does (bedrock/agents/calculator.py): a user's graph does its own history window and
# approvals (e.g. LangChain's HumanInTheLoopMiddleware), so setting these for it is refused rather than ignored.
BUILT_IN_VARIABLES = ("APPROVAL_REQUIRED_TOOLS", "HISTORY_MAX_MESSAGES")
STORE_VARIABLES = ("EMBEDDING_MODEL_ID", "EMBEDDING_DIMENSIONS", "MEMORY_TTL_DAYS")


# Signature algorithms with public keys only: `none` and the HMAC family (whose "key" would be the public
# key itself, the classic confusion attack) are refused whatever JWT_ALGORITHMS says.
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


def _origins(raw: str | None) -> tuple[str, ...]:
    """WS_ALLOWED_ORIGINS: comma-separated `scheme://host[:port]`, as a browser's `Origin` header writes them."""
    origins = tuple(origin.strip().rstrip("/").lower() for origin in (raw or "").split(",") if origin.strip())
    for origin in origins:
        scheme, sep, host = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not host or "/" in host:
            raise ConfigError(f"WS_ALLOWED_ORIGINS must list origins such as https://app.example.com, got {origin!r}")
    return origins


def _hosts(raw: str | None) -> tuple[str, ...]:
    """ALLOWED_HOSTS: comma-separated host names or addresses (no port; `[::1]` or `::1`), or `*` for any."""
    hosts = tuple(host.strip().lower().removeprefix("[").removesuffix("]") for host in (raw or "").split(",")
                  if host.strip())
    for host in hosts:
        if host != "*" and not re.fullmatch(r"[a-z0-9._-]+|[0-9a-f:.]+", host):
            raise ConfigError(f"ALLOWED_HOSTS must list host names such as app.example.com (no port), got {host!r}")
    return hosts


# The app's own routes (bedrock/server/app.py): A2A_PATH may not take one of them.
RESERVED_PATHS = ("/invocations", "/invoke", "/stream", "/ws", "/ping", "/ui")
_URL_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")


def _a2a_path(raw: str) -> str:
    """A2A_PATH: a path such as /a2a (no trailing slash), not one of the app's own routes; empty: no A2A mount."""
    path = raw.strip()
    if not path:
        return ""
    if not _URL_PATH.fullmatch(path) or any(path == r or path.startswith(r + "/") for r in RESERVED_PATHS):
        raise ConfigError(f"A2A_PATH must be a path such as /a2a, without a trailing slash and not one of "
                          f"{', '.join(RESERVED_PATHS)}; got {raw!r} (empty turns A2A off)")
    return path


def _algorithms(raw: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if raw is None or not raw.strip():
        return default
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    refused = [name for name in names if name not in ASYMMETRIC_ALGORITHMS]
    if refused or not names:
        raise ConfigError(f"JWT_ALGORITHMS must name public-key algorithms ({', '.join(ASYMMETRIC_ALGORITHMS)}), "
                          f"got {raw!r}")
    return names
