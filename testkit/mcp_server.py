"""Real MCP servers for the tests and the bench: the official `mcp` SDK's FastMCP, in a process of its own.

    python -m testkit.mcp_server http [--oauth] [--state DIR]    streamable HTTP on a free 127.0.0.1 port: prints
                                                                 `PORT <n>`, serves /mcp (and /token, /admin/* below)
    python -m testkit.mcp_server stdio                           over stdin/stdout (the adapters spawn it)

HTTP tools: add(a, b), echo(text), slow(seconds) (its start and end, or its cancellation, written to --state),
fail(message) (raises: an MCP error result), big(n_bytes) (that many bytes of text), grow(name) (adds a tool
named so and sends notifications/tools/list_changed). Stdio tools: shout(text),
word_count(text), nap(seconds) (its start and process id written to $TESTKIT_MCP_STATE).

`--oauth`: /mcp wants `Authorization: Bearer <token>` with a token /token issued (OAuth 2.0 client credentials,
client `agent` / secret `s3cret-client-secret`, tokens living TOKEN_TTL_S; a wrong client gets 401
invalid_client); anything else gets 401. /admin/revoke forgets every token issued (the next call gets 401);
/admin/stats: {"token_fetches", "calls", "unauthorized"}. Like AgentCore Gateway with its identity provider, in one
process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mcp.server.fastmcp import Context  # module-level: FastMCP finds a tool's Context by its annotation's name

CLIENT_ID = "agent"
CLIENT_SECRET = "s3cret-client-secret"
TOKEN_TTL_S = 3600


def http_tools(mcp: Any, state: Path | None) -> None:
    @mcp.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @mcp.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return f"echo: {text}"

    @mcp.tool()
    async def slow(seconds: float) -> str:
        """Wait, then answer."""
        _mark(state, "slow-start")
        try:
            await asyncio.sleep(seconds)
        except BaseException:
            _mark(state, "slow-cancelled")
            raise
        _mark(state, "slow-end")
        return f"slept {seconds}"

    @mcp.tool()
    def fail(message: str) -> str:
        """Always fails."""
        raise ValueError(f"failed on purpose: {message}")

    @mcp.tool()
    def big(n_bytes: int) -> str:
        """A result of n_bytes bytes."""
        return "x" * n_bytes

    @mcp.tool()
    async def grow(name: str, ctx: Context) -> str:
        """Add a tool named `name`, and tell the client its tool list changed."""
        mcp.add_tool(lambda: f"I am {name}", name=name, description="a tool added later")
        await ctx.session.send_tool_list_changed()
        return f"grew {name}"


def stdio_tools(mcp: Any) -> None:
    @mcp.tool()
    def shout(text: str) -> str:
        """The text in capitals."""
        return text.upper()

    @mcp.tool()
    def word_count(text: str) -> int:
        """How many words the text has."""
        return len(text.split())

    @mcp.tool()
    async def nap(seconds: float) -> str:
        """Wait, then answer (its start and process id written to $TESTKIT_MCP_STATE/events)."""
        state = os.environ.get("TESTKIT_MCP_STATE")
        _mark(Path(state) if state else None, f"nap-start-{os.getpid()}")
        await asyncio.sleep(seconds)
        return f"napped {seconds}"


def _mark(state: Path | None, what: str) -> None:
    if state is not None:
        with (state / "events").open("a") as log:
            log.write(f"{what}\n")


class Gate:
    """--oauth: the token endpoint and the bearer check, an ASGI middleware around FastMCP's app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.tokens: dict[str, float] = {}
        self.stats = {"token_fetches": 0, "calls": 0, "unauthorized": 0}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == "/token":
            return await self._token(scope, receive, send)
        if path == "/admin/revoke":
            self.tokens.clear()
            return await _json(send, 200, {"revoked": True})
        if path == "/admin/stats":
            return await _json(send, 200, self.stats)
        headers = dict(scope["headers"])
        bearer = headers.get(b"authorization", b"").decode()
        token = bearer.removeprefix("Bearer ")
        if not bearer.startswith("Bearer ") or self.tokens.get(token, 0) < time.time():
            self.stats["unauthorized"] += 1
            return await _json(send, 401, {"error": "invalid_token"})
        self.stats["calls"] += 1
        return await self.app(scope, receive, send)

    async def _token(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        from urllib.parse import parse_qs

        form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
        headers = dict(scope["headers"])
        basic = headers.get(b"authorization", b"").decode()
        if basic.startswith("Basic "):
            client, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        else:
            client, secret = form.get("client_id", ""), form.get("client_secret", "")
        if form.get("grant_type") != "client_credentials" or (client, secret) != (CLIENT_ID, CLIENT_SECRET):
            return await _json(send, 401, {"error": "invalid_client"})
        self.stats["token_fetches"] += 1
        token = f"tok-{secrets.token_hex(16)}"
        self.tokens[token] = time.time() + TOKEN_TTL_S
        return await _json(send, 200, {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL_S})


async def _json(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def serve_http(oauth: bool, state: Path | None, port: int = 0) -> None:
    import uvicorn
    from mcp.server.fastmcp import FastMCP

    mcp = FastMCP("testkit-http", log_level="CRITICAL")
    http_tools(mcp, state)
    app: Any = mcp.streamable_http_app()
    if oauth:
        app = Gate(app)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restarted on its port (a test's restart)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)  # connections wait in the backlog from now on, not refused until uvicorn serves
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    server.run(sockets=[sock])


def serve_stdio(everything: bool = False) -> None:
    from mcp.server.fastmcp import FastMCP

    mcp = FastMCP("testkit-stdio", log_level="CRITICAL")
    stdio_tools(mcp)
    if everything:  # the bench: the HTTP server's tools too (`add` over either transport)
        http_tools(mcp, None)
    mcp.run("stdio")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=("http", "stdio"))
    parser.add_argument("--oauth", action="store_true")
    parser.add_argument("--state", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--all", action="store_true", help="stdio: the HTTP server's tools too")
    args = parser.parse_args(argv)
    if args.transport == "stdio":
        serve_stdio(args.all)
    else:
        serve_http(args.oauth, args.state, args.port)


class McpServer:
    """`python -m testkit.mcp_server http` as a process of the test's: its URL, stopped (or killed, restarted)."""

    def __init__(self, state: Path, oauth: bool = False, port: int = 0) -> None:
        self.state, self.oauth = state, oauth
        state.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.process: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> McpServer:
        command = [sys.executable, "-m", "testkit.mcp_server", "http", "--state", str(self.state),
                   "--port", str(self.port), *(["--oauth"] if self.oauth else [])]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.process.kill()
            raise RuntimeError(f"the MCP server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self) -> list[str]:
        path = self.state / "events"
        return path.read_text().split() if path.exists() else []

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> McpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


ROOT = Path(__file__).resolve().parent.parent


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a stdio server the tests expect ended)."""
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (ProcessLookupError, FileNotFoundError):  # gone, or reaped between the two looks
        return False


if __name__ == "__main__":
    sys.exit(main())
