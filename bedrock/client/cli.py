"""The command line of `python -m bedrock.client`: stream one turn, tokens live, then the turn's metrics."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from bedrock.client import DEFAULT_URL, AgentClient, AgentClientError, AgentStreamError
from bedrock.wire.events import AGENT_END, AGENT_START, ERROR, INTERRUPT, LLM_TOKEN, SSEEvent


def metrics_line(metrics: Mapping[str, Any]) -> str:
    """`tokens=37 tool_calls=1 errors=0 latency_ms=15.9` (and `ttft_ms` when tokens were streamed)."""
    parts = [f"{key}={metrics.get(key)}" for key in ("tokens", "tool_calls", "errors", "latency_ms")]
    if metrics.get("time_to_first_token_ms") is not None:
        parts.append(f"ttft_ms={metrics['time_to_first_token_ms']}")
    return " ".join(parts)


async def _run(args: argparse.Namespace) -> int:
    if args.arn:
        client = AgentClient(agent_runtime_arn=args.arn, region=args.region, qualifier=args.qualifier,
                             endpoint_url=args.endpoint_url, timeout=args.timeout)
    else:
        client = AgentClient(base_url=args.url or DEFAULT_URL, timeout=args.timeout)
    payload: dict[str, Any] = {"prompt": args.prompt, "stream_tokens": True}
    if args.session:
        payload["session_id"] = args.session
    out = sys.stdout
    run: dict[str, Any] = {}
    try:
        async with client:
            events: AsyncGenerator[SSEEvent, None] | None = client.stream(payload)
            pending: list[dict[str, Any]]  # the turn's approvals waiting for an answer
            while events is not None:
                step, pending = None, []
                try:
                    async for event in events:
                        if event.type == AGENT_START:
                            run = event.data
                        _show(event, step, out)
                        if event.type == LLM_TOKEN:
                            step = event.data.get("step")
                        elif event.type == ERROR:
                            return 1
                        elif event.type == AGENT_END:
                            pending = event.data.get("interrupts") or []
                except asyncio.CancelledError:  # Ctrl-C: the run would go on without us (as on AgentCore)
                    if run.get("run_id"):
                        await _cancel(client, run)
                    raise
                events = None
                if pending:  # a tool call waits for approval: ask, then follow the run that continues the turn
                    ask = pending[0]
                    approved = await _confirm(f"Run {ask['tool_name']}({json.dumps(ask['args'])})? [y/N] ")
                    events = client.resume(run["session_id"], ask["interrupt_id"], approved,
                                           actor_id=run.get("actor_id"))
    except AgentClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


async def _confirm(question: str) -> bool:
    """Ask on the terminal; anything but y/yes (or no answer at all) is no."""
    print(question, end="", file=sys.stderr, flush=True)
    try:
        answer = await asyncio.to_thread(sys.stdin.readline)
    except (OSError, ValueError):
        answer = ""
    return answer.strip().lower() in ("y", "yes")


async def _cancel(client: AgentClient, run: dict[str, Any]) -> None:
    try:
        await asyncio.wait_for(client.cancel(run["session_id"], run["run_id"], actor_id=run.get("actor_id")), 10)
        print(f"\ncancelled run {run['run_id']}", file=sys.stderr)
    except (AgentClientError, TimeoutError) as exc:
        print(f"\ncould not cancel run {run['run_id']}: {exc}", file=sys.stderr)


def _show(event: Any, step: Any, out: Any) -> None:
    """Print one event: tokens as they come, the answer and metrics at the end, an error on stderr."""
    if event.type == LLM_TOKEN:
        if step is not None and event.data.get("step") != step:
            out.write("\n")  # each model answer on its own line
        out.write(event.data.get("token", ""))
        out.flush()
    elif event.type == INTERRUPT:
        out.write(f"\n[waiting for approval: {event.data.get('tool_name')}({json.dumps(event.data.get('args'))})]\n")
    elif event.type == AGENT_END:
        if step is None:  # the server streamed no tokens: show the answer
            out.write(event.data.get("output", ""))
        out.write("\n" + metrics_line(event.data.get("metrics", {})) + "\n")
    elif event.type == ERROR:
        if step is not None:
            out.write("\n")
        error = AgentStreamError.from_event(event)
        print(f"error: {error.message} (code={error.code}, retryable={error.retryable})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """`python -m bedrock.client`: stream one turn, printing tokens live, then the turn's metrics."""
    parser = argparse.ArgumentParser(prog="python -m bedrock.client", description=main.__doc__)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--url", help=f"agent server base URL (default {DEFAULT_URL})")
    target.add_argument("--arn", help="deployed AgentCore Runtime ARN (uses your AWS credentials)")
    parser.add_argument("--region", help="AWS region of --arn (default: the ARN's)")
    parser.add_argument("--qualifier", default="DEFAULT", help="runtime endpoint qualifier (default DEFAULT)")
    parser.add_argument("--endpoint-url", help="override the AgentCore Runtime endpoint URL")
    parser.add_argument("--session", help="session id (the same id continues a conversation)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds the whole turn may take")
    parser.add_argument("prompt")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130
