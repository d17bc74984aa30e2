"""The AgentCore Runtime entrypoint, where the guide and the toolkit look for it: `app`, and the in-process API.

`POST /invocations` (AgentCore), and locally `POST /invoke` and `POST /stream`, take the payload in the
README's "Payload" table. `"stream": true` answers with an SSE stream; otherwise with one JSON object.
In-process: `stream_agent(payload)`, `ainvoke_agent(payload)`, `invoke_agent(payload)`.
`python -m bedrock.agent_runtime` serves on PORT.

A facade: the app is `bedrock.server.app.build_app(settings)`, the settings those of the environment (and of a
langgraph.json's `env` beneath it: `bedrock.core.loader.settings_with_graph_env`); see ARCHITECTURE.md.
"""

from __future__ import annotations

if __name__ == "__main__":
    # Every new AgentCore session starts here from cold. Its imports leave ~230k objects that the cyclic
    # collector would scan again and again while they load (~130 ms) and while the model client is built
    # (~90 ms): collect nothing until they are loaded (`serve` then freezes them and turns it back on).
    import gc

    gc.disable()

if not __package__:  # run as a script, or imported flat from inside bedrock/
    import _pathfix  # noqa: F401

from collections.abc import AsyncIterator, Iterable
from typing import Any

from bedrock.core.loader import settings_with_graph_env
from bedrock.errors import AgentError, PayloadError
from bedrock.server.app import build_app
from bedrock.server.connections import bounded_protocol
from bedrock.wire.events import SSEEvent

settings = settings_with_graph_env()
app = build_app(settings, process=True)
runtime = app.state.runtime
invoke = app.handlers["main"]
# For `uvicorn bedrock.agent_runtime:app --http bedrock.agent_runtime:http_protocol` (agentcore dev, via
# UVICORN_HTTP): the bounded h11 protocol `python -m` serves with (REQUEST_READ_TIMEOUT_S, KEEPALIVE_TIMEOUT_S,
# MAX_CONNECTIONS).
http_protocol = bounded_protocol(settings)


def stream_agent(payload: dict[str, Any], *, callbacks: Iterable[Any] | None = None) -> AsyncIterator[SSEEvent]:
    """Run one turn in-process, yielding its SSE events; a bad payload yields one `error` event."""
    return runtime.stream(payload, callbacks)


async def ainvoke_agent(payload: dict[str, Any], *, callbacks: Iterable[Any] | None = None) -> dict[str, Any]:
    """Run one turn in-process and return its result dict; raises PayloadError or AgentError."""
    return await runtime.ainvoke(payload, callbacks)


def invoke_agent(payload: dict[str, Any], *, callbacks: Iterable[Any] | None = None) -> dict[str, Any]:
    """Synchronous `ainvoke_agent`, for scripts (inside a running event loop, await `ainvoke_agent`)."""
    return runtime.invoke(payload, callbacks)


__all__ = ["app", "invoke", "stream_agent", "invoke_agent", "ainvoke_agent", "AgentError", "PayloadError"]

if __name__ == "__main__":
    from bedrock.server.main import serve

    serve(app, settings)
