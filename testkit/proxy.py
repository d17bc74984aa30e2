"""CuttingProxy: a TCP proxy on 127.0.0.1:0 in front of a server, which a test can tell to cut every open
connection at once (a dropped network, as a browser sees it: its reads fail mid-response), and which can
re-chunk what the server sends: each frame split over several writes (it arrives over several reads), or
held and sent together (many frames in one read)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class CuttingProxy:
    def __init__(self, upstream_port: int, *, split_parts: int = 0, split_pause_s: float = 0.003,
                 hold_s: float = 0.0) -> None:
        self.upstream_port = upstream_port
        self.split_parts = split_parts  # server → client: each read of SSE frames cut into this many writes
        self.split_pause_s = split_pause_s  # between those writes: each is read on its own, even on a busy machine
        self.hold_s = hold_s  # server → client: what arrives within this long goes out as one write
        self.connections = 0  # accepted so far
        self.cuts = 0
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._pipe, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _pipe(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._open |= {client_writer, upstream_writer}

        async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, downstream: bool) -> None:
            try:
                while data := await reader.read(65536):
                    if downstream and self.hold_s:
                        await asyncio.sleep(self.hold_s)
                        while more := await _ready(reader):  # everything that arrived meanwhile, in one write
                            data += more
                    # Only SSE frames are split (the page's own files need not be).
                    framed = b"event: " in data or b": ping" in data
                    parts = self.split_parts if downstream and framed else 1
                    step = max(1, -(-len(data) // max(parts, 1)))
                    for i in range(0, len(data), step):
                        writer.write(data[i:i + step])
                        await writer.drain()
                        if step < len(data):
                            # Sent now, in its own TCP segment (asyncio sets TCP_NODELAY), and read alone.
                            await asyncio.sleep(self.split_pause_s)
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.transport.abort()

        await asyncio.gather(copy(client_reader, upstream_writer, False), copy(upstream_reader, client_writer, True))
        self._open -= {client_writer, upstream_writer}

    def cut(self) -> int:
        """Reset every open connection, both sides; how many there were."""

        def abort() -> int:
            writers = list(self._open)
            for writer in writers:
                writer.transport.abort()
            self.cuts += 1
            return len(writers) // 2

        return asyncio.run_coroutine_threadsafe(_call(abort), self._loop).result(10)

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


async def _call(function: Any) -> Any:
    return function()


async def _ready(reader: asyncio.StreamReader) -> bytes:
    """What the reader already holds (b"" if nothing, or at its end)."""
    try:
        return await asyncio.wait_for(reader.read(65536), 0.001)
    except TimeoutError:
        return b""
