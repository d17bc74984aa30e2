"""Slow and greedy clients: a request's head and body are read in bounded time, connections are capped."""

from __future__ import annotations

import json
import socket
import time

import httpx

READ_TIMEOUT = {"REQUEST_READ_TIMEOUT_S": "1"}


def read_all(conn: socket.socket, timeout_s: float = 10.0) -> bytes:
    """Everything the server sends until it closes (bounded)."""
    conn.settimeout(timeout_s)
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk


def json_body(response: bytes) -> dict:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


def test_a_request_head_sent_a_byte_at_a_time_is_cut_with_408(make_server):
    live = make_server(READ_TIMEOUT)
    with socket.create_connection(("127.0.0.1", live.port)) as conn:
        started = time.monotonic()
        conn.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
        conn.settimeout(0.2)
        response = b""
        for byte in b"X-Slow: " + b"a" * 100:  # slowloris: never finishes its headers
            try:
                conn.sendall(bytes([byte]))
                response += conn.recv(65536)
                if response:
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        response += read_all(conn)
    assert time.monotonic() - started < 5
    assert response.startswith(b"HTTP/1.1 408 ") and json_body(response)["error"]["code"] == "request_timeout"


def test_a_body_shorter_than_its_content_length_is_cut_with_408(make_server):
    live = make_server(READ_TIMEOUT)
    with socket.create_connection(("127.0.0.1", live.port)) as conn:
        started = time.monotonic()
        conn.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"prompt\": ")
        response = read_all(conn)
    assert time.monotonic() - started < 5
    assert response.startswith(b"HTTP/1.1 408 ") and json_body(response)["error"]["code"] == "request_timeout"
    assert httpx.get(live.url + "/ping", timeout=5).status_code == 200  # and the server serves on


def test_a_connection_that_never_speaks_is_closed(make_server):
    live = make_server(READ_TIMEOUT)
    with socket.create_connection(("127.0.0.1", live.port)) as conn:
        started = time.monotonic()
        assert read_all(conn) == b""
    assert time.monotonic() - started < 5


def test_idle_keep_alive_between_requests_is_not_cut(make_server):
    """The head timeout starts with a request's first byte, not after a response: keep-alive stays 75 s."""
    live = make_server(READ_TIMEOUT)
    with httpx.Client(timeout=10) as client:
        first = client.get(live.url + "/ping")
        time.sleep(1.5)  # idle on purpose, longer than the head timeout (the behaviour under test, not a sync)
        second = client.get(live.url + "/ping")
    assert first.status_code == second.status_code == 200
    assert first.extensions["network_stream"] is second.extensions["network_stream"]


def test_connections_past_the_cap_get_a_json_503(make_server):
    live = make_server({"MAX_CONNECTIONS": "4", "REQUEST_READ_TIMEOUT_S": "30"})
    held = [socket.create_connection(("127.0.0.1", live.port)) for _ in range(4)]
    try:
        with socket.create_connection(("127.0.0.1", live.port)) as extra:
            response = read_all(extra)
        assert response.startswith(b"HTTP/1.1 503 ") and json_body(response)["error"]["code"] == "server_busy"
    finally:
        for conn in held:
            conn.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the held connections' close reaches the server
        try:
            if httpx.get(live.url + "/ping", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    else:
        raise AssertionError("the server never accepted connections again")


def test_a_connection_reset_by_its_client_is_released_at_once():
    """uvicorn disarms its keep-alive timer only on a clean close; a client that resets the connection (closing with
    unread data, as every client that stopped reading does) left it armed, holding the connection for
    timeout_keep_alive (75 s here): the soak's never-reading clients grew the server ~110 KB each."""
    import gc
    import struct

    from bedrock.config import Settings
    from bedrock.offline.background import BackgroundServer
    from bedrock.server.connections import BoundedH11Protocol, uvicorn_options
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("x" * 200_000))])
    server = BackgroundServer(app, **uvicorn_options(Settings()))
    url = server.start()
    try:
        port = int(url.rsplit(":", 1)[1])
        for _ in range(5):
            conn = socket.create_connection(("127.0.0.1", port))
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert conn.recv(1024).startswith(b"HTTP/1.1 200")  # the rest is left unread
            time.sleep(0.1)  # the response completes on the server: keep-alive armed
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            gc.collect()
            # A count, not a list: a list kept from one look would itself keep the objects alive for the next.
            alive = sum(isinstance(o, BoundedH11Protocol) for o in gc.get_objects())
            if not alive:
                break
            time.sleep(0.05)
        assert alive == 0
    finally:
        server.stop()
