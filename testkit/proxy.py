"""CuttingProxy: a TCP proxy on 127.0.0.1:0 in front of a server, which a test can tell to cut every open
connection at once (a dropped network, as a browser sees it: its reads fail mid-response)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class CuttingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
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

        async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.transport.abort()

        await asyncio.gather(copy(client_reader, upstream_writer), copy(upstream_reader, client_writer))
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

    def __enter__(self) -> "CuttingProxy":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


async def _call(function: Any) -> Any:
    return function()
