"""Local smoke test: runs the guide's scenarios offline, prints their events, exits non-zero on failure.

    python bedrock/test_streaming.py        (or: cd bedrock && python3 test_streaming.py)
"""

from __future__ import annotations

if not __package__:  # run as a script
    import _pathfix  # noqa: F401

import asyncio
import os
import sys
import uuid
from collections.abc import Callable
from typing import Any

os.environ.setdefault("MODEL_PROVIDER", "offline")

from bedrock.agent_runtime import ainvoke_agent, stream_agent
from bedrock.streaming_utils import parse_sse_event

Check = Callable[[list[Any]], str | None]


def _end(events: list[Any]) -> dict[str, Any]:
    return events[-1].data if events and events[-1].type == "agent_end" else {}


def _well_formed(events: list[Any]) -> str | None:
    if len(events) == 1 and events[0].type == "error":
        return None  # refused before the turn started
    if not events or events[0].type != "agent_start":
        return "first event is not agent_start"
    if events[-1].type not in ("agent_end", "error"):
        return "last event is not terminal"
    if [e.id for e in events] != list(range(1, len(events) + 1)):
        return "ids are not 1..n"
    return None


async def scenario(name: str, payload: dict[str, Any], check: Check) -> bool:
    print(f"=== {name}: {payload['prompt']!r}")
    events = [event async for event in stream_agent(payload)]
    for event in events:
        print(f"  [{event.type}] {parse_sse_event(event)['data']}")
    problem = _well_formed(events) or check(events)
    print(f"  {'FAIL: ' + problem if problem else 'ok'}\n")
    return problem is None


async def main() -> int:
    run = uuid.uuid4().hex[:8]
    results = [
        await scenario(
            "basic streaming",
            {"prompt": "What is 25 * 4?", "session_id": f"smoke-{run}", "stream": True},
            lambda ev: None if "100" in _end(ev).get("output", "") and _end(ev)["metrics"]["tool_calls"] == 1
            else "expected 100 via one calculator call",
        ),
        await scenario(
            "token streaming",
            {"prompt": "What is 12 * 12?", "session_id": f"smoke-{run}", "stream": True, "stream_tokens": True},
            lambda ev: None if any(e.type == "llm_token" for e in ev) else "no llm_token events",
        ),
        await scenario(
            "memory, turn 1",
            {"prompt": "My name is Alice", "session_id": f"alice-{run}", "stream": True},
            lambda ev: None if "Alice" in _end(ev).get("output", "") else "name not acknowledged",
        ),
        await scenario(
            "memory, turn 2",
            {"prompt": "What's my name?", "session_id": f"alice-{run}", "stream": True},
            lambda ev: None if "Alice" in _end(ev).get("output", "") else "name not recalled",
        ),
        await scenario(
            "custom data",
            {"prompt": "Recommend a movie", "session_id": f"prefs-{run}", "stream": True,
             "preferences": {"genre": "sci-fi"}, "custom_data": {"user_id": "123"}},
            lambda ev: None if ev[0].data["actor_id"] == "123" and "sci-fi" in _end(ev).get("output", "")
            else "preferences or user id lost",
        ),
        await scenario(
            "bad payload",
            {"prompt": "", "stream": True},
            lambda ev: None if ev[-1].type == "error" and ev[-1].data["code"] == "invalid_payload" else "not refused",
        ),
    ]
    reply = await ainvoke_agent({"prompt": "What is 5+5?", "session_id": f"smoke-{run}"})
    print(f"=== non-streaming: {reply}")
    results.append("10" in reply["output"])
    failed = results.count(False)
    print("all scenarios passed" if not failed else f"{failed} scenario(s) FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
