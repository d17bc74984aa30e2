"""The app served by uvicorn's own command line, as `agentcore dev` serves it (`uvicorn
bedrock.agent_runtime:app`, UVICORN_* variables from agentcore/.env.local): the same process set-up as under
`python -m bedrock.agent_runtime` (our log handler, from the app's lifespan) and the same connection bounds."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit.env import OFFLINE_ENV
from testkit import loopback

ROOT = Path(__file__).resolve().parents[2]


def test_uvicorn_cli_serves_with_our_log_handler_and_bounded_connections(tmp_path):
    env = {**os.environ, **OFFLINE_ENV, "AGENT_MEMORY_PATH": str(tmp_path / "m.sqlite"), "LOG_LEVEL": "INFO",
           # Long enough that a loaded machine still sends the head's first bytes in time (the timer starts
           # with the connection: a head with no byte at all is closed without an answer).
           "REQUEST_READ_TIMEOUT_S": "2",
           # What agentcore/.env.local gives `agentcore dev`'s uvicorn:
           "UVICORN_HTTP": "bedrock.agent_runtime:http_protocol",
           "PYTHONFAULTHANDLER": "1"}  # a server that never starts is sent SIGABRT: every thread's stack in its log
    log = open(tmp_path / "server.log", "w+")
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "bedrock.agent_runtime:app", "--host", "127.0.0.1",
                               "--port", "0"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        port = None
        started = time.monotonic()  # a bound, not a pause
        while port is None and time.monotonic() < started + 60 and server.poll() is None:
            found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", Path(log.name).read_text())
            if found:
                port = int(found.group(1))
            else:
                time.sleep(0.05)
        if port is None and server.poll() is None:
            server.send_signal(signal.SIGABRT)
            server.wait(10)
        assert port, (f"after {time.monotonic() - started:.1f} s, exit code {server.poll()}:\n"
                      + Path(log.name).read_text())
        url = f"http://127.0.0.1:{port}"
        reply = loopback.post(url + "/invocations", json={"prompt": "What is 25 * 4?"}, timeout=30)
        assert reply.status_code == 200 and "100" in reply.json()["output"], reply.text
        # A request head that never ends: our protocol answers 408 in the catalog's shape (uvicorn's own waits).
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            answer = b""
            while chunk := slow.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408") and b'"code": "request_timeout"' in answer, answer
    finally:
        server.terminate()
        server.wait(30)
    printed = Path(log.name).read_text()
    assert "bedrock.server.main: serving POST /invocations; model: offline" in printed, printed


def test_a_serving_process_freezes_its_imports_and_collects_the_old_generation_rarely():
    script = ("import gc\n"
              "from bedrock.config import Settings\n"
              "from bedrock.server.main import GC_THRESHOLDS, prepare_process\n"
              "prepare_process(Settings())\n"
              "print(gc.get_threshold() == GC_THRESHOLDS, GC_THRESHOLDS[2] > 10, gc.get_freeze_count() > 10_000)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2],
                          env={**os.environ, **OFFLINE_ENV}, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "True", "True"], done.stderr


def serving(env: dict[str, str]) -> dict[str, str]:
    """`python -m bedrock.agent_runtime`'s environment: offline, on loopback, its memory in a temporary folder."""
    return {**os.environ, **OFFLINE_ENV, "BIND_HOST": "127.0.0.1", "LOG_LEVEL": "INFO", **env}


@pytest.mark.parametrize("reuse", [False, True], ids=["plain", "SO_REUSEADDR"])
def test_a_port_already_taken_is_one_clear_error_and_no_listening_line(tmp_path, reuse):
    """The port is bound before anything starts: taken, the process ends at once, exit status 1, with one error
    line that names the port — no "listening", and no app started (no session memory opened)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        if reuse:  # as a restarting server's socket has it (ours too): the port stays taken while it listens
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "bedrock.agent_runtime"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120,
                              env=serving({"PORT": str(port), "AGENT_MEMORY_PATH": str(tmp_path / "m.sqlite")}))
    printed = done.stdout + done.stderr
    assert done.returncode == 1, printed
    errors = [line for line in printed.splitlines() if "ERROR" in line]
    assert len(errors) == 1, printed
    assert f"cannot listen on 127.0.0.1 port {port}: Address already in use" in errors[0], printed
    assert "set PORT to another port" in errors[0]
    assert "listening" not in printed and "Traceback" not in printed and "session memory" not in printed, printed


def test_listening_is_logged_once_the_port_accepts_connections(tmp_path):
    """"listening on http://…" comes after the app has started and the socket listens, with the port it really
    has (PORT=0: one the system chose), and only once."""
    log = open(tmp_path / "server.log", "w+")
    server = subprocess.Popen([sys.executable, "-m", "bedrock.agent_runtime"], cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT,
                              env=serving({"PORT": "0", "AGENT_MEMORY_PATH": str(tmp_path / "m.sqlite")}))
    try:
        found = None
        started = time.monotonic()  # a bound, not a pause
        while found is None and time.monotonic() < started + 60 and server.poll() is None:
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+) \(chat page: http://localhost:\d+/\)",
                              Path(log.name).read_text())
            if found is None:
                time.sleep(0.02)
        assert found, Path(log.name).read_text()
        port = int(found.group(1))
        assert port != 0
        # Logged, so accepting: a connection and a request succeed at once, no retry.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        assert loopback.get(f"http://127.0.0.1:{port}/ping", timeout=10).status_code == 200
    finally:
        server.terminate()
        server.wait(30)
    printed = Path(log.name).read_text()
    assert printed.count("listening on") == 1, printed
    assert printed.index("serving POST /invocations") < printed.index("listening on"), printed


@pytest.mark.parametrize("container", [False, True])
def test_the_default_address_is_the_sdks_choice(monkeypatch, container):
    """`serve` binds PORT itself (to fail before anything starts), no longer through `BedrockAgentCoreApp.run`: its
    address without BIND_HOST must stay the one the SDK's `run` would choose (every interface in a container)."""
    import uvicorn
    from bedrock_agentcore.runtime import BedrockAgentCoreApp

    from bedrock.server.main import default_host

    monkeypatch.delenv("DOCKER_CONTAINER", raising=False)
    if container:
        monkeypatch.setenv("DOCKER_CONTAINER", "1")
    chosen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: chosen.update(options))
    BedrockAgentCoreApp().run(port=1)
    assert default_host() == chosen["host"]
