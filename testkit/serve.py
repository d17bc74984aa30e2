"""`python -m testkit.serve`: the real app, served as `python -m bedrock.agent_runtime` serves it, on 127.0.0.1
port 0; prints `PORT=N` first (what LiveServer reads)."""

import socket

from bedrock.agent_runtime import app, settings
from bedrock.server.main import serve


def main() -> None:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT={sock.getsockname()[1]}", flush=True)
    serve(app, settings, sock=sock, log_level="warning")


if __name__ == "__main__":
    main()
