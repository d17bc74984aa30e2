"""DNS rebinding: a server on loopback answers only loopback Host names (ALLOWED_HOSTS adds others, `*` any); any
other Host gets 400 `host_not_allowed` (the catalog's JSON), before the app — HTTP routes and the /ws handshake
alike — and nothing runs. A server on another address answers every Host unless ALLOWED_HOSTS lists some."""

from __future__ import annotations

import socket

import pytest

from bedrock.config import ConfigError, Settings
from bedrock.server.hosts import LOOPBACK_HOSTS, allowed_hosts, host_name
from testkit import loopback

EVIL = "rebound.attacker.example"


def test_the_default_follows_where_the_server_listens_and_the_request_arrived():
    assert allowed_hosts((), "127.0.0.1", "127.0.0.1") == LOOPBACK_HOSTS
    assert allowed_hosts((), "::1", "::1") == LOOPBACK_HOSTS
    assert allowed_hosts((), "127.0.0.1", "127.0.0.2") == LOOPBACK_HOSTS  # all of 127/8
    # A container's 0.0.0.0: AgentCore's proxy names the Host, over the container's own loopback too.
    assert allowed_hosts((), "0.0.0.0", "10.0.0.7") == ()
    assert allowed_hosts((), "0.0.0.0", "127.0.0.1") == ()
    assert allowed_hosts((), "127.0.0.1", "testserver") == ()  # Starlette's TestClient: not an address
    assert allowed_hosts(("app.example.com",), "0.0.0.0", "10.0.0.7") == ("app.example.com",)
    assert allowed_hosts(("*",), "127.0.0.1", "127.0.0.1") == ()


@pytest.mark.parametrize("header,name", [
    ("localhost:8080", "localhost"), ("LOCALHOST", "localhost"), ("127.0.0.1:1", "127.0.0.1"), ("[::1]:8080", "::1"),
    ("[::1]", "::1"), ("::1", "::1"), (f"{EVIL}:8080", EVIL), ("", None), (None, None), ("[", None),
])
def test_host_names_are_read_as_browsers_send_them(header, name):
    assert host_name(header) == name


def test_allowed_hosts_is_names_without_ports():
    assert Settings.from_env({"ALLOWED_HOSTS": "App.Example.com, [::1] ,localhost"}).allowed_hosts == (
        "app.example.com", "::1", "localhost")
    with pytest.raises(ConfigError, match="no port"):
        Settings.from_env({"ALLOWED_HOSTS": "app.example.com:8080"})


def test_a_rebound_name_gets_the_catalog_s_400_and_nothing_runs(server, session_id):
    payload = {"prompt": "My name is Mallory", "session_id": session_id}
    for path in ("/invocations", "/invoke", "/ping"):
        refused = loopback.request("POST" if path != "/ping" else "GET", server.url + path, json=payload,
                                   headers={"Host": f"{EVIL}:{server.port}"}, timeout=30)
        assert refused.status_code == 400, (path, refused.text)
        assert refused.json()["error"]["code"] == "host_not_allowed"
    for host in (f"localhost:{server.port}", f"[::1]:{server.port}", f"127.0.0.1:{server.port}"):
        history = loopback.post(server.url + "/invocations", json={"action": "history", "session_id": session_id},
                                headers={"Host": host}, timeout=30)
        assert history.status_code == 200 and history.json()["messages"] == [], (host, history.text)


def _handshake(live, host: str) -> bytes:
    """A browser's upgrade request to /ws as sent to `host` (its Origin that host's own page): the answer's head and
    what follows it."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as sock:
        sock.sendall(f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                     f"Origin: http://{host}\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer or (answer.startswith(b"HTTP/1.1 400") and b"}" not in answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_a_rebound_name_cannot_open_the_websocket(server):
    assert _handshake(server, f"127.0.0.1:{server.port}").startswith(b"HTTP/1.1 101")  # the same request, upgraded
    refused = _handshake(server, f"{EVIL}:{server.port}")
    assert refused.startswith(b"HTTP/1.1 400") and b'"host_not_allowed"' in refused, refused


async def test_in_process_and_off_loopback_every_host_is_answered():
    """The address is the request's own: an app reached in-process (no `server`) or on another address is not a
    loopback server's, whatever Host it is given."""
    from bedrock.server.hosts import HostGuard

    reached: list[str] = []

    async def app(scope, receive, send):
        reached.append(scope["type"])

    guard = HostGuard(app, listening="127.0.0.1")
    for server in (None, ("10.0.0.7", 8080), ("/run/agent.sock", None)):
        await guard({"type": "http", "server": server, "headers": [(b"host", EVIL.encode())]}, None, None)
    assert reached == ["http"] * 3


def test_allowed_hosts_names_the_hosts_answered(make_server):
    live = make_server({"ALLOWED_HOSTS": "agent.internal"})
    assert loopback.get(live.url + "/ping", headers={"Host": "agent.internal:80"}).status_code == 200
    assert loopback.get(live.url + "/ping", headers={"Host": "localhost"}).status_code == 400  # as listed, alone
    anyone = make_server({"ALLOWED_HOSTS": "*"})
    assert loopback.get(anyone.url + "/ping", headers={"Host": EVIL}).status_code == 200
