"""Serve the real app on 127.0.0.1 port 0 and print `PORT=N` (used by tests' live-server fixtures)."""

import gc
import socket
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bedrock.agent_runtime import app, settings  # noqa: E402
from bedrock.allocator import tune_allocator  # noqa: E402
from bedrock.http_server import uvicorn_options  # noqa: E402


def main() -> None:
    # As `python -m bedrock.agent_runtime` does: the loaded modules leave the cyclic collector's scans.
    gc.collect()
    gc.freeze()
    tune_allocator()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT={sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", **uvicorn_options(settings))
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
