"""A light SSE load client, run in a process of its own: N streams at once, each timed chunk by chunk.

    python -m bench.loadgen PORT PATH --streams 100 [--rounds 1] [--sequential] [--prompt TEXT] [--extra JSON]

Prints one JSON line per stream: status, token frames, the time of each from the first, the last event.

Why not httpx: on these two cores the benchmark's httpx client cost 12.6 ms of CPU per streamed turn, more than
the server it measured (a bare asyncio client: 0.7 ms), so at 100 streams the client starved the server. Here
h11 (the HTTP/1.1 state machine under httpx and uvicorn) over asyncio's streams, and an SSE frame is recognised
by its first line only: nothing per token but a split and a clock read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid

import h11

TOKEN_LINE = b"event: llm_token"


async def stream(port: int, path: str, payload: dict) -> dict:
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
                *frames, pending = (pending + bytes(event.data)).split(b"\n\n")
                for frame in frames:
                    if frame.startswith(TOKEN_LINE):
                        arrivals.append(now)
                    last = frame
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
    finally:
        writer.close()
    kind = last.split(b"\n", 1)[0].removeprefix(b"event: ").decode() if last else ""
    return {"status": status, "tokens": len(arrivals), "last": kind,
            "first_ms": (arrivals[0] - started) * 1000 if arrivals else None,
            "times_ms": [round((t - arrivals[0]) * 1000, 3) for t in arrivals]}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--sequential", action="store_true", help="one stream at a time")
    parser.add_argument("--prompt", default="Tell me about the sea")
    parser.add_argument("--extra", default="{}", help="JSON merged into every payload")
    args = parser.parse_args()
    extra = json.loads(args.extra)

    def payload() -> dict:
        return {"prompt": args.prompt, "session_id": f"load-{uuid.uuid4().hex}", "stream": True,
                "stream_tokens": True, **extra}

    for _ in range(args.rounds):
        if args.sequential:
            results = [await stream(args.port, args.path, payload()) for _ in range(args.streams)]
        else:
            results = await asyncio.gather(*(stream(args.port, args.path, payload()) for _ in range(args.streams)))
        for result in results:
            sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
