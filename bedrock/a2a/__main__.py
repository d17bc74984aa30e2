"""`python -m bedrock.a2a` (or `python bedrock/a2a/__main__.py`): the agent as an A2A server — JSON-RPC at `/`, its
card at /.well-known/agent-card.json, `/ping` — on A2A_PORT (9000: AgentCore's A2A contract), with the environment's
settings (and a langgraph.json's `env` beneath them), as `python -m bedrock.agent_runtime` serves the HTTP protocol's
app on PORT."""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run as a file (an AgentCore CLI entrypoint): the root on sys.path
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

if __name__ == "__main__":
    import gc

    gc.disable()  # as bedrock.agent_runtime's start: `serve` freezes what the imports made, then turns it back on

    from bedrock.a2a.app import serve_a2a
    from bedrock.core.loader import settings_with_graph_env

    serve_a2a(settings_with_graph_env())
