"""An ASGI app served by uvicorn on its own thread and loop, on 127.0.0.1 port 0."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn


class BackgroundServer:
    """Start with `start()` (returns the base URL), stop with `stop()`; a daemon thread never blocks exit."""

    def __init__(self, app: Any, host: str = "127.0.0.1", **config: Any) -> None:
        self.app = app
        self.host = host
        # No logging set-up: uvicorn.Config configures the process's `uvicorn.*` loggers (dictConfig, levels) when
        # made, and this one is made on the agent-build thread while the main server logs. With `log_level`
        # "warning" here, the main server's "Uvicorn running on …" line was dropped in ~1 of 12 starts under the
        # uvicorn CLI (`agentcore dev`), which is how its port is found.
        self.config = {"log_config": None, "log_level": None, "lifespan": "off", **config}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.url = ""

    def start(self, timeout_s: float = 10.0) -> str:
        """Bind, serve, and wait until requests are accepted."""
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP,
        # and without it Nagle's algorithm adds ~40 ms to every small response.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        port = sock.getsockname()[1]
        self._server = server = uvicorn.Server(uvicorn.Config(self.app, **self.config))
        self._thread = threading.Thread(target=self._serve, args=(server, sock), name=f"server-{port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"background server on port {port} failed to start")
            time.sleep(0.005)
        self.url = f"http://{self.host}:{port}"
        return self.url

    def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(server.serve(sockets=[sock]))
        finally:
            self.loop.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the server to exit and wait for its thread."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout_s)
