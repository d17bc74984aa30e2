"""Cold start: what a new AgentCore session pays before its first answer.

AgentCore Runtime gives each session its own microVM, so every new session starts
`python -m bedrock.agent_runtime` from cold. This starts N fresh processes of it (offline model, no AWS)
and times, from process start:

- ready: the first `GET /ping` that answers 200 (polled every 5 ms);
- first token: the first `llm_token` of a first streamed request, sent the moment the server is ready;
- end: that request's `agent_end`;

plus each process's peak RSS (VmHWM). The floor, measured in the same run and interleaved with it, is
`bench/cold_floor.py`: the bare stack (bedrock_agentcore, langgraph, langchain_aws, boto3) imported and
`/ping` served by a BedrockAgentCoreApp. It also prints the top of `python -X importtime -c "import
bedrock.agent_runtime"`. Loopback only; every process is killed at the end.

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
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
FLOOR = ROOT / "bench" / "cold_floor.py"
FLOOR_IMPORTS = "import bedrock_agentcore.runtime, langgraph.graph, langgraph.prebuilt, langchain_aws, boto3, uvicorn"
MARK = "--- floor imported ---"
BUDGET_S = 110.0  # stop starting new runs after this, so the default run stays under 2 minutes
PROMPT = {"prompt": "What is 25 * 4?", "stream": True, "stream_tokens": True}
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
    first_token_ms: float | None  # after ready
    end_ms: float | None  # after ready
    peak_rss_mb: float


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(folder: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    env.update(
        MODEL_PROVIDER="offline",
        OFFLINE_TOKEN_DELAY_MS="0",
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


def wait_ready(client: httpx.Client, url: str, process: subprocess.Popen, started: float) -> float:
    """Seconds from `started` to the first `/ping` answered with 200."""
    deadline = started + PROCESS_TIMEOUT_S
    while True:
        try:
            if client.get(url + "/ping").status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before it was ready")
        if time.perf_counter() > deadline:
            raise RuntimeError("process never became ready")
        time.sleep(POLL_S)


def first_request(client: httpx.Client, url: str, ready_at: float) -> tuple[float, float]:
    """(first llm_token, agent_end) in seconds after `ready_at`; raises unless the turn ends with agent_end."""
    first = end = None
    event = ""
    with client.stream("POST", url + "/invocations", json=PROMPT, timeout=PROCESS_TIMEOUT_S) as response:
        if response.status_code != 200:
            raise RuntimeError(f"/invocations answered {response.status_code}: {response.read()[:500]!r}")
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
                if event == "llm_token" and first is None:
                    first = time.perf_counter() - ready_at
                elif event == "agent_end":
                    end = time.perf_counter() - ready_at
            elif line.startswith("data: ") and event in ("agent_end", "error"):
                data = json.loads(line[6:])
                if event == "error" or "100" not in data.get("output", ""):
                    raise RuntimeError(f"unexpected {event}: {data}")
    if first is None or end is None:
        raise RuntimeError("the stream ended without an llm_token and an agent_end")
    return first, end


def measure(command: list[str], request: bool, cwd: Path = ROOT) -> Run:
    """One fresh process: start → ready (→ first token → end), then its peak RSS; always killed."""
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        folder = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = None
        try:
            with open(folder / "stderr.log", "w") as log, httpx.Client(timeout=5.0) as client:
                started = time.perf_counter()
                process = subprocess.Popen(
                    command, cwd=cwd, env=child_env(folder, port), stdout=subprocess.DEVNULL, stderr=log
                )
                ready = wait_ready(client, url, process, started)
                ready_cpu = cpu_ms(process.pid)
                first = end = None
                if request:
                    first, end = first_request(client, url, started + ready)
                rss = peak_rss_mb(process.pid)
            return Run(ready * 1000, ready_cpu, first and first * 1000, end and end * 1000, rss)
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


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def median(values: list[float | None]) -> float:
    return statistics.median(v for v in values if v is not None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes of each kind (default 5)")
    parser.add_argument("--smoke", action="store_true", help="1 run, no warm-up: checks it works, not speed")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with, in the same run")
    args = parser.parse_args()
    runs = 1 if args.smoke else max(1, args.runs)
    agent_cmd = [sys.executable, "-m", "bedrock.agent_runtime"]
    floor_cmd = [sys.executable, str(FLOOR)]

    started = time.monotonic()
    if not args.smoke:  # one untimed start of each: page cache and .pyc files, not the code, would differ
        measure(floor_cmd, request=False)
        measure(agent_cmd, request=True)
        if args.baseline:
            measure(agent_cmd, request=True, cwd=args.baseline)
    floor: list[Run] = []
    agent: list[Run] = []
    baseline: list[Run] = []
    for _ in range(runs):  # interleaved, so drift on the machine hits both alike
        if floor and time.monotonic() - started > BUDGET_S:
            print(f"(time budget reached: {len(floor)} of {runs} runs)")
            break
        floor.append(measure(floor_cmd, request=False))
        agent.append(measure(agent_cmd, request=True))
        if args.baseline:
            baseline.append(measure(agent_cmd, request=True, cwd=args.baseline))
    runs = len(floor)

    floor_ready = median([r.ready_ms for r in floor])
    agent_ready = median([r.ready_ms for r in agent])
    print(f"## Cold start, median of {runs} fresh processes each (offline endpoint, {os.cpu_count()} cores)\n")
    print(table(
        ["process", "ready ms (start → /ping 200)", "ready × floor", "CPU ms at ready", "first token after ready ms",
         "agent_end after ready ms", "first token from start ms", "peak RSS MB"],
        [
            ["floor: bare stack + BedrockAgentCoreApp /ping", f"{floor_ready:.0f}", "1.00×",
             f"{median([r.ready_cpu_ms for r in floor]):.0f}", "—", "—", "—",
             f"{median([r.peak_rss_mb for r in floor]):.0f}"],
            ["python -m bedrock.agent_runtime", f"{agent_ready:.0f}", f"{agent_ready / floor_ready:.2f}×",
             f"{median([r.ready_cpu_ms for r in agent]):.0f}",
             f"{median([r.first_token_ms for r in agent]):.0f}", f"{median([r.end_ms for r in agent]):.0f}",
             f"{median([r.ready_ms + r.first_token_ms for r in agent]):.0f}",
             f"{median([r.peak_rss_mb for r in agent]):.0f}"],
        ],
    ))
    if baseline:
        base_ready = median([r.ready_ms for r in baseline])
        print(f"\nbaseline {args.baseline}: ready {base_ready:.0f} ms ({base_ready / floor_ready:.2f}× floor), "
              f"first token from start {median([r.ready_ms + r.first_token_ms for r in baseline]):.0f} ms; "
              f"this checkout's ready = {agent_ready / base_ready:.3f}× the baseline's")
    print("\nper run (ms): ready / first token after ready / end after ready")
    for i, (f, a) in enumerate(zip(floor, agent, strict=True), 1):  # one of each per round
        print(f"  {i}: floor {f.ready_ms:.0f}; agent {a.ready_ms:.0f} / {a.first_token_ms:.0f} / {a.end_ms:.0f}")

    print('\n## `python -X importtime -c "import bedrock.agent_runtime"`, top 10 cumulative\n')
    print(import_table(import_times("import bedrock.agent_runtime")))
    print("\n## The same, only what is imported beyond the floor's stack (and uvicorn), top 10 cumulative\n")
    code = f"{FLOOR_IMPORTS}\nimport sys\nsys.stderr.write({MARK!r} + '\\n')\nimport bedrock.agent_runtime"
    print(import_table(import_times(code, after=MARK)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
