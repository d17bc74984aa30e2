"""`python -m bedrock.agent_runtime` itself: serves on $PORT and keeps idle connections longer than clients do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from testkit.env import OFFLINE_ENV as TEST_ENV
from testkit.live_server import ROOT
from testkit import loopback


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_module_serves_on_port_and_outlives_a_5s_client_keepalive(tmp_path: Path):
    port = free_port()
    env = {**os.environ, **TEST_ENV, "PORT": str(port), "BIND_HOST": "127.0.0.1",
           "AGENT_MEMORY_PATH": str(tmp_path / "m.sqlite")}
    process = subprocess.Popen([sys.executable, "-m", "bedrock.agent_runtime"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                loopback.get(url + "/ping", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        # A client pool that keeps idle connections 30 s, as many do (uvicorn's own default is 5 s).
        with loopback.Client(timeout=30, limits=httpx.Limits(keepalive_expiry=30)) as client:
            first = client.post(url + "/invocations", json={"prompt": "What is 1 + 1?"})
            assert first.json()["output"] == "The result of 1 + 1 is 2."
            first_local = first.extensions["network_stream"].get_extra_info("client_addr")
            time.sleep(5.5)  # past uvicorn's default keep-alive: our server must still hold the connection
            second = client.post(url + "/invocations", json={"prompt": "What is 2 + 2?"})
            assert second.json()["output"] == "The result of 2 + 2 is 4."
            # the same connection served both (no reconnect): the same local address
            assert second.extensions["network_stream"].get_extra_info("client_addr") == first_local
    finally:
        process.terminate()
        process.wait(20)
