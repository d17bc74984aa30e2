"""The race suite's harness: two requests at the same instant against one session, in-process or over HTTP, and
the invariants every outcome must keep (tests/server/test_races.py runs it; tests/server/test_run_properties.py
drives it with random interleavings).

A *client* here is what a request looks like from outside: `run` returns the stream's frames, `action` a
status and a JSON body. Both speak to the same Runtime calls that `respond()` makes (start_run with the server's
slots and shutdown signal, resume, control), so what is checked in-process is the server's own path minus HTTP.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Awaitable

import httpx

from bedrock.errors import AgentError
from bedrock.server.runtime import Runtime
from bedrock.wire.events import TERMINAL_EVENTS
from testkit.sse import frames_of

ANSWER_WITHIN_S = 30.0  # every request answered within this (a lost request used to hang forever)


@dataclass
class Reply:
    """One request's answer: its HTTP-like status, its body (actions), its frames (runs)."""

    status: int
    body: Any = None
    frames: list[tuple[str, Any, int | None]] = field(default_factory=list)

    @property
    def terminal(self) -> list[tuple[str, Any, int | None]]:
        return [frame for frame in self.frames if frame[0] in TERMINAL_EVENTS]

    @property
    def run_id(self) -> str | None:
        starts = [frame[1].get("run_id") for frame in self.frames if frame[0] == "agent_start"]
        return starts[0] if starts else None


def strict(text: str) -> Any:
    """JSON as a strict parser reads it (a browser's JSON.parse): NaN and Infinity are errors."""
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in a frame or reply: not JSON")
    return json.loads(text, parse_constant=refuse)


class InProcess:
    """Requests made through the Runtime as `respond()` makes them (slots, the shutdown signal, run on the loop)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def run(self, payload: dict[str, Any], read: int | None = None) -> Reply:
        """Start a run and read its frames (all, or `read` of them, then leave; the run goes on)."""
        runtime = self.runtime
        try:
            request = runtime.validate({**payload, "stream": True})
            agent = await runtime.ready_agent()
            await agent.owners.check(request.session_id, request.actor_id, claim=False)
            run = await runtime.start_run(agent, request, on_disconnect="continue", slots=runtime.slots,
                                          shutdown=runtime.shutdown_event())
        except AgentError as refused:
            return Reply(refused.status, refused.to_dict())
        return await self.follow(run.follow(0, owner=True), read)

    async def follow(self, follower: Any, read: int | None = None) -> Reply:
        frames = []
        try:
            async for frame in follower:
                strict(str(frame).split("\ndata: ", 1)[1].split("\n", 1)[0])
                frames.append((frame.type, frame.data, frame.id))
                if read is not None and len(frames) >= read:
                    break
        finally:
            await follower.aclose()
        return Reply(200, frames=frames)

    async def action(self, payload: dict[str, Any]) -> Reply:
        runtime = self.runtime
        try:
            request = runtime.validate(payload)
            if request.action == "resume":
                return await self.follow(runtime.resume(request)[1])
            await runtime.get_agent().owners.check(request.session_id, request.actor_id, claim=False)
            return Reply(200, strict(json.dumps(await runtime.control(request))))
        except AgentError as refused:
            return Reply(refused.status, refused.to_dict())

    def slots_free(self) -> bool:
        return self.runtime.slots.active == 0


class OverHTTP:
    """The same requests over HTTP, to a live server; streamed runs read with httpx."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url, self.client = url, client

    async def run(self, payload: dict[str, Any], read: int | None = None) -> Reply:
        body = b""
        async with self.client.stream("POST", self.url + "/invocations", json={**payload, "stream": True}) as reply:
            if reply.status_code != 200:
                return Reply(reply.status_code, strict((await reply.aread()).decode()))
            async for chunk in reply.aiter_raw():
                body += chunk
                if read is not None and body.count(b"\n\n") >= read:
                    break
        return Reply(200, frames=_frames(body, read))

    async def action(self, payload: dict[str, Any]) -> Reply:
        if payload.get("action") == "resume":
            return await self.run(payload)
        reply = await self.client.post(self.url + "/invocations", json=payload)
        return Reply(reply.status_code, strict(reply.text))


def _frames(body: bytes, read: int | None) -> list[tuple[str, Any, int | None]]:
    if read is not None:  # what was read before leaving: whole frames only
        body = body[:_nth_end(body, read)]
    for line in body.split(b"\n"):
        if line.startswith(b"data: "):
            strict(line[6:].decode())
    return frames_of(body)


def _nth_end(data: bytes, n: int) -> int:
    end = 0
    for _ in range(n):
        found = data.find(b"\n\n", end)
        if found < 0:
            return len(data)
        end = found + 2
    return end


async def answered(*requests: Awaitable[Reply]) -> list[Reply]:
    """The requests at the same instant; each must be answered within ANSWER_WITHIN_S."""
    async with asyncio.timeout(ANSWER_WITHIN_S):
        return list(await asyncio.gather(*requests))


def check_stream(reply: Reply, *, whole: bool = True) -> None:
    """A stream read to its end has exactly one terminal frame, last, ids contiguous from its first."""
    if reply.status != 200:
        assert reply.status in (403, 404, 409, 410, 503), reply.body  # refused before any stream: typed
        assert isinstance(reply.body, dict) and set(reply.body["error"]) >= {"code", "message", "type", "retryable"}
        return
    if not whole:
        return
    assert len(reply.terminal) == 1 and reply.frames[-1] in reply.terminal, reply.frames
    ids = [frame[2] for frame in reply.frames]
    assert ids == list(range(ids[0], ids[0] + len(ids))), ids


def cancelled(reply: Reply) -> bool:
    return reply.status == 200 and bool(reply.terminal) and reply.terminal[0][0] == "error" \
        and reply.terminal[0][1]["code"] == "cancelled"


def completed(reply: Reply) -> bool:
    return reply.status == 200 and bool(reply.terminal) and reply.terminal[0][0] == "agent_end"
