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

import httpx

from testkit.env import OFFLINE_ENV

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
            port = int(found.group(1)) if found else time.sleep(0.05)
        if port is None and server.poll() is None:
            server.send_signal(signal.SIGABRT)
            server.wait(10)
        assert port, (f"after {time.monotonic() - started:.1f} s, exit code {server.poll()}:\n"
                      + Path(log.name).read_text())
        url = f"http://127.0.0.1:{port}"
        reply = httpx.post(url + "/invocations", json={"prompt": "What is 25 * 4?"}, timeout=30)
        assert reply.status_code == 200 and "100" in reply.json()["output"], reply.text
        # A request head that never ends: our protocol answers 408 in the catalog's shape (uvicorn's own waits).
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
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
