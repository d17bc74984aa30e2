"""Soak: does the server's memory plateau? Many turns, then clients that never read, RSS sampled throughout.

1. `--turns` turns over 50 sessions (10 clients at once, SQLite memory, the offline model in-process as under
   `make run`), the server's RSS sampled every 500 turns: the last three samples should be within 5%.
2. `--rounds` rounds of `--stuck` clients that open a stream with large frames and never read it, then go
   away; RSS after each round (once the server is idle again): the last within 20% of the first.

    python -m bench.soak [--turns 5000] [--rounds 7] [--stuck 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from pathlib import Path


import httpx

from bench.common import Server, table

SAMPLE_EVERY = 500
IDLE_S = 30  # the server's executor retires threads idle this long
BIG_PROMPT = "é" * 30_000  # the input step echoes it: a ~60 KB frame, and another as the stored message


def threads_of(server: Server) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


async def turns(server: Server, total: int) -> list[tuple[int, float, int]]:
    samples = [(0, server.rss_mb(), threads_of(server))]
    done = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def client() -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            while not queue.empty():
                i = queue.get_nowait()
                payload = {"prompt": f"What is {i} * 7?", "session_id": f"soak-{i % 50}", "stream": i % 2 == 0,
                           "stream_tokens": i % 4 == 0}
                response = await http.post("/invocations", json=payload)
                assert response.status_code == 200, response.text
                done += 1
                if done % SAMPLE_EVERY == 0:
                    samples.append((done, server.rss_mb(), threads_of(server)))

    await asyncio.gather(*(client() for _ in range(10)))
    return samples


def stuck_round(server: Server, count: int, port: int) -> None:
    """`count` streams whose clients never read a byte, held until the server has sent what it can, then closed."""
    body = json.dumps({"prompt": BIG_PROMPT, "stream": True, "stream_tokens": True}, ensure_ascii=False).encode()
    head = (f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    conns = []
    for _ in range(count):
        conn = socket.create_connection(("127.0.0.1", port))
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's writes back up
        conn.sendall(head + body)
        conns.append(conn)
    time.sleep(3)  # the scenario: the streams sit there, their buffers full, for a while
    for conn in conns:
        conn.close()


def settle(server: Server, timeout_s: float = 30) -> float:
    """RSS once the server is idle again (its turns cancelled and rolled back)."""
    deadline = time.monotonic() + timeout_s
    last = server.rss_mb()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = server.rss_mb()
        if abs(now - last) < 1:
            return now
        last = now
    return last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--stuck", type=int, default=100)
    parser.add_argument("--idle-wait", type=float, default=IDLE_S + 5, help="seconds idle before the last sample")
    args = parser.parse_args()
    with Server({"MAX_CONCURRENT_INVOCATIONS": str(max(200, args.stuck + 20))}) as server:
        samples = asyncio.run(turns(server, args.turns))
        port = int(server.url.rsplit(":", 1)[1])
        rounds = []
        for round_ in range(1, args.rounds + 1):
            stuck_round(server, args.stuck, port)
            rounds.append((round_, settle(server), threads_of(server)))
        time.sleep(args.idle_wait)  # the executor retires threads idle IDLE_S (bedrock/server/executor.py)
        idle = (server.rss_mb(), threads_of(server))
    print(table(["turns done", "server RSS MB", "threads"], [(n, f"{rss:.1f}", t) for n, rss, t in samples]))
    last = [rss for _, rss, _ in samples[-3:]]
    spread = (max(last) - min(last)) / min(last)
    print(f"\nlast three samples within {spread:.1%} of each other (goal ≤ 5%)\n")
    print(table(["never-reading round", "server RSS MB after", "threads"],
                [(r, f"{rss:.1f}", t) for r, rss, t in rounds]))
    growth = (rounds[-1][1] - rounds[0][1]) / rounds[0][1]
    print(f"\nRSS after the last round is {growth:+.1%} of after the first (goal within ±20%); "
          f"{args.idle_wait:.0f} s later, idle: {idle[0]:.1f} MB, {idle[1]} threads (before the rounds: "
          f"{samples[-1][1]:.1f} MB, {samples[-1][2]} threads)")


if __name__ == "__main__":
    main()
