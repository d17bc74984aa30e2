"""A light SSE load client, run in a process of its own: N streams at once, each timed chunk by chunk.

    python -m bench.loadgen PORT PATH --streams 100 [--rounds 1] [--sequential | --spread] [--prompt TEXT]
                            [--extra JSON] [--peer]

Prints one JSON line per stream: status, token frames, the time of each from the first, the last event.

`--spread`: the streams arrive as a Poisson process at the burst's mean rate (N streams over one stream's ideal
time, `--ideal-ms`), not all in one instant. `--peer`: LangGraph's Agent Server's request instead of ours (PATH is
ignored): `POST /threads/{new id}/runs/stream` creating the thread, `stream_mode` messages-tuple; its token frames
are the `messages` events carrying text, and its stream ends after the last of them (it sends no end event).

Why not httpx: on these two cores the benchmark's httpx client cost 12.6 ms of CPU per streamed turn, more than
the server it measured (a bare asyncio client: 0.7 ms), so at 100 streams the client starved the server. Here
h11 (the HTTP/1.1 state machine under httpx and uvicorn) over asyncio's streams, and an SSE frame is recognised
by its first line only: nothing per token but a split and a clock read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import h11

TOKEN_LINE = b"event: llm_token"
# A text chunk's frame in LangGraph's Agent Server (messages-tuple): its first and last chunks carry no text. Its
# frames end their lines with CRLF (sse-starlette's default), ours with LF.
PEER_TOKEN_LINE = b'event: messages\r\ndata: [{"content":[{"type":"text"'


async def stream(port: int, path: str, payload: dict, peer: bool = False) -> dict:
    """One stream, timed chunk by chunk: ours, or the peer's (`peer`: its token frames and line ends)."""
    token_line, end = (PEER_TOKEN_LINE, b"\r\n\r\n") if peer else (TOKEN_LINE, b"\n\n")
    body = json.dumps(payload).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connection = h11.Connection(h11.CLIENT)
    headers = [("Host", f"127.0.0.1:{port}"), ("Content-Type", "application/json"),
               ("Content-Length", str(len(body))), ("Accept", "text/event-stream"), ("Connection", "close")]
    writer.write(connection.send(h11.Request(method="POST", target=path, headers=headers))
                 + connection.send(h11.Data(data=body)) + connection.send(h11.EndOfMessage()))
    started = time.perf_counter()
    arrivals: list[float] = []
    status, pending, last = 0, b"", b""
    try:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                now = time.perf_counter()
                *frames, pending = (pending + bytes(event.data)).split(end)
                for frame in frames:
                    if frame.startswith(token_line):
                        arrivals.append(now)
                    last = frame
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
    finally:
        writer.close()
    kind = last.split(b"\n", 1)[0].removeprefix(b"event: ").strip().decode() if last else ""
    return {"status": status, "tokens": len(arrivals), "last": kind,
            "first_ms": (arrivals[0] - started) * 1000 if arrivals else None,
            "times_ms": [round((t - arrivals[0]) * 1000, 3) for t in arrivals]}


async def spread(count: int, mean_gap_s: float, start: Callable[[], Awaitable[dict]]) -> list[dict]:
    """`count` streams, each started after an exponential gap (mean `mean_gap_s`) from the one before."""
    tasks = []
    for _ in range(count):
        tasks.append(asyncio.ensure_future(start()))
        await asyncio.sleep(random.expovariate(1 / mean_gap_s))
    return list(await asyncio.gather(*tasks))


def our_payload(prompt: str) -> dict:
    """A streamed turn of ours, tokens as they come, in a new session."""
    return {"prompt": prompt, "session_id": f"load-{uuid.uuid4().hex}", "stream": True, "stream_tokens": True}


def peer_request(prompt: str, assistant: str = "agent") -> tuple[str, dict]:
    """The peer's path and payload for a streamed run of `assistant` in a new thread, its tokens as they come."""
    return f"/threads/{uuid.uuid4()}/runs/stream", {
        "assistant_id": assistant, "input": {"messages": [{"role": "user", "content": prompt}]},
        "stream_mode": ["messages-tuple"], "if_not_exists": "create"}


def requests(args: argparse.Namespace) -> Callable[[], Awaitable[dict]]:
    """A function starting one stream of the kind asked for: ours, or the peer's."""
    extra = json.loads(args.extra)

    def ours() -> Awaitable[dict]:
        return stream(args.port, args.path, {**our_payload(args.prompt), **extra})

    def peer() -> Awaitable[dict]:
        path, payload = peer_request(args.prompt)
        return stream(args.port, path, {**payload, **extra}, peer=True)

    return peer if args.peer else ours


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--sequential", action="store_true", help="one stream at a time")
    parser.add_argument("--spread", action="store_true", help="Poisson arrivals at the burst's mean rate")
    parser.add_argument("--ideal-ms", type=float, default=540.0, help="one stream's ideal time (for --spread)")
    parser.add_argument("--prompt", default="Tell me about the sea")
    parser.add_argument("--extra", default="{}", help="JSON merged into every payload")
    parser.add_argument("--peer", action="store_true", help="LangGraph's Agent Server's API")
    args = parser.parse_args()
    start = requests(args)

    for _ in range(args.rounds):
        if args.sequential:
            results = [await start() for _ in range(args.streams)]
        elif args.spread:
            results = await spread(args.streams, args.ideal_ms / 1000 / args.streams, start)
        else:
            results = await asyncio.gather(*(start() for _ in range(args.streams)))
        for result in results:
            sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
