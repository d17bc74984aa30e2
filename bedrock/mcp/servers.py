"""MCP_SERVERS: the map of MCP servers, read from a file or inline JSON, checked, its `${VAR}`s filled in.

    {"name": {"transport": "streamable_http", "url": "https://…/mcp", "headers": {"X-Key": "${KEY}"}, "auth": …},
     "local": {"transport": "stdio", "command": "python", "args": ["server.py"], "env": {"TOKEN": "${TOKEN}"}}}

(or the same map under `"mcpServers"`, as other MCP clients write it). The map is langchain-mcp-adapters' own
connection map, with `auth` (bedrock/mcp/auth.py) in place of an httpx.Auth object. Every problem is a ConfigError
naming the server and the key, never a value: headers, env and auth hold secrets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bedrock.config import ConfigError

# A server's name prefixes its tools' names under MCP_TOOL_PREFIX, and Bedrock's tool names are [a-zA-Z0-9_-]{1,64}.
SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
HTTP_TRANSPORTS = frozenset({"streamable_http", "streamable-http", "http", "sse"})
# Keys the adapters take for each transport (anything else is refused: a typo would otherwise be ignored).
_HTTP_KEYS = frozenset({"transport", "url", "headers", "timeout", "sse_read_timeout", "terminate_on_close", "auth"})
_STDIO_KEYS = frozenset({"transport", "command", "args", "env", "cwd", "encoding", "encoding_error_handler"})


@dataclass(frozen=True)
class ServerSpec:
    """One server: its name, the adapters' connection map (`${VAR}`s filled in, no `auth`), and its `auth`."""

    name: str
    connection: dict[str, Any]
    auth: Mapping[str, Any] | None = field(default=None)

    @property
    def transport(self) -> str:
        return str(self.connection["transport"])

    @property
    def where(self) -> str:
        """Where the server is, for a log line: a URL's scheme and host (never its path or query, which may hold a
        key), or a stdio server's command."""
        if self.transport == "stdio":
            return f"stdio: {self.connection['command']}"
        parts = urlsplit(self.connection["url"])
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def read_servers(raw: str, env: Mapping[str, str], base: Path | None = None) -> list[ServerSpec]:
    """The servers MCP_SERVERS names: `raw` is inline JSON (it starts with `{`) or a JSON file's path (relative to
    `base`, default the working directory); `env` fills in `${VAR}`."""
    text, origin = _text(raw, base or Path.cwd())
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"MCP_SERVERS: {origin} is not JSON ({error})") from None
    if isinstance(document, dict) and set(document) == {"mcpServers"}:
        document = document["mcpServers"]
    if not isinstance(document, dict):
        raise ConfigError(f"MCP_SERVERS: {origin} must be a JSON object of servers by name")
    return [_server(name, spec, env) for name, spec in document.items()]


def _text(raw: str, base: Path) -> tuple[str, str]:
    if raw.lstrip().startswith(("{", "[")):  # JSON (a list is refused below, by name)
        return raw, "the inline value"
    path = Path(raw).expanduser()
    path = path if path.is_absolute() else base / path
    try:
        return path.read_text(), str(path)
    except OSError as error:
        raise ConfigError(f"MCP_SERVERS: cannot read {path} ({error.strerror})") from None


def _server(name: str, spec: Any, env: Mapping[str, str]) -> ServerSpec:
    if not SERVER_NAME.fullmatch(name):
        raise ConfigError(f"MCP_SERVERS: server name {name!r} must be 1-32 of A-Z a-z 0-9 _ - (it may prefix its "
                          "tools' names, which Bedrock limits to those characters)")
    if not isinstance(spec, dict):
        raise ConfigError(f"MCP_SERVERS: server {name!r} must be an object")
    transport = spec.get("transport") or ("stdio" if "command" in spec else None)
    if transport not in HTTP_TRANSPORTS and transport != "stdio":
        raise ConfigError(f"MCP_SERVERS: server {name!r} needs a transport: streamable_http, sse or stdio")
    allowed = _STDIO_KEYS if transport == "stdio" else _HTTP_KEYS
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"MCP_SERVERS: server {name!r} ({transport}) has keys this runtime does not know: "
                          f"{', '.join(unknown)} (it takes {', '.join(sorted(allowed))})")
    connection = {key: _filled(value, env, name, key) for key, value in spec.items() if key != "auth"}
    connection["transport"] = transport
    auth = _filled(spec.get("auth"), env, name, "auth")
    if transport == "stdio":
        _check_stdio(name, connection)
    else:
        _check_http(name, connection)
    if auth is not None and not isinstance(auth, dict):
        raise ConfigError(f"MCP_SERVERS: server {name!r}: `auth` must be an object with a `type`")
    return ServerSpec(name, connection, auth)


def _check_http(name: str, connection: dict[str, Any]) -> None:
    url = connection.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"MCP_SERVERS: server {name!r} needs a `url` with http:// or https:// and a host")
    headers = connection.get("headers")
    if headers is not None and not (isinstance(headers, dict)
                                    and all(isinstance(v, str) for v in headers.values())):
        raise ConfigError(f"MCP_SERVERS: server {name!r}: `headers` must map names to strings")
    for key in ("timeout", "sse_read_timeout"):
        value = connection.get(key)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool) or value <= 0):
            raise ConfigError(f"MCP_SERVERS: server {name!r}: `{key}` must be a number of seconds above 0")


def _check_stdio(name: str, connection: dict[str, Any]) -> None:
    if not isinstance(connection.get("command"), str) or not connection["command"]:
        raise ConfigError(f"MCP_SERVERS: server {name!r} (stdio) needs a `command`")
    args = connection.setdefault("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise ConfigError(f"MCP_SERVERS: server {name!r}: `args` must be a list of strings")
    env = connection.get("env")
    if env is not None and not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
        raise ConfigError(f"MCP_SERVERS: server {name!r}: `env` must map names to strings")


def _filled(value: Any, env: Mapping[str, str], server: str, key: str) -> Any:
    """`value` with every `${VAR}` in its strings replaced from `env`; a variable that is not set is an error
    naming it (the adapters would send the literal `${VAR}` on)."""
    if isinstance(value, str):
        def variable(match: re.Match[str]) -> str:
            if match.group(1) not in env:
                raise ConfigError(f"MCP_SERVERS: server {server!r}, `{key}` uses ${{{match.group(1)}}}, which is "
                                  "not set in the environment")
            return env[match.group(1)]

        return _VARIABLE.sub(variable, value)
    if isinstance(value, list):
        return [_filled(item, env, server, key) for item in value]
    if isinstance(value, dict):
        return {name: _filled(item, env, server, f"{key}.{name}") for name, item in value.items()}
    return value
