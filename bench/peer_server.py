"""LangGraph's own Agent Server serving bench/peer_graph.py's graph, the peer bench/peer.py measures ours beside.

    .venv/bench/bin/python -m bench.peer_server JOBS [--dev-defaults]   # prints PORT=N, then is `langgraph dev`

`langgraph dev` (langgraph-api with its in-memory runtime: runs, threads and checkpoints in the process), given its
best showing for a benchmark: no reloader, no per-call blocking-I/O checks (`--allow-blocking`), warnings-only logs
(ours are served at WARNING too), no browser, JOBS runs at once (its default, 10, would queue a burst).
`--dev-defaults`: as its docs start it instead (blocking-I/O checks on, info logs).

The process becomes `langgraph dev` (exec), so its /proc counters are the server's own. It runs in the working
directory the caller gives, where it keeps its dev-persistence files and is given its langgraph.json (written there,
with absolute paths: `langgraph dev` reads a graph's path from its working directory, not from the file's).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main() -> None:
    jobs = sys.argv[1] if len(sys.argv) > 1 else "100"
    config = Path("langgraph.json").resolve()
    config.write_text(json.dumps({"dependencies": [str(BENCH.parent)],
                                  "graphs": {"agent": f"{BENCH / 'peer_graph.py'}:graph",
                                             "agent_stock": f"{BENCH / 'peer_graph.py'}:graph_stock"}}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    print(f"PORT={port}", flush=True)
    os.dup2(2, 1)  # its own output to the log: nobody reads the pipe PORT was printed on after this
    langgraph = str(Path(sys.executable).parent / "langgraph")
    os.environ.update(LANGGRAPH_CLI_NO_ANALYTICS="1", LANGSMITH_TRACING="false")
    best = [] if "--dev-defaults" in sys.argv else ["--allow-blocking", "--server-log-level", "WARNING"]
    os.execv(langgraph, [langgraph, "dev", "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                         "--no-browser", "--no-reload", "--n-jobs-per-worker", jobs, *best])


if __name__ == "__main__":
    main()
