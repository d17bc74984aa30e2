"""Serving the app as a process: `python -m bedrock.agent_runtime` (and the test kit's live servers) run `serve`;
`uvicorn bedrock.agent_runtime:app` (as `agentcore dev` does) gets the same process set-up from the app's
lifespan (`prepare_process`), and the same server options from `UVICORN_*` variables (`agentcore/.env.local`)."""

from __future__ import annotations

import errno
import gc
import logging
import os
import signal
import socket
from concurrent.futures import Future
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import uvicorn  # loaded with the app anyway (its h11 protocol: connections.py)

from bedrock.config import Settings
from bedrock.server.allocator import tune_allocator
from bedrock.server.connections import uvicorn_options
from bedrock.server.logs import adopt_foreign_loggers, process_handler

if TYPE_CHECKING:
    from starlette.applications import Starlette

logger = logging.getLogger(__name__)

# The cyclic collector's thresholds: Python's (700, 10, 10) but a full collection 10× rarer. With 100 paced
# streams, turns in flight are alive at every young collection, so their objects are promoted and a full
# collection (~65 ms here) came every ~70 turns: 0.9 ms of server CPU a turn, 48% of the GC's time, and a
# 65 ms gap in every stream when it ran. At (700, 10, 100): none in 500 turns, −1.0 ms/turn (gc.callbacks
# timing, bench/capacity.py's load). The young thresholds stay: a larger first one (5,000) bought no more,
# and at 50,000 the garbage between collections cost +45 MB of RSS (bench/soak.py).
GC_THRESHOLDS = (700, 10, 100)


def prepare_process(settings: Settings, serving: str = "POST /invocations") -> None:
    """What a serving process sets up once its modules are loaded (once: a second call changes nothing).

    Every new AgentCore session starts from cold: its imports leave ~230k objects that the cyclic collector
    would scan again and again (`python -m bedrock.agent_runtime` runs with the collector off while they load).
    Frozen here, they leave later collections (they live as long as the process anyway); see
    bench/RESULTS_cold_start.md. Freed memory goes back to the system after bursts (`allocator.py`).
    """
    if not install_log_handler(settings):
        return
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    gc.enable()
    tune_allocator()
    offline = settings.model_provider == "offline"
    model = "offline rule-based stand-in (not an LLM)" if offline else settings.bedrock_model_id
    logger.info("serving %s; model: %s", serving, model)


def install_log_handler(settings: Settings) -> bool:
    """Our loggers' handler (LOG_FORMAT) on the `bedrock` logger; the SDK's logger and uvicorn's keep their own
    handlers, in our format. False if the process has it already."""
    root = logging.getLogger("bedrock")
    if any(getattr(handler, "bedrock_process", False) for handler in root.handlers):
        return False
    handler = process_handler(settings)
    handler.bedrock_process = True  # type: ignore[attr-defined]  # our mark, found by the check above
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    adopt_foreign_loggers(settings)
    return True


def stop_if_failed(build: Future[Any]) -> None:
    """A done-callback of the agent's build: a server whose agent cannot be built stops, as a failed startup would,
    rather than answer errors. Only for the app its process serves; an embedded one answers `internal_error` and
    retries the build."""
    if build.exception() is not None:
        os.kill(os.getpid(), signal.SIGTERM)


def serve(app: Starlette, settings: Settings, *, sock: socket.socket | None = None,
          serving: str = "POST /invocations", **uvicorn_config: object) -> None:
    """Serve `app` until SIGTERM/SIGINT: on PORT (BIND_HOST, else the SDK's choice), or on a bound `sock`.

    The port is bound first, before the app starts: a port that is taken ends the process at once, with one error
    that names it (exit status 1), and "listening" is logged only once the server accepts connections on it."""
    defaults: dict[str, Any] = {}
    if sock is None:
        host = settings.bind_host or default_host()
        try:
            sock = bind(host, settings.port)
        except OSError as exc:
            install_log_handler(settings)
            taken = exc.errno == errno.EADDRINUSE
            logger.error("cannot listen on %s port %d: %s%s", host, settings.port, exc.strerror or exc,
                         " (another process is using it: stop it, or set PORT to another port)" if taken else "")
            raise SystemExit(1) from None
        # What `BedrockAgentCoreApp.run` gave uvicorn, which served PORT before: the access log and uvicorn's own
        # level follow the app's debug.
        defaults = {"access_log": app.debug, "log_level": "info" if app.debug else "warning"}
    prepare_process(settings, serving)
    options = {**defaults, **uvicorn_options(settings), **uvicorn_config}
    runtime = getattr(app.state, "runtime", None)
    settle = runtime.settle_sockets if runtime is not None else None
    AnnouncingServer(uvicorn.Config(app, **options), settings, settle).run(sockets=[sock])


def default_host() -> str:
    """The SDK's choice of address (`BedrockAgentCoreApp.run`): every interface in a container, else loopback."""
    in_container = os.path.exists("/.dockerenv") or bool(os.environ.get("DOCKER_CONTAINER"))
    return "0.0.0.0" if in_container else "127.0.0.1"  # nosec B104 - a container's port must be reachable


def bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A TCP socket listening on (host, port), for uvicorn to accept on; OSError if it cannot be: the port is
    taken (EADDRINUSE), not ours to take (EACCES), or the host is not an address of this machine."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # As asyncio's own create_server does: a restart may bind while old connections are in TIME_WAIT (a port
        # that another socket listens on stays refused).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)  # uvicorn's default backlog; connections wait in it until the app has started
    except OSError:
        sock.close()
        raise
    return sock


def _announce(settings: Settings, sock: socket.socket) -> None:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    page = f" (chat page: http://localhost:{port}/)" if settings.serve_ui else ""
    logger.info("listening on http://%s:%d%s", shown, port, page)


class AnnouncingServer(uvicorn.Server):
    """uvicorn's Server, which says where it listens once it does: after its startup (the app's lifespan, then
    the socket listening), never before — a server that fails to start says nothing of the kind."""

    def __init__(self, config: uvicorn.Config, settings: Settings,
                 settle: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__(config)
        self.settings = settings
        self.settle = settle

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets:
            _announce(self.settings, sockets[0])

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown closes every WebSocket at once (1012), cutting the runs they follow before their last
        event: first no new connection, then `settle` (the runtime's: those runs end within the grace, their
        `server_shutting_down` sent), then uvicorn's (HTTP streams get theirs from sse-starlette meanwhile)."""
        if self.settle is not None:
            for server in self.servers:
                server.close()  # (uvicorn's own close of them, next, finds them closed)
            await self.settle()
        await super().shutdown(sockets)
