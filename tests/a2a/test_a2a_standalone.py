"""`python -m bedrock.a2a` (an A2A-protocol container: the card and JSON-RPC at the root of A2A_PORT, and /ping);
a2a-sdk not imported by a start (a cold start pays every import); A2A_PATH's values, and an empty one turning the
mount off."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bedrock.config import ConfigError, Settings
from bedrock.server.app import build_app
from testkit import loopback
from testkit.live_server import LiveServer
from tests.a2a.test_a2a_server import answer_of, send, send_once

# LiveServer reads `PORT=N` first, then waits for /ping: a free port is found, said, and given as A2A_PORT.
def a2a_main(*how: str) -> list[str]:
    return [sys.executable, "-c", (
        "import os, socket, sys\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()\n"
        "print(f'PORT={port}', flush=True)\n"
        "os.environ.update(A2A_PORT=str(port), BIND_HOST='127.0.0.1')\n"
        f"os.execv(sys.executable, [sys.executable, *{list(how)!r}])\n")]


# As a module, and as a file (an AgentCore CLI runtime's `entrypoint`, run from the project's root).
@pytest.mark.parametrize("how", [("-m", "bedrock.a2a"), ("bedrock/a2a/__main__.py",)], ids=["module", "file"])
async def test_python_m_bedrock_a2a_serves_the_card_at_the_root_of_its_port(how):
    live = LiveServer(command=a2a_main(*how))
    try:
        ping = loopback.get(live.url + "/ping", timeout=30)
        assert ping.status_code == 200 and ping.json()["status"] == "Healthy"
        card = loopback.get(live.url + "/.well-known/agent-card.json", timeout=30)
        assert card.status_code == 200
        assert {i["url"] for i in card.json()["supportedInterfaces"]} == {live.url + "/"}
        assert card.json()["url"] == live.url + "/"
        task = await send_once(live, send("What is 25 * 4?"), path="/")
        assert "100" in answer_of(task)
        assert loopback.post(live.url + "/invocations", json={"prompt": "hi"}, timeout=30).status_code == 404
    finally:
        log = live.stop()
    # uvicorn ends by re-raising SIGTERM with its default action (bedrock/core/telemetry.py: why the flush).
    assert live.process.returncode in (0, -15), log
    assert "Traceback" not in log and " ERROR " not in log, log
    assert "serving A2A JSON-RPC on /" in log and "listening on http://127.0.0.1:" in log


def test_a2a_sdk_is_not_imported_at_startup():
    """Every new AgentCore session is a cold start: a2a-sdk (~150 ms of imports) comes with the first A2A request."""
    found = subprocess.run([sys.executable, "-X", "importtime", "-c", "import bedrock.agent_runtime"],
                           capture_output=True, text=True, timeout=120, check=True).stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in found.splitlines() if line.startswith("import time:")}
    assert "bedrock.a2a.app" in imported  # the routes' shell is there
    assert not {name for name in imported if name == "a2a" or name.startswith("a2a.")}


def test_a2a_path_is_checked_and_empty_turns_it_off():
    assert Settings.from_env({}).a2a_path == "/a2a"
    assert Settings.from_env({"A2A_PATH": "/agents/support"}).a2a_path == "/agents/support"
    for bad in ("a2a", "/a2a/", "/invocations", "/ui/a2a", "/a b", "/ws"):
        with pytest.raises(ConfigError, match="A2A_PATH"):
            Settings.from_env({"A2A_PATH": bad})
    assert Settings.from_env({"AGENTCORE_RUNTIME_URL": "https://rt.example/invocations"}).a2a_url == \
        "https://rt.example/invocations"
    assert Settings.from_env({"A2A_URL": "https://a.example/a2a", "AGENTCORE_RUNTIME_URL": "x"}).a2a_url == \
        "https://a.example/a2a"
    paths = {getattr(route, "path", None) for route in build_app(Settings()).routes}
    assert {"/a2a", "/a2a/.well-known/agent-card.json"} <= paths
    off = {getattr(route, "path", None) for route in build_app(Settings(a2a_path="")).routes}
    assert not {path for path in off if path and path.startswith("/a2a")}


def test_a2a_url_is_what_the_card_says(make_server):
    live = make_server({"A2A_URL": "https://agents.example/support/a2a", "A2A_PATH": "/support/a2a"})
    card = loopback.get(live.url + "/support/a2a/.well-known/agent-card.json", timeout=30).json()
    assert card["url"] == "https://agents.example/support/a2a"
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "nope"}}
    assert loopback.post(live.url + "/support/a2a", json=rpc, timeout=30).json()["error"]["code"] == -32001
