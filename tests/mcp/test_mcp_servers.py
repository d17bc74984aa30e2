"""MCP_SERVERS read and checked: the adapters' map, inline or from a file, `${VAR}`s filled, every mistake named —
never a value (headers, env and auth hold secrets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bedrock.config import ConfigError, Settings
from bedrock.mcp.servers import read_servers

ENV = {"KEY": "k-123-secret", "TOKEN": "t-456-secret"}


def test_inline_json_and_a_file_and_the_mcpservers_wrapper_read_alike(tmp_path: Path):
    servers = {"tools": {"transport": "streamable_http", "url": "http://127.0.0.1:9/mcp",
                         "headers": {"X-Key": "${KEY}"}},
               "local": {"command": "python", "args": ["-m", "srv"], "env": {"T": "pre-${TOKEN}"}}}
    (tmp_path / "mcp.json").write_text(json.dumps({"mcpServers": servers}))
    for raw in (json.dumps(servers), "mcp.json", str(tmp_path / "mcp.json")):
        read = read_servers(raw, ENV, tmp_path)
        assert [s.name for s in read] == ["tools", "local"]
        assert read[0].connection["headers"] == {"X-Key": "k-123-secret"}
        assert read[1].connection == {"transport": "stdio", "command": "python", "args": ["-m", "srv"],
                                      "env": {"T": "pre-t-456-secret"}}  # stdio when only a command is given
        assert read[0].where == "http://127.0.0.1:9" and read[1].where == "stdio: python"


def test_where_never_shows_a_urls_path_or_query():
    server, = read_servers('{"g": {"transport": "sse", "url": "https://gw.example.com/mcp?api_key=${KEY}"}}', ENV)
    assert server.connection["url"].endswith("api_key=k-123-secret") and server.where == "https://gw.example.com"


@pytest.mark.parametrize("servers, named", [
    ({"a": {"transport": "http", "url": "http://h/mcp", "headers": {"X": "${MISSING_VAR}"}}}, "${MISSING_VAR}"),
    ({"bad name!": {"transport": "http", "url": "http://h/mcp"}}, "server name"),
    ({"a": {"transport": "websocket", "url": "ws://h"}}, "needs a transport"),
    ({"a": {"transport": "http"}}, "needs a `url`"),
    ({"a": {"transport": "http", "url": "ftp://h/x"}}, "needs a `url`"),
    ({"a": {"transport": "http", "url": "http://h", "header": {}}}, "does not know: header"),
    ({"a": {"transport": "http", "url": "http://h", "headers": {"X": 1}}}, "`headers` must map"),
    ({"a": {"transport": "http", "url": "http://h", "timeout": -1}}, "`timeout` must be"),
    ({"a": {"transport": "stdio", "command": "x", "args": "-m srv"}}, "`args` must be a list"),
    ({"a": {"transport": "stdio"}}, "needs a `command`"),
    ({"a": {"transport": "http", "url": "http://h", "auth": "Bearer ${KEY}"}}, "`auth` must be an object"),
    ([], "a JSON object"),
])
def test_each_mistake_is_a_config_error_naming_the_server_and_key_not_a_value(servers, named):
    with pytest.raises(ConfigError) as raised:
        read_servers(json.dumps(servers), ENV)
    assert named in str(raised.value) and "secret" not in str(raised.value)


def test_a_file_that_is_missing_or_not_json_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read .*nope.json"):
        read_servers("nope.json", ENV, tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json is not JSON"):
        read_servers("bad.json", ENV, tmp_path)


def test_the_settings_read_each_variable_with_its_default():
    d = Settings.from_env({})
    assert (d.mcp_servers, d.mcp_tool_timeout_s, d.max_tool_result_bytes, d.mcp_required, d.mcp_tool_prefix) == (
        "", 30.0, 65_536, False, False)
    s = Settings.from_env({"MCP_SERVERS": " mcp.json ", "MCP_TOOL_TIMEOUT_S": "2.5", "MAX_TOOL_RESULT_BYTES": "4096",
                           "MCP_REQUIRED": "1", "MCP_TOOL_PREFIX": "true"})
    assert (s.mcp_servers, s.mcp_tool_timeout_s, s.max_tool_result_bytes, s.mcp_required, s.mcp_tool_prefix) == (
        "mcp.json", 2.5, 4096, True, True)
    for name, value in (("MCP_TOOL_TIMEOUT_S", "0"), ("MAX_TOOL_RESULT_BYTES", "10"), ("MCP_REQUIRED", "maybe")):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: value})


def test_auth_values_are_filled_too():
    server, = read_servers(json.dumps({"gw": {"transport": "http", "url": "https://gw/mcp", "auth": {
        "type": "bearer", "token": "${TOKEN}"}}}), ENV)
    assert server.auth == {"type": "bearer", "token": "t-456-secret"} and "auth" not in server.connection
