"""Serving the app as a process: `python -m bedrock.agent_runtime` (and the test kit's live servers) run `serve`;
`uvicorn bedrock.agent_runtime:app` (as `agentcore dev` does) gets the same process set-up from the app's
lifespan (`prepare_process`), and the same server options from `UVICORN_*` variables (`agentcore/.env.local`)."""

from __future__ import annotations

import gc
import logging
import socket
from typing import TYPE_CHECKING

from bedrock.config import Settings
from bedrock.server.allocator import tune_allocator
from bedrock.server.connections import uvicorn_options
from bedrock.server.logs import adopt_foreign_loggers, process_handler

if TYPE_CHECKING:
    from bedrock_agentcore.runtime import BedrockAgentCoreApp

logger = logging.getLogger(__name__)

# The cyclic collector's thresholds: Python's (700, 10, 10) but a full collection 10× rarer. With 100 paced
# streams, turns in flight are alive at every young collection, so their objects are promoted and a full
# collection (~65 ms here) came every ~70 turns: 0.9 ms of server CPU a turn, 48% of the GC's time, and a
# 65 ms gap in every stream when it ran. At (700, 10, 100): none in 500 turns, −1.0 ms/turn (gc.callbacks
# timing, bench/capacity.py's load). The young thresholds stay: a larger first one (5,000) bought no more,
# and at 50,000 the garbage between collections cost +45 MB of RSS (bench/soak.py).
GC_THRESHOLDS = (700, 10, 100)


def prepare_process(settings: Settings) -> None:
    """What a serving process sets up once its modules are loaded (once: a second call changes nothing).

    Every new AgentCore session starts from cold: its imports leave ~230k objects that the cyclic collector
    would scan again and again (`python -m bedrock.agent_runtime` runs with the collector off while they load).
    Frozen here, they leave later collections (they live as long as the process anyway); see
    bench/RESULTS_cold_start.md. Freed memory goes back to the system after bursts (`allocator.py`).
    """
    root = logging.getLogger("bedrock")
    if any(getattr(handler, "bedrock_process", False) for handler in root.handlers):
        return
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    gc.enable()
    tune_allocator()
    # Our loggers' handler (LOG_FORMAT); the SDK's logger and uvicorn's keep their own handlers, in our format.
    handler = process_handler(settings)
    handler.bedrock_process = True  # type: ignore[attr-defined]  # our mark, found by the check above
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    adopt_foreign_loggers(settings)
    offline = settings.model_provider == "offline"
    model = "offline rule-based stand-in (not an LLM)" if offline else settings.bedrock_model_id
    logger.info("serving POST /invocations; model: %s", model)


def serve(app: BedrockAgentCoreApp, settings: Settings, *, sock: socket.socket | None = None,
          **uvicorn_config: object) -> None:
    """Serve `app` until SIGTERM/SIGINT: on PORT (BIND_HOST, else the SDK's choice), or on a bound `sock`."""
    import uvicorn

    prepare_process(settings)
    options = {**uvicorn_options(settings), **uvicorn_config}
    if sock is not None:
        uvicorn.Server(uvicorn.Config(app, **options)).run(sockets=[sock])
        return
    page = f" (chat page: http://localhost:{settings.port}/)" if settings.serve_ui else ""
    logger.info("listening on port %d%s", settings.port, page)
    # BIND_HOST overrides the SDK's choice (0.0.0.0 in a container, else 127.0.0.1), e.g. for loopback-only runs.
    app.run(port=settings.port, host=settings.bind_host or None, **options)
