"""`python -m testkit.serve`: the real app, served as `python -m bedrock.agent_runtime` serves it, on 127.0.0.1
port 0; prints `PORT=N` first (what LiveServer reads). `run_forked` serves it in a process forked by LiveServer."""

from __future__ import annotations

import os
import socket
from typing import Any


def bind() -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def serve_on(sock: socket.socket) -> None:
    # Imported here, not above: the app is built from the environment when bedrock.agent_runtime is imported.
    from bedrock.agent_runtime import app, settings
    from bedrock.server.main import serve

    serve(app, settings, sock=sock, log_level="warning")


def run_forked(env: dict[str, str], cwd: str, log_path: str, port: Any) -> None:
    """A forked server's whole life: the environment and folder a fresh process would have, stdout and stderr to
    its log, its port sent on `port` (a multiprocessing Connection), then the same serving as `main`."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sock = bind()
    port.send(sock.getsockname()[1])
    port.close()
    serve_on(sock)


def main() -> None:
    sock = bind()
    print(f"PORT={sock.getsockname()[1]}", flush=True)
    serve_on(sock)


if __name__ == "__main__":
    main()
