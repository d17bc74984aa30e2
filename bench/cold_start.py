"""Cold start: what a new AgentCore session pays before its first answer.

AgentCore Runtime gives each session its own microVM, so every new session starts
`python -m bedrock.agent_runtime` from cold, and AgentCore sends the session's first request the moment `/ping`
answers. This starts N fresh processes of it (the model on Bedrock's wire: a standalone offline endpoint, started
once, answering at once; no AWS) and times, from process start:

- ready: the first `GET /ping` that answers 200 (polled every 5 ms);
- first token: the first `llm_token` of a first streamed request ("Tell me about the sea": one model call), sent
  the moment the server is ready;
- end: that request's end (`agent_end`);

plus each process's peak RSS (VmHWM). The floor, measured in the same run and interleaved with it, is
`bench/cold_floor.py`: the bare stack (bedrock_agentcore, langgraph, langchain_aws, boto3) imported, `/ping` served
by a BedrockAgentCoreApp, and the same request answered by calling `converse_stream` itself. It also prints the top
of `python -X importtime -c "import bedrock.agent_runtime"`. Loopback only; every process is killed at the end.

    python -m bench.cold_start [--runs 5] [--smoke] [--baseline DIR]

`--baseline DIR`: also start `python -m bedrock.agent_runtime` from another checkout (say, the commit before a
change), interleaved with the rest, and print how this one's ready time compares with it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import Endpoint, median, table

ROOT = Path(__file__).resolve().parent.parent
FLOOR = ROOT / "bench" / "cold_floor.py"
FLOOR_IMPORTS = "import bedrock_agentcore.runtime, langgraph.graph, langgraph.prebuilt, langchain_aws, boto3, uvicorn"
MARK = "--- floor imported ---"
BUDGET_S = 110.0  # stop starting new runs after this, so the default run stays under 2 minutes
PROMPT = {"prompt": "Tell me about the sea", "stream": True, "stream_tokens": True}
# How each streams a token: ours an `llm_token` event, the floor's BedrockAgentCoreApp a bare `data:` line.
TOKEN_LINES = ("event: llm_token", 'data: {"llm_token"')
POLL_S = 0.005
PROCESS_TIMEOUT_S = 30.0
# Anything that would pick another backend or a real model is left out of the children's environment.
# PYTHONDONTWRITEBYTECODE too: the floor's site-packages have their bytecode cached, so bedrock/ gets its
# cache written by the warm-up start (a deployed image should ship it; see bench/RESULTS_cold_start.md).
DROPPED = ("BEDROCK_AGENTCORE_MEMORY_ID", "AGENTCORE_MEMORY_ID", "MEMORY_BACKEND", "BEDROCK_MODEL_ID",
           "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_PROFILE", "AWS_SESSION_TOKEN",
           "PYTHONDONTWRITEBYTECODE")
IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


@dataclass
class Run:
    ready_ms: float
    ready_cpu_ms: float  # the process's user + system CPU when it first answered /ping
    first_token_ms: float  # after ready
    end_ms: float  # after ready
    peak_rss_mb: float

    @property
    def token_from_start_ms(self) -> float:
        return self.ready_ms + self.first_token_ms


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(folder: Path, port: int, endpoint_url: str = "http://127.0.0.1:9") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    env.update(
        MODEL_PROVIDER="bedrock",
        AWS_ENDPOINT_URL_BEDROCK_RUNTIME=endpoint_url,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AGENT_MEMORY_PATH=str(folder / "checkpoints.sqlite"),
        PORT=str(port),
        BIND_HOST="127.0.0.1",  # the SDK binds 0.0.0.0 when it thinks it is in a container
    )
    return env


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_ready(client: httpx.Client, url: str, process: subprocess.Popen, started: float,
               health: str = "/ping") -> float:
    """Seconds from `started` to the first `health` check (`/ping`) answered with 200."""
    deadline = started + PROCESS_TIMEOUT_S
    while True:
        try:
            if client.get(url + health).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before it was ready")
        if time.perf_counter() > deadline:
            raise RuntimeError("process never became ready")
        time.sleep(POLL_S)


def first_request(client: httpx.Client, url: str, ready_at: float) -> tuple[float, float]:
    """(first token, end of the stream) in seconds after `ready_at`; raises on an `error` event, or unless a token
    came (and, from ours, an `agent_end` with an answer)."""
    first = None
    event = ""
    ended = False
    with client.stream("POST", url + "/invocations", json=PROMPT, timeout=PROCESS_TIMEOUT_S) as response:
        if response.status_code != 200:
            raise RuntimeError(f"/invocations answered {response.status_code}: {response.read()[:500]!r}")
        for line in response.iter_lines():
            if first is None and line.startswith(TOKEN_LINES):
                first = time.perf_counter() - ready_at
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event in ("agent_end", "error"):
                data = json.loads(line[6:])
                if event == "error" or not data.get("output"):
                    raise RuntimeError(f"unexpected {event}: {data}")
                ended = True
        end = time.perf_counter() - ready_at
    if first is None or (event and not ended):
        raise RuntimeError("the stream ended without a token (or, from ours, an agent_end)")
    return first, end


def measure(command: list[str], endpoint_url: str, cwd: Path = ROOT) -> Run:
    """One fresh process: start → ready → first token → end, then its peak RSS; always killed."""
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        folder = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = None
        try:
            with open(folder / "stderr.log", "w") as log, httpx.Client(timeout=5.0) as client:
                started = time.perf_counter()
                process = subprocess.Popen(
                    command, cwd=cwd, env=child_env(folder, port, endpoint_url), stdout=subprocess.DEVNULL,
                    stderr=log
                )
                ready = wait_ready(client, url, process, started)
                ready_cpu = cpu_ms(process.pid)
                first, end = first_request(client, url, started + ready)
                rss = peak_rss_mb(process.pid)
            return Run(ready * 1000, ready_cpu, first * 1000, end * 1000, rss)
        except Exception:
            sys.stderr.write((folder / "stderr.log").read_text()[-3000:])
            raise
        finally:
            if process is not None:
                stop(process)


def import_times(code: str, after: str | None = None, top: int = 10) -> list[tuple[float, float, str]]:
    """(cumulative ms, self ms, module) of the `top` slowest imports of `python -X importtime -c code`,
    counting only those reported after the line `after` when given."""
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            check=False, cwd=ROOT, env=child_env(Path(tmp), free_port()), capture_output=True, text=True,
            timeout=PROCESS_TIMEOUT_S,
        )
    if result.returncode != 0:
        raise RuntimeError(f"import failed: {result.stderr[-3000:]}")
    lines = result.stderr.splitlines()
    if after is not None:
        lines = lines[lines.index(after) + 1:]
    rows = []
    for line in lines:
        match = IMPORT_LINE.match(line)
        if match:
            own, cumulative, indent, name = match.groups()
            rows.append((int(cumulative) / 1000, int(own) / 1000, "·" * (len(indent) // 2) + name))
    return sorted(rows, key=lambda row: row[0], reverse=True)[:top]


def import_table(rows: list[tuple[float, float, str]]) -> str:
    return table(["cumulative ms", "self ms", "module (· = nesting)"],
                 [[f"{c:.1f}", f"{s:.1f}", n] for c, s, n in rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes of each kind (default 5)")
    parser.add_argument("--smoke", action="store_true", help="1 run, no warm-up: checks it works, not speed")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with, in the same run")
    args = parser.parse_args()
    with Endpoint(0) as endpoint:
        floor, agent, baseline = measure_all(1 if args.smoke else max(1, args.runs), endpoint.url, args.smoke,
                                             args.baseline)
    report(floor, agent, baseline, args.baseline)
    print('\n## `python -X importtime -c "import bedrock.agent_runtime"`, top 10 cumulative\n')
    print(import_table(import_times("import bedrock.agent_runtime")))
    print("\n## The same, only what is imported beyond the floor's stack (and uvicorn), top 10 cumulative\n")
    code = f"{FLOOR_IMPORTS}\nimport sys\nsys.stderr.write({MARK!r} + '\\n')\nimport bedrock.agent_runtime"
    print(import_table(import_times(code, after=MARK)))
    return 0


def measure_all(runs: int, url: str, smoke: bool, baseline_dir: Path | None) -> tuple[list[Run], list[Run], list[Run]]:
    """`runs` of the floor, ours (and the baseline's), interleaved so drift on the machine hits all alike."""
    agent_cmd = [sys.executable, "-m", "bedrock.agent_runtime"]
    floor_cmd = [sys.executable, str(FLOOR)]
    started = time.monotonic()
    if not smoke:  # one untimed start of each: page cache and .pyc files, not the code, would differ
        measure(floor_cmd, url)
        measure(agent_cmd, url)
        if baseline_dir:
            measure(agent_cmd, url, cwd=baseline_dir)
    floor: list[Run] = []
    agent: list[Run] = []
    baseline: list[Run] = []
    for _ in range(runs):
        if floor and time.monotonic() - started > BUDGET_S:
            print(f"(time budget reached: {len(floor)} of {runs} runs)")
            break
        floor.append(measure(floor_cmd, url))
        agent.append(measure(agent_cmd, url))
        if baseline_dir:
            baseline.append(measure(agent_cmd, url, cwd=baseline_dir))
    return floor, agent, baseline


def report(floor: list[Run], agent: list[Run], baseline: list[Run], baseline_dir: Path | None) -> None:
    floor_ready, agent_ready = median([r.ready_ms for r in floor]), median([r.ready_ms for r in agent])
    floor_token = median([r.token_from_start_ms for r in floor])
    agent_token = median([r.token_from_start_ms for r in agent])
    print(f"## Cold start, median of {len(floor)} fresh processes each (the model on Bedrock's wire: a standalone "
          f"offline endpoint; {os.cpu_count()} cores)\n")
    print(table(
        ["process", "ready ms (start → /ping 200)", "ready × floor", "CPU ms at ready", "first token after ready ms",
         "end after ready ms", "first token from start ms", "× floor", "peak RSS MB"],
        [row("floor: bare stack, BedrockAgentCoreApp, converse_stream", floor, floor_ready, floor_token),
         row("python -m bedrock.agent_runtime", agent, floor_ready, floor_token)]))
    after_ready = median([r.first_token_ms for r in agent])
    print(f"\n- {'met' if agent_token <= 0.9 * floor_token else '**missed**'}: process start → first token ≤ 0.9× "
          f"the floor's ({agent_token:.0f} ms, {agent_token / floor_token:.2f}× its {floor_token:.0f} ms)")
    print(f"- {'met' if after_ready <= 100 else '**missed**'}: first token ≤ 100 ms after ready ({after_ready:.0f} ms)")
    if baseline:
        base_ready = median([r.ready_ms for r in baseline])
        print(f"\nbaseline {baseline_dir}: ready {base_ready:.0f} ms ({base_ready / floor_ready:.2f}× floor), "
              f"first token from start {median([r.token_from_start_ms for r in baseline]):.0f} ms; "
              f"this checkout's ready = {agent_ready / base_ready:.3f}× the baseline's")
    print("\nper run (ms): ready / first token after ready / end after ready")
    for i, (f, a) in enumerate(zip(floor, agent, strict=True), 1):  # one of each per round
        print(f"  {i}: floor {f.ready_ms:.0f} / {f.first_token_ms:.0f} / {f.end_ms:.0f}; "
              f"agent {a.ready_ms:.0f} / {a.first_token_ms:.0f} / {a.end_ms:.0f}")


def row(label: str, runs: list[Run], floor_ready: float, floor_token: float) -> list[object]:
    ready, token = median([r.ready_ms for r in runs]), median([r.token_from_start_ms for r in runs])
    return [label, f"{ready:.0f}", f"{ready / floor_ready:.2f}×", f"{median([r.ready_cpu_ms for r in runs]):.0f}",
            f"{median([r.first_token_ms for r in runs]):.0f}", f"{median([r.end_ms for r in runs]):.0f}",
            f"{token:.0f}", f"{token / floor_token:.2f}×", f"{median([r.peak_rss_mb for r in runs]):.0f}"]


if __name__ == "__main__":
    sys.exit(main())
