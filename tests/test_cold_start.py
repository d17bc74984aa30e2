"""Cold start: the bench runs, the import stays lean, and the agent is built without holding up /ping."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from bedrock.config import Settings
from bedrock.core.model import LazyClient, make_model
from testkit import loopback
from testkit.env import OFFLINE_ENV as TEST_ENV
from testkit.live_server import ROOT

# Test-only, deploy-time, client-side or optional modules: none of them belongs on the serving path.
OFF_THE_SERVING_PATH = (
    "langgraph_checkpoint_aws",
    "bedrock_agentcore_starter_toolkit",
    "moto",
    "hypothesis",
    "pytest",
    "bedrock.client",
    "bedrock.offline.endpoint",  # offline runs only, and imported by the build, not at import
    "aiobotocore",  # with aiohttp ~120 ms: loaded by the agent's build, after /ping answers
    "aiohttp",
    "testkit",
    "bedrock.mcp",  # MCP_SERVERS only, and imported by the build then (tests/mcp: not by a build without it)
    "a2a",  # a2a-sdk: imported on the first A2A request (bedrock/a2a/app.py), never by a start
    "langchain_mcp_adapters",
    "mcp",
    "authlib",
)

# The real app under uvicorn, whose agent build waits until the file argv[1] exists.
GATED_SERVER = """
import socket, sys, time
from pathlib import Path

import uvicorn

import bedrock.agent_runtime as runtime
import bedrock.server.runtime as building

gate, build_agent = Path(sys.argv[1]), building.build_agent

def gated_build(*args, **kwargs):
    while not gate.exists():
        time.sleep(0.01)
    return build_agent(*args, **kwargs)

building.build_agent = gated_build
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
sock.bind(("127.0.0.1", 0))
print(f"PORT={sock.getsockname()[1]}", flush=True)
uvicorn.Server(uvicorn.Config(runtime.app, log_level="warning")).run(sockets=[sock])
"""


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, **TEST_ENV, "AGENT_MEMORY_PATH": str(tmp_path / "memory" / "m.sqlite"), **extra}


@pytest.mark.slow
def test_bench_smoke_prints_its_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.cold_start", "--smoke"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "| process | ready ms (start → /ping 200) | ready × floor |" in result.stdout
    assert "| floor: bare stack, BedrockAgentCoreApp, converse_stream |" in result.stdout
    assert "| python -m bedrock.agent_runtime |" in result.stdout
    # both streamed their first token (the floor through converse_stream itself), and both goals were judged
    assert "process start → first token ≤ 0.9× the floor's" in result.stdout
    assert "first token ≤ 100 ms after ready" in result.stdout
    assert "| cumulative ms | self ms | module (· = nesting) |" in result.stdout


def test_importing_the_runtime_leaves_optional_and_test_modules_alone() -> None:
    code = "import sys, bedrock.agent_runtime; print('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = set(result.stdout.split())
    assert "bedrock.agent_runtime" in loaded
    unwanted = sorted(m for m in loaded for name in OFF_THE_SERVING_PATH if m == name or m.startswith(name + "."))
    assert unwanted == []


def test_ping_answers_while_the_agent_is_built_and_requests_wait_for_it(tmp_path: Path) -> None:
    gate = tmp_path / "build-may-finish"
    process = subprocess.Popen(
        [sys.executable, "-c", GATED_SERVER, str(gate)],
        cwd=ROOT, env=server_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("PORT="), line
        url = f"http://127.0.0.1:{line.strip().split('=', 1)[1]}"
        with loopback.Client(base_url=url, timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:  # the build cannot finish yet, so a 200 here means /ping does not wait for it
                try:
                    if client.get("/ping").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server never answered /ping"
                time.sleep(0.02)
            refused = client.post("/invocations", json={"prompt": ""})  # validation needs no agent
            assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_payload"

            answers: dict[str, httpx.Response] = {}

            def send(name: str, path: str, prompt: str) -> None:
                with loopback.Client(base_url=url, timeout=30) as own:
                    answers[name] = own.post(path, json={"prompt": prompt})

            waiting = [
                threading.Thread(target=send, args=("invocations", "/invocations", "What is 6 * 7?")),
                threading.Thread(target=send, args=("stream", "/stream", "What is 2 + 3?")),
            ]
            for thread in waiting:
                thread.start()
            time.sleep(0.3)
            assert all(thread.is_alive() for thread in waiting), "a request was answered before the agent was built"
            assert client.get("/ping").status_code == 200  # neither event loop is blocked by the waiting requests
            gate.touch()
            for thread in waiting:
                thread.join(30)
        assert answers["invocations"].status_code == 200
        assert answers["invocations"].json()["output"] == "The result of 6 * 7 is 42."
        assert answers["stream"].status_code == 200
        assert "event: agent_end" in answers["stream"].text and "The result of 2 + 3 is 5." in answers["stream"].text
    finally:
        gate.touch()
        process.terminate()
        process.wait(20)


def test_a_server_whose_agent_cannot_be_built_stops(tmp_path: Path) -> None:
    (tmp_path / "memory").write_text("a file where the memory folder should be")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = server_env(tmp_path, PORT=str(port), BIND_HOST="127.0.0.1")
    result = subprocess.run(
        [sys.executable, "-m", "bedrock.agent_runtime"],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "could not build the agent" in result.stderr


def test_the_blocking_boto3_clients_are_built_on_first_use() -> None:
    # The graph calls the model through aiobotocore; the control-plane client and the blocking runtime client
    # serve only sync calls and inference-profile lookups, so a cold start does not pay for them.
    model = make_model(Settings(model_provider="bedrock", aws_region="eu-west-1"), "http://127.0.0.1:9")
    lazy = model.bedrock_client
    assert isinstance(lazy, LazyClient) and lazy._client is None
    assert model.client._client._client is None
    assert lazy.meta.service_model.service_name == "bedrock"
    assert (lazy.meta.region_name, lazy.meta.endpoint_url) == ("eu-west-1", "http://127.0.0.1:9")
    assert lazy._client is not None and model.client.meta.service_model.service_name == "bedrock-runtime"


def test_the_servers_build_reads_the_graphs_input_fields_so_the_first_request_does_not(monkeypatch) -> None:
    from bedrock.server.runtime import Runtime

    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    runtime = Runtime(Settings.from_env({**os.environ, "MEMORY_BACKEND": "memory"}))
    agent = runtime.start_build().result(timeout=60)
    try:
        # a cached_property lives in the instance's dict once read: pydantic's JSON schema is made already
        assert "_fields" in vars(agent.inputs) and "messages" in agent.inputs._fields
    finally:
        agent.close()
