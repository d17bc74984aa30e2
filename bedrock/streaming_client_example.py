"""Client examples: stream a turn, invoke one, continue a conversation, handle errors — with `AgentClient`.

Start the agent (`make run`), then:

    python bedrock/streaming_client_example.py [--url http://127.0.0.1:8080]
    (or: cd bedrock && python3 streaming_client_example.py)

The same examples run against a deployed runtime with `--arn ARN [--region R]` (uses your AWS credentials).
"""

from __future__ import annotations

if not __package__:  # run as a script
    import _pathfix  # noqa: F401

import argparse
import asyncio
import sys
import uuid

from bedrock.client import DEFAULT_URL, AgentClient, AgentHTTPError, AgentStreamError
from bedrock.client.cli import metrics_line


async def streaming(client: AgentClient, session_id: str) -> None:
    """Print the answer token by token as the model writes it, then the turn's metrics."""
    print("=== streaming tokens")
    payload = {"prompt": "What is 25 * 4?", "session_id": session_id, "stream_tokens": True}
    async for event in client.stream(payload):
        if event.type == "agent_step" and event.data.get("tool_calls"):
            calls = ", ".join(f"{call['name']}({call['args']})" for call in event.data["tool_calls"])
            print(f"\n  [tool call] {calls}")
        elif event.type == "llm_token":
            print(event.data["token"], end="", flush=True)
        elif event.type == "agent_end":
            print(f"\n  [done] {metrics_line(event.data['metrics'])}")
        elif event.type == "error":  # a failed turn ends with an error event; stream() does not raise
            print(f"\n  [error] {event.data['code']}: {event.data['error']}")


async def non_streaming(client: AgentClient, session_id: str) -> None:
    """One call, one result dict (the fold of the same stream)."""
    print("=== non-streaming invoke")
    result = await client.invoke({"prompt": "What is 12 * 12?", "session_id": session_id})
    print(f"  output:  {result['output']}")
    print(f"  steps:   {result['steps']}, tool calls: {result['metrics']['tool_calls']}")


async def memory_continuity(client: AgentClient, session_id: str) -> None:
    """Two turns on one session: the second one remembers the first."""
    print("=== memory continuity")
    first = await client.invoke({"prompt": "My name is Alice", "session_id": session_id})
    print(f"  turn 1: {first['output']}")
    second = await client.invoke({"prompt": "What's my name?", "session_id": session_id})
    print(f"  turn 2: {second['output']}")


async def error_handling(client: AgentClient) -> None:
    """A refused payload is an AgentHTTPError; a turn that fails is an AgentStreamError from invoke()."""
    print("=== error handling")
    try:
        await client.invoke({"prompt": ""})
    except AgentHTTPError as error:
        print(f"  refused: HTTP {error.status} {error.code}")
    except AgentStreamError as error:
        print(f"  failed: {error.code} (retryable: {error.retryable})")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL, help=f"agent server base URL (default {DEFAULT_URL})")
    parser.add_argument("--arn", help="a deployed AgentCore Runtime ARN instead of --url")
    parser.add_argument("--region", help="AWS region of --arn (default: the ARN's)")
    args = parser.parse_args(argv)
    client = AgentClient(agent_runtime_arn=args.arn, region=args.region) if args.arn else AgentClient(base_url=args.url)
    run = uuid.uuid4().hex[:8]  # fresh sessions on every run, so earlier runs' memory does not leak in
    async with client:
        await streaming(client, f"example-{run}")
        await non_streaming(client, f"example-{run}")
        await memory_continuity(client, f"alice-{run}")
        await error_handling(client)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
